//! The offline write queue: writes that could not reach the coord API wait
//! in a JSONL file and are replayed, with their original idempotency key, by
//! `coord sync` and at the start of the next hook run. Nothing is ever lost
//! or deleted silently: what the server refuses moves to a rejected file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::backend::Coord;
use crate::error::{Error, Result};
use crate::model::{Time, Write};

/// The line format's version.
pub const VERSION: u32 = 1;

/// Who wrote the entry (for the person reading the queue; delivery uses the
/// identity in force when it is replayed, and never stores a token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrittenBy {
    pub user: String,
    pub machine: String,
    pub session: String,
    #[serde(default)]
    pub api: Option<String>,
}

/// One queued write: one line of the queue file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub v: u32,
    /// The Idempotency-Key, the same on every replay.
    pub key: String,
    #[serde(flatten)]
    pub write: Write,
    pub identity: WrittenBy,
    #[serde(with = "crate::model::time_serde")]
    pub queued_at: Time,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
}

impl Entry {
    pub fn new(write: Write, key: String, identity: WrittenBy) -> Entry {
        Entry {
            v: VERSION,
            key,
            write,
            identity,
            queued_at: crate::render::now(),
            attempts: 0,
            last_error: None,
        }
    }

    /// One line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_line(line: &str) -> std::result::Result<Entry, String> {
        let e: Entry = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if e.v != VERSION {
            return Err(format!("queue line version {} is not {VERSION}", e.v));
        }
        Ok(e)
    }
}

/// The queue file and its companions.
#[derive(Debug, Clone)]
pub struct Queue {
    path: PathBuf,
}

/// What a drain did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub delivered: usize,
    pub waiting: usize,
    pub rejected: usize,
    /// Why the drain stopped early, when it did.
    pub stopped: Option<String>,
}

/// A guard holding the queue's exclusive lock.
struct Locked {
    _file: File,
}

impl Queue {
    pub fn new(path: PathBuf) -> Queue {
        Queue { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where refused entries go, beside the queue.
    pub fn rejected_path(&self) -> PathBuf {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "coord-queue".into());
        self.path.with_file_name(format!("{stem}.rejected.jsonl"))
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    fn io(&self, what: &str, e: std::io::Error) -> Error {
        Error::bad_input(&self.path, format!("{what}: {e}"))
    }

    /// Takes the exclusive lock (a separate file, because the queue itself is
    /// replaced by rename). `wait: false` answers None when it is held.
    fn lock(&self, wait: bool) -> Result<Option<Locked>> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| self.io("cannot create the queue folder", e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path())
            .map_err(|e| self.io("cannot open the queue lock", e))?;
        if wait {
            file.lock()
                .map_err(|e| self.io("cannot lock the queue", e))?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(self.io("cannot lock the queue", e));
                }
            }
        }
        Ok(Some(Locked { _file: file }))
    }

    /// Appends one entry as one whole line, under the lock, and answers how
    /// many writes now wait. An error here means the write was NOT saved.
    pub fn append(&self, entry: &Entry) -> Result<usize> {
        let _guard = self.lock(true)?;
        let mut line = entry.to_line();
        line.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io("cannot open the queue", e))?;
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| self.io("cannot write the queue", e))?;
        Ok(self.read_lines()?.len())
    }

    fn read_lines(&self) -> Result<Vec<String>> {
        let mut text = String::new();
        match File::open(&self.path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)
                    .map_err(|e| self.io("cannot read the queue", e))?;
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io("cannot read the queue", e)),
        }
        Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect())
    }

    /// How many writes wait (0 when there is no queue file).
    pub fn len(&self) -> Result<usize> {
        Ok(self.read_lines()?.len())
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every line, parsed where it parses.
    pub fn list(&self) -> Result<Vec<std::result::Result<Entry, (String, String)>>> {
        Ok(self
            .read_lines()?
            .into_iter()
            .map(|l| Entry::from_line(&l).map_err(|e| (l, e)))
            .collect())
    }

    /// Replaces the queue with `lines`: temp file, fsync, rename.
    fn rewrite(&self, lines: &[String]) -> Result<()> {
        if lines.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.io("cannot empty the queue", e)),
            };
        }
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = self.path.with_file_name(tmp_name);
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            for l in lines {
                f.write_all(l.as_bytes())?;
                f.write_all(b"\n")?;
            }
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            self.io("cannot rewrite the queue", e)
        })
    }

    fn reject(&self, line: &str, reason: &str) -> Result<()> {
        let record = serde_json::json!({
            "rejected_at": crate::model::format_time(&crate::render::now()),
            "reason": reason,
            "line": line,
        });
        let path = self.rejected_path();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::bad_input(&path, format!("cannot write the rejected file: {e}")))?;
        f.write_all(format!("{record}\n").as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| Error::bad_input(&path, format!("cannot write the rejected file: {e}")))
    }

    /// Delivers waiting writes in order through `backend` until the queue is
    /// empty, the API is unreachable, or `deadline` passes. `wait: false`
    /// skips the drain when another process holds the queue.
    pub fn drain(
        &self,
        backend: &dyn Coord,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<Report> {
        let mut report = Report::default();
        if !self.path.exists() {
            return Ok(report);
        }
        let Some(_guard) = self.lock(wait)? else {
            report.waiting = self.len()?;
            report.stopped = Some("another process is syncing the queue".into());
            return Ok(report);
        };
        let lines = self.read_lines()?;
        let mut keep = Vec::new();
        let mut stop: Option<String> = None;
        for line in lines {
            if stop.is_some() {
                keep.push(line);
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                stop = Some("out of time".into());
                keep.push(line);
                continue;
            }
            let mut entry = match Entry::from_line(&line) {
                Ok(e) => e,
                Err(why) => {
                    self.reject(&line, &format!("unreadable queue line: {why}"))?;
                    report.rejected += 1;
                    continue;
                }
            };
            match backend.write(&entry.write, Some(&entry.key)) {
                // A 2xx whose body we could not read was still applied.
                Ok(_) | Err(Error::Protocol { .. }) => report.delivered += 1,
                Err(e) if e.is_retryable() => {
                    entry.attempts += 1;
                    entry.last_error = Some(crate::render::cell(&e.to_string(), 300));
                    keep.push(entry.to_line());
                    stop = Some(e.to_string());
                }
                Err(e) => {
                    self.reject(&line, &e.to_string())?;
                    report.rejected += 1;
                }
            }
        }
        self.rewrite(&keep)?;
        report.waiting = keep.len();
        report.stopped = stop;
        Ok(report)
    }

    /// Removes the entry whose key is `key` (or starts with it, if only one
    /// does) and answers it.
    pub fn drop_entry(&self, key: &str) -> Result<Entry> {
        let _guard = self.lock(true)?;
        let lines = self.read_lines()?;
        let matches: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                Entry::from_line(l).is_ok_and(|e| e.key == key || e.key.starts_with(key))
            })
            .map(|(i, _)| i)
            .collect();
        let i = match matches.as_slice() {
            [i] => *i,
            [] => return Err(Error::Usage(format!("no queued write has key {key}"))),
            _ => {
                return Err(Error::Usage(format!(
                    "{key} matches several queued writes; give more of the key"
                )));
            }
        };
        let entry = Entry::from_line(&lines[i]).map_err(|e| Error::Usage(e.to_string()))?;
        let rest: Vec<String> = lines
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, l)| l.clone())
            .collect();
        self.rewrite(&rest)?;
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewMessage;

    #[test]
    fn a_line_round_trips() {
        let e = Entry::new(
            Write::SendMessage(NewMessage {
                to_session: "B/x".into(),
                body: "hi\n\u{1b}".into(),
                subject: None,
                from_session: "A/x".into(),
                created_by_user: "u".into(),
                created_by_machine: "A".into(),
            }),
            "k1".into(),
            WrittenBy {
                user: "u".into(),
                machine: "A".into(),
                session: "A/x".into(),
                api: None,
            },
        );
        let line = e.to_line();
        assert!(!line.contains('\n'));
        assert!(line.contains("\"op\":\"send_message\""));
        assert_eq!(Entry::from_line(&line).unwrap(), e);
        assert!(Entry::from_line("{\"v\":1}").is_err());
    }
}

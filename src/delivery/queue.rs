//! The offline write queue: writes that could not reach the coord API wait
//! in a JSONL file and are replayed, with their original idempotency key, by
//! `coord sync` and at the start of the next hook run. Nothing is ever lost
//! or deleted silently: what the server refuses moves to a rejected file.

use std::fs::File;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::backend::Coord;
use crate::error::{Error, Result};

use super::Retry;
use super::entry::{Entry, Line, MAX_LINE_BYTES};

/// The queue file and its companions.
#[derive(Debug, Clone)]
pub struct Queue {
    path: PathBuf,
}

/// What a drain did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// Writes the server applied now.
    pub delivered: usize,
    /// Writes the server had already applied (an earlier send whose answer
    /// was lost): done, and not counted as delivered.
    pub already: usize,
    pub waiting: usize,
    pub rejected: usize,
    /// Entries written for another coord API than the one in use: kept,
    /// not sent.
    pub elsewhere: usize,
    /// Why the drain stopped early, when it did.
    pub stopped: Option<String>,
}

/// A guard holding one of the queue's exclusive locks.
struct Locked {
    _file: File,
}

/// Two API addresses are the same fleet when they match without
/// credentials, a trailing slash or letter case.
/// Whether a write queued for fleet `a` belongs to fleet `b`: they share
/// a replica (a fleet that grew or lost one is still the same fleet).
fn same_api(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        crate::identity::strip_credentials(s)
            .trim_end_matches('/')
            .to_ascii_lowercase()
    };
    let theirs: Vec<String> = crate::identity::fleet_urls(a).map(norm).collect();
    crate::identity::fleet_urls(b).any(|u| theirs.contains(&norm(u)))
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

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.path.with_file_name(name)
    }

    /// The drain's progress: one line per entry it finished (delivered or
    /// set aside), so a drain that is killed half-way re-sends at most the
    /// write that was in flight.
    fn progress_path(&self) -> PathBuf {
        self.sibling(".progress")
    }

    fn io(&self, what: &str, e: std::io::Error) -> Error {
        Error::bad_input(&self.path, format!("{what}: {e}"))
    }

    /// Takes an exclusive lock file (a separate file, because the queue
    /// itself is replaced by rename). `wait: false` answers None when it is
    /// held. `.lock` guards the file's contents and is held only for
    /// moments; `.drain` is held by the one process delivering.
    fn lock_file(&self, suffix: &str, wait: bool) -> Result<Option<Locked>> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| self.io("cannot create the queue folder", e))?;
        }
        let file = crate::fsx::open_lock(&self.sibling(suffix))
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

    fn lock(&self) -> Result<Locked> {
        self.lock_file(".lock", true)?
            .ok_or_else(|| Error::Failed("cannot lock the queue".into()))
    }

    /// Appends one entry as one whole line, under the lock, and answers how
    /// many writes now wait. An error here means the write was NOT saved.
    /// The lock is only ever held for moments (never across the network),
    /// so a write that must queue does not wait for a drain.
    pub fn append(&self, entry: &Entry) -> Result<usize> {
        let _guard = self.lock()?;
        let mut f =
            crate::fsx::open_append(&self.path).map_err(|e| self.io("cannot open the queue", e))?;
        // A line torn by a crash or a full disk must not swallow this one:
        // start on a fresh line.
        let mut line = String::new();
        let len = f
            .metadata()
            .map_err(|e| self.io("cannot read the queue", e))?
            .len();
        if len > 0 {
            use std::io::{Seek, SeekFrom};
            let mut last = [0u8; 1];
            f.seek(SeekFrom::End(-1))
                .and_then(|_| f.read_exact(&mut last))
                .map_err(|e| self.io("cannot read the queue", e))?;
            if last[0] != b'\n' {
                line.push('\n');
            }
        }
        line.push_str(&entry.to_line());
        line.push('\n');
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| self.io("cannot write the queue", e))?;
        drop(f);
        self.count()
    }

    /// Reads every line, each bounded by `MAX_LINE_BYTES`.
    fn read_lines(&self) -> Result<Vec<Line>> {
        use std::io::BufRead;
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("cannot read the queue", e)),
        };
        let mut r = std::io::BufReader::new(f);
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            let n = (&mut r)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|e| self.io("cannot read the queue", e))?;
            if n == 0 {
                break;
            }
            if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
                // Skip the rest of the line without holding it.
                let mut len = buf.len();
                loop {
                    let chunk = r
                        .fill_buf()
                        .map_err(|e| self.io("cannot read the queue", e))?;
                    if chunk.is_empty() {
                        break;
                    }
                    match chunk.iter().position(|b| *b == b'\n') {
                        Some(i) => {
                            len += i;
                            r.consume(i + 1);
                            break;
                        }
                        None => {
                            let k = chunk.len();
                            len += k;
                            r.consume(k);
                        }
                    }
                }
                let start = String::from_utf8_lossy(&buf[..200.min(buf.len())]).into_owned();
                out.push(Line::TooLong { start, len });
                continue;
            }
            let text = String::from_utf8_lossy(&buf);
            let text = text.trim_end_matches(['\n', '\r']);
            if !text.trim().is_empty() {
                out.push(Line::Text(text.to_string()));
            }
        }
        Ok(out)
    }

    /// The ids a killed drain finished (see `progress_path`).
    fn progress(&self) -> Result<std::collections::HashSet<String>> {
        match std::fs::read_to_string(self.progress_path()) {
            Ok(t) => Ok(t
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(self.io("cannot read the queue's progress file", e)),
        }
    }

    /// How many writes wait (0 when there is no queue file).
    fn count(&self) -> Result<usize> {
        let done = self.progress()?;
        Ok(self
            .read_lines()?
            .iter()
            .filter(|l| !done.contains(&l.id()))
            .count())
    }

    /// How many writes wait (0 when there is no queue file).
    pub fn len(&self) -> Result<usize> {
        self.count()
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The queue file's size in bytes (0 when there is none).
    pub fn bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Every waiting line, parsed where it parses.
    pub fn list(&self) -> Result<Vec<std::result::Result<Entry, (String, String)>>> {
        let done = self.progress()?;
        Ok(self
            .read_lines()?
            .into_iter()
            .filter(|l| !done.contains(&l.id()))
            .map(|l| match l {
                Line::Text(t) => Entry::from_line(&t).map_err(|e| (t, e)),
                Line::TooLong { start, len } => Err((
                    start,
                    format!("a line of {len} bytes, over the {MAX_LINE_BYTES}-byte bound"),
                )),
            })
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
        let mut text = lines.join("\n");
        text.push('\n');
        crate::fsx::write_atomic(&self.path, text.as_bytes())
            .map_err(|e| self.io("cannot rewrite the queue", e))
    }

    /// Rewrites the queue without the lines the progress file names, with
    /// `update` applied to the entries still waiting, then forgets the
    /// progress. Holds the lock for that moment only; a line that is too
    /// long to keep in memory is copied through as it was.
    fn compact(&self, update: &dyn Fn(&mut Entry)) -> Result<()> {
        let _guard = self.lock()?;
        let done = self.progress()?;
        let mut keep = Vec::new();
        let mut long_lines = false;
        for l in self.read_lines()? {
            if done.contains(&l.id()) {
                continue;
            }
            match l {
                Line::Text(t) => match Entry::from_line(&t) {
                    Ok(mut e) => {
                        update(&mut e);
                        keep.push(e.to_line());
                    }
                    Err(_) => keep.push(t),
                },
                Line::TooLong { .. } => long_lines = true,
            }
        }
        if long_lines {
            // Never rewrite what we could not hold: leave the file for
            // `coord sync`, which sets such lines aside one by one.
            return Ok(());
        }
        self.rewrite(&keep)?;
        match std::fs::remove_file(self.progress_path()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("cannot remove the queue's progress file", e)),
        }
    }

    /// Records that the drain finished the line with `id`, durably.
    fn record(&self, id: &str) -> Result<()> {
        let path = self.progress_path();
        let mut f = crate::fsx::open_append(&path)
            .map_err(|e| Error::bad_input(&path, format!("cannot record queue progress: {e}")))?;
        f.write_all(format!("{id}\n").as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| Error::bad_input(&path, format!("cannot record queue progress: {e}")))
    }

    fn reject(&self, line: &str, reason: &str) -> Result<()> {
        let record = serde_json::json!({
            "rejected_at": crate::model::format_time(&crate::clock::now()),
            "reason": reason,
            "line": line,
        });
        let path = self.rejected_path();
        let mut f = crate::fsx::open_append(&path)
            .map_err(|e| Error::bad_input(&path, format!("cannot write the rejected file: {e}")))?;
        f.write_all(format!("{record}\n").as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| Error::bad_input(&path, format!("cannot write the rejected file: {e}")))
    }

    /// Sets aside a line too long to hold: its bytes are copied to the
    /// rejected file as they are, a chunk at a time.
    fn reject_long(&self, start: &str, len: usize) -> Result<()> {
        self.reject(
            start,
            &format!(
                "a queue line of {len} bytes, over the {MAX_LINE_BYTES}-byte bound: no write the server accepts is that long; only its first 200 bytes are kept here"
            ),
        )
    }

    /// Delivers waiting writes in order through `backend` until the queue is
    /// empty, the API is unreachable, or `deadline` passes. `wait: false`
    /// skips the drain when another process is draining. Only entries
    /// written for `api` (or for no recorded API) are sent.
    ///
    /// The queue's lock is held only to read it and, at the end, to rewrite
    /// it: writers queueing meanwhile never wait on the network. Progress is
    /// recorded entry by entry, so a killed drain re-sends at most the write
    /// that was in flight (and its idempotency key makes that harmless).
    pub fn drain(
        &self,
        backend: &dyn Coord,
        api: Option<&str>,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<Report> {
        let mut report = Report::default();
        if !self.path.exists() {
            return Ok(report);
        }
        let Some(_drainer) = self.lock_file(".drain", wait)? else {
            report.waiting = self.len()?;
            report.stopped = Some("another process is syncing the queue".into());
            return Ok(report);
        };
        // Finish what a killed drain left.
        if self.progress_path().exists() {
            self.compact(&|_| {})?;
        }
        let lines = {
            let _guard = self.lock()?;
            self.read_lines()?
        };
        let mut stop: Option<String> = None;
        let mut failed: Option<(String, String)> = None;
        for line in lines {
            if stop.is_some() {
                report.waiting += 1;
                continue;
            }
            let id = line.id();
            let text = match line {
                Line::Text(t) => t,
                Line::TooLong { start, len } => {
                    if deadline.is_some() {
                        // The hook never spends its deadline on damage.
                        report.waiting += 1;
                        continue;
                    }
                    self.reject_long(&start, len)?;
                    self.record(&id)?;
                    report.rejected += 1;
                    continue;
                }
            };
            if deadline.is_some_and(|d| Instant::now() >= d) {
                stop = Some("out of time".into());
                report.waiting += 1;
                continue;
            }
            let entry = match Entry::from_line(&text) {
                Ok(e) => e,
                Err(why) => {
                    self.reject(&text, &format!("unreadable queue line: {why}"))?;
                    self.record(&id)?;
                    report.rejected += 1;
                    continue;
                }
            };
            if let (Some(target), Some(now)) = (entry.identity.api.as_deref(), api)
                && !same_api(target, now)
            {
                report.elsewhere += 1;
                report.waiting += 1;
                continue;
            }
            match backend.apply(&entry.write, Some(&entry.key)) {
                Ok(a) => {
                    self.record(&id)?;
                    if a.replayed {
                        report.already += 1;
                    } else {
                        report.delivered += 1;
                    }
                }
                // A 2xx whose body we could not read was still applied.
                Err(Error::Protocol { .. }) => {
                    self.record(&id)?;
                    report.delivered += 1;
                }
                Err(e) if e.retry() != Retry::Never => {
                    let why = crate::text::cell(&e.to_string(), 300);
                    failed = Some((entry.key.clone(), why.clone()));
                    stop = Some(e.to_string());
                    report.waiting += 1;
                }
                Err(e) => {
                    self.reject(&text, &e.to_string())?;
                    self.record(&id)?;
                    report.rejected += 1;
                }
            }
        }
        self.compact(&|e: &mut Entry| {
            if let Some((key, why)) = &failed
                && e.key == *key
            {
                e.attempts += 1;
                e.last_error = Some(why.clone());
            }
        })?;
        report.stopped = stop;
        Ok(report)
    }

    /// Removes the entry whose key is `key` (or starts with it, if only one
    /// does) and answers it.
    pub fn drop_entry(&self, key: &str) -> Result<Entry> {
        let Some(_drainer) = self.lock_file(".drain", false)? else {
            return Err(Error::Failed(
                "another process is syncing the queue; drop the entry when it is done".into(),
            ));
        };
        if self.progress_path().exists() {
            self.compact(&|_| {})?;
        }
        let _guard = self.lock()?;
        let lines: Vec<String> = self
            .read_lines()?
            .into_iter()
            .filter_map(|l| match l {
                Line::Text(t) => Some(t),
                Line::TooLong { .. } => None,
            })
            .collect();
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

    /// Puts the writes set aside in the rejected file back into the queue
    /// (with their keys, so none is applied twice) and answers how many.
    /// Records that hold no readable entry stay where they are.
    pub fn retry_rejected(&self) -> Result<usize> {
        // A drain that runs, or was killed after setting an entry aside,
        // still lists that entry's key in its progress: put back before the
        // drain finishes (or before its leftovers are compacted), the entry
        // would be dropped as done. So: the drain's lock, then its
        // leftovers, then the entries.
        let Some(_drainer) = self.lock_file(".drain", false)? else {
            return Err(Error::Failed(
                "another process is syncing the queue; run `coord sync --retry-rejected` again when it is done".into(),
            ));
        };
        if self.progress_path().exists() {
            self.compact(&|_| {})?;
            if self.progress_path().exists() {
                return Err(Error::Failed(
                    "the queue holds a line too long to rewrite; run `coord sync` first, then retry".into(),
                ));
            }
        }
        let path = self.rejected_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::bad_input(&path, format!("cannot read: {e}"))),
        };
        let mut back = Vec::new();
        let mut stay = Vec::new();
        for rec in text.lines().filter(|l| !l.trim().is_empty()) {
            let entry = serde_json::from_str::<serde_json::Value>(rec)
                .ok()
                .and_then(|v| v.get("line").and_then(|l| l.as_str()).map(str::to_string))
                .and_then(|l| Entry::from_line(&l).ok());
            match entry {
                Some(mut e) => {
                    e.last_error = None;
                    back.push(e);
                }
                None => stay.push(rec.to_string()),
            }
        }
        for e in &back {
            self.append(e)?;
        }
        let mut rest = stay.join("\n");
        if !rest.is_empty() {
            rest.push('\n');
        }
        crate::fsx::write_atomic(&path, rest.as_bytes())
            .map_err(|e| Error::bad_input(&path, format!("cannot rewrite: {e}")))?;
        Ok(back.len())
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;

//! This machine's registry of Claude Code windows: which window (its
//! `CLAUDE_PID`) goes by which session name. The first live window is
//! `claude-main`; a further one gets a name from its project folder, made
//! unique. A window keeps its name across resume, compact and `/clear` (the
//! process stays the same); a conversation resumed in a new process
//! (`claude --resume`, same Claude session id) gets its old name back; a
//! name is free again once its process is gone. One small JSON file beside
//! the identity, changed under a lock and replaced atomically.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::DEFAULT_SESSION;

pub use super::process::alive;
use super::salvage::salvage;

mod report;
pub use report::{Ended, closes_pending, unreported_pending};

pub const REGISTRY_FILE: &str = "coord-windows.json";

/// One window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub pid: u32,
    pub name: String,
    /// The project folder's name, for people.
    #[serde(default)]
    pub project: Option<String>,
    /// Message ids already put into this window's context (by the
    /// session-start block, a prompt or a wake-up): each is shown once.
    #[serde(default)]
    pub shown: Vec<i64>,
    /// The process of this window's waiter (`coord-hook wait`); a newer
    /// waiter takes over, the older one steps aside.
    #[serde(default)]
    pub waiter: Option<u32>,
    /// Claude Code's ids of the conversations this window has held (the
    /// newest last; `/clear` starts a new one): a conversation resumed in
    /// another process finds its name by them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversations: Vec<String>,
    /// When a session start's block last wrote what it showed (ms since
    /// the epoch): a waiter started beside it leaves the messages to the
    /// block until then.
    #[serde(default)]
    pub block_at_ms: i64,
    /// When a hook last ran for it (ms since the epoch): how a window
    /// known without a process id (no `CLAUDE_PID`) is judged alive.
    #[serde(default)]
    pub seen_ms: i64,
    /// Of `shown`, what the store has not been told yet (v1.2 delivery):
    /// the window's waiter reports it, off the hooks' hot path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreported: Vec<i64>,
}

/// A window whose process ended, kept for a while so that its
/// conversation, resumed in a new process, keeps its address and what it
/// was shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Closed {
    name: String,
    conversations: Vec<String>,
    shown: Vec<i64>,
    closed_ms: i64,
}

/// The most shown ids a window remembers (the newest).
const MAX_SHOWN: usize = 2_000;
/// The most conversation ids a window remembers.
const MAX_CONVERSATIONS: usize = 8;
/// How many closed windows are remembered, and for how long.
const MAX_CLOSED: usize = 64;
const CLOSED_KEPT_MS: i64 = 14 * 24 * 3600 * 1000;
/// How stale a window's `seen_ms` may get before a hook refreshes it.
const SEEN_PRECISION_MS: i64 = 60_000;
/// A window known only by its conversation (no process id) counts as open
/// while a hook ran for it this recently.
const NO_PID_ALIVE_MS: i64 = 12 * 3600 * 1000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Registry {
    #[serde(default)]
    windows: Vec<Window>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    closed: Vec<Closed>,
    /// Windows whose process ended, not yet reported closed to the store
    /// (with what they were shown that it was not told).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    to_close: Vec<report::Ended>,
}

/// Which window a hook runs for: its Claude Code process (`CLAUDE_PID`),
/// and the conversation (Claude Code's `session_id`), either of which may
/// be unknown. Without a process id the conversation is the key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowId {
    pub pid: Option<u32>,
    pub conversation: Option<String>,
}

impl WindowId {
    /// Whether there is anything to know the window by.
    pub fn is_known(&self) -> bool {
        self.pid.is_some() || self.conversation.is_some()
    }

    fn matches(&self, w: &Window) -> bool {
        match (&self.pid, &self.conversation) {
            (Some(pid), _) => w.pid == *pid,
            (None, Some(c)) => w.pid == 0 && w.conversations.iter().any(|k| k == c),
            (None, None) => false,
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Window {
    fn is_open(&self, now: i64) -> bool {
        if self.pid == 0 {
            now - self.seen_ms < NO_PID_ALIVE_MS
        } else {
            alive(self.pid)
        }
    }

    fn remember(&mut self, conversation: Option<&str>) {
        // Only what liveness needs (no process id): a minute's precision,
        // so that a steady window's hooks write nothing.
        let now = now_ms();
        if self.pid == 0 && now - self.seen_ms > SEEN_PRECISION_MS {
            self.seen_ms = now;
        }
        if let Some(c) = conversation
            && self.conversations.last().map(String::as_str) != Some(c)
        {
            self.conversations.retain(|k| k != c);
            self.conversations.push(c.to_string());
            if self.conversations.len() > MAX_CONVERSATIONS {
                self.conversations.remove(0);
            }
        }
    }
}

/// A session name from a project folder: letters, digits, `.`, `_` and
/// `-`, at most 40 characters.
pub fn name_from_project(project: Option<&str>) -> String {
    let raw = project.unwrap_or("");
    let mut out = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_matches(['-', '.']).to_string();
    if out.is_empty() || out.eq_ignore_ascii_case(DEFAULT_SESSION) {
        "claude".into()
    } else {
        out
    }
}

pub struct Windows {
    path: PathBuf,
    /// How long to wait for the registry's lock: a stuck holder (a hook
    /// stopped mid-write, a slow network home) must never hold a hook past
    /// its own deadline.
    wait: Duration,
}

/// How long a caller with no deadline of its own waits for the lock.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(2);

/// The registry file of the `.claude` folder `dir`.
pub fn registry(dir: &Path) -> Windows {
    Windows {
        path: dir.join(REGISTRY_FILE),
        wait: DEFAULT_LOCK_WAIT,
    }
}

/// What became of a damaged registry file.
const DAMAGED_SUFFIX: &str = "json.damaged";
/// The version before the last change, kept to rebuild from.
const PREVIOUS_SUFFIX: &str = "json.prev";

impl Windows {
    /// The same registry, waiting at most until `deadline` for its lock.
    pub fn until(mut self, deadline: Instant) -> Windows {
        self.wait = deadline.saturating_duration_since(Instant::now());
        self
    }

    /// The registry as it is on disk. A damaged file (torn by a crash, a
    /// full disk, a hand edit) is set aside, and the registry rebuilt from
    /// the version before the last change, else from whatever whole
    /// windows the damaged bytes still name: a live window keeps its name
    /// rather than handing it (and its mail) to the next window that asks.
    fn read(&self) -> Registry {
        let prev = || {
            std::fs::read(self.path.with_extension(PREVIOUS_SUFFIX))
                .ok()
                .and_then(|b| serde_json::from_slice::<Registry>(&b).ok())
                .unwrap_or_default()
        };
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            // None yet, or a writer stopped between keeping the version
            // before and writing the next: the version before it is.
            Err(_) => return prev(),
        };
        if let Ok(r) = serde_json::from_slice(&bytes) {
            return r;
        }
        let _ = std::fs::rename(&self.path, self.path.with_extension(DAMAGED_SUFFIX));
        let mut r = prev();
        for w in salvage(&bytes) {
            if !r.windows.iter().any(|k| k.pid == w.pid) {
                r.windows.push(w);
            }
        }
        r
    }

    /// Reads without the lock (each version is renamed into place whole;
    /// in the moment between two renames, the version before): enough to
    /// learn a registered window's name while a holder is stuck.
    fn peek(&self) -> Option<Registry> {
        let bytes = std::fs::read(&self.path)
            .or_else(|_| std::fs::read(self.path.with_extension(PREVIOUS_SUFFIX)))
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn write(&self, r: &Registry) -> Result<()> {
        // The version before this change becomes `.prev` (a rename, no
        // copy: this runs on every session start). Best effort: only a
        // rebuild after damage reads it.
        let _ = std::fs::rename(&self.path, self.path.with_extension(PREVIOUS_SUFFIX));
        let text = serde_json::to_vec_pretty(r).map_err(|e| Error::Failed(e.to_string()))?;
        // Renamed into place whole, not synced: the registry is what live
        // windows are called now, rebuilt from `.prev` or by the windows
        // themselves after a crash, and a sync on every session start
        // would cost more than the hook's reads.
        crate::fsx::write_replace(&self.path, &text, false)
            .map_err(|e| Error::bad_input(&self.path, format!("cannot write: {e}")))
    }

    /// Runs `f` on the registry under its lock, with dead windows dropped,
    /// and saves what it leaves. Waits for the lock no longer than the
    /// registry's wait: then it fails, and the caller goes on without it.
    fn with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> Result<T> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::bad_input(dir, format!("cannot create: {e}")))?;
        }
        let lock_path = self.path.with_extension("json.lock");
        let lock = crate::fsx::open_lock(&lock_path)
            .map_err(|e| Error::bad_input(&lock_path, format!("cannot open: {e}")))?;
        let until = Instant::now() + self.wait;
        let mut pause = Duration::from_millis(2);
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < until => {
                    std::thread::sleep(pause.min(until.saturating_duration_since(Instant::now())));
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Failed(format!(
                        "the window registry {} is locked by another process",
                        lock_path.display()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::bad_input(&lock_path, format!("cannot lock: {e}")));
                }
            }
        }
        let read = self.read();
        let mut r = read.clone();
        let now = now_ms();
        let (open, gone): (Vec<Window>, Vec<Window>) = std::mem::take(&mut r.windows)
            .into_iter()
            .partition(|w| w.is_open(now));
        r.windows = open;
        report::ended(&mut r, &gone);
        for w in gone.into_iter().filter(|w| !w.conversations.is_empty()) {
            r.closed.push(Closed {
                name: w.name,
                conversations: w.conversations,
                shown: w.shown,
                closed_ms: now,
            });
        }
        r.closed.retain(|c| now - c.closed_ms < CLOSED_KEPT_MS);
        if r.closed.len() > MAX_CLOSED {
            let cut = r.closed.len() - MAX_CLOSED;
            r.closed.drain(..cut);
        }
        let out = f(&mut r);
        if r != read {
            self.write(&r)?;
        }
        Ok(out)
    }

    /// The name of window `win`: the one it has, or a new one — `wanted`
    /// when given (an explicit name), else the name its conversation had in
    /// a process that ended (a resume), else `claude-main` when no live
    /// window has it, else one from the project folder, made unique. A
    /// name `wanted` by a repository (`from_repo`: a project's identity
    /// file, which a stranger may have written) that another live window
    /// has is refused: the window gets a name of its own, and the second
    /// value says why.
    pub fn name_for(
        &self,
        win: &WindowId,
        wanted: Option<&str>,
        from_repo: bool,
        project: Option<&str>,
    ) -> Result<(String, Option<String>)> {
        let named = self.with(|r| {
            let taken_by_other = |r: &Registry, n: &str| {
                r.windows
                    .iter()
                    .find(|w| !win.matches(w) && w.name.eq_ignore_ascii_case(n))
                    .map(|w| w.pid)
            };
            let mut note = None;
            let wanted = match wanted {
                Some(n) if from_repo => match taken_by_other(r, n) {
                    Some(other) => {
                        note = Some(format!(
                            "the project's identity file asks for session name \"{n}\", which another live window (process {other}) already has; this window got a name of its own"
                        ));
                        None
                    }
                    None => Some(n),
                },
                w => w,
            };
            let conversation = win.conversation.as_deref();
            // The same conversation known before without a process id (a
            // hook that ran without CLAUDE_PID): now it has one.
            if let (Some(pid), Some(c)) = (win.pid, conversation)
                && !r.windows.iter().any(|w| w.pid == pid)
                && let Some(w) = r
                    .windows
                    .iter_mut()
                    .find(|w| w.pid == 0 && w.conversations.iter().any(|k| k == c))
            {
                w.pid = pid;
            }
            if let Some(w) = r.windows.iter_mut().find(|w| win.matches(w)) {
                if let Some(name) = wanted {
                    w.name = name.to_string();
                }
                w.remember(conversation);
                return (w.name.clone(), note);
            }
            // A conversation resumed in a new process: its old name (when no
            // live window took it meanwhile) and what it was shown.
            let resumed = conversation.and_then(|c| {
                let i = r
                    .closed
                    .iter()
                    .rposition(|k| k.conversations.iter().any(|x| x == c))?;
                let k = r.closed.remove(i);
                Some(k)
            });
            let taken = |n: &str| r.windows.iter().any(|w| w.name.eq_ignore_ascii_case(n));
            let (name, shown) = match (wanted, resumed) {
                (Some(n), k) => (n.to_string(), k.map(|k| k.shown).unwrap_or_default()),
                (None, Some(k)) if !taken(&k.name) => (k.name, k.shown),
                (None, k) => {
                    let name = if !taken(DEFAULT_SESSION) {
                        DEFAULT_SESSION.to_string()
                    } else {
                        let base = name_from_project(project);
                        let mut name = base.clone();
                        let mut i = 2;
                        while taken(&name) {
                            name = format!("{base}-{i}");
                            i += 1;
                        }
                        name
                    };
                    (name, k.map(|k| k.shown).unwrap_or_default())
                }
            };
            let mut w = Window {
                pid: win.pid.unwrap_or(0),
                name: name.clone(),
                project: project.map(str::to_string),
                shown,
                waiter: None,
                conversations: Vec::new(),
                block_at_ms: 0,
                seen_ms: 0,
                unreported: Vec::new(),
            };
            w.remember(conversation);
            r.windows.push(w);
            (name, note)
        });
        match named {
            Ok(n) => Ok(n),
            // Locked by a stuck holder: a window that registered before
            // keeps its name (read without the lock); a new one waits for
            // its next hook.
            Err(e) => match self.peek().and_then(|r| {
                r.windows
                    .into_iter()
                    .find(|w| win.matches(w))
                    .map(|w| w.name)
            }) {
                Some(name) => Ok((name, None)),
                None => Err(e),
            },
        }
    }

    /// The names of this machine's open windows, and of those that closed,
    /// read without the lock (None when there is no registry to read).
    pub fn window_names(&self) -> Option<(Vec<String>, Vec<String>)> {
        let r = self.peek()?;
        let now = now_ms();
        let (open, gone): (Vec<Window>, Vec<Window>) =
            r.windows.into_iter().partition(|w| w.is_open(now));
        let closed = gone
            .into_iter()
            .map(|w| w.name)
            .chain(r.closed.into_iter().map(|c| c.name))
            .collect();
        Some((open.into_iter().map(|w| w.name).collect(), closed))
    }

    /// The name window `win` has, if it registered, and when its last
    /// session-start block was written (ms since the epoch, 0 never).
    pub fn name_of(&self, win: &WindowId) -> Result<Option<(String, i64)>> {
        self.with(|r| {
            r.windows
                .iter()
                .find(|w| win.matches(w))
                .map(|w| (w.name.clone(), w.block_at_ms))
        })
    }

    /// What window `win` has been shown (its conversation's, across a
    /// resume).
    pub fn shown_of(&self, win: &WindowId) -> Result<Vec<i64>> {
        self.with(|r| {
            r.windows
                .iter()
                .find(|w| win.matches(w))
                .map(|w| w.shown.clone())
                .unwrap_or_default()
        })
    }

    /// A session start's block is written: with `keep` (a resumed
    /// conversation, whose history still holds what it was shown) `ids`
    /// join what it has been shown; otherwise (start, clear, compact: a new
    /// context) they are all it has been shown.
    pub fn reset_shown(&self, win: &WindowId, ids: &[i64], keep: bool) -> Result<()> {
        self.with(|r| {
            if let Some(w) = r.windows.iter_mut().find(|w| win.matches(w)) {
                if !keep {
                    w.shown.clear();
                }
                report::unreported(w, ids);
                w.shown.extend_from_slice(ids);
                w.shown.sort_unstable();
                w.shown.dedup();
                if w.shown.len() > MAX_SHOWN {
                    let cut = w.shown.len() - MAX_SHOWN;
                    w.shown.drain(..cut);
                }
                w.block_at_ms = now_ms();
            }
        })
    }

    /// Of `unread`, those window `win` has not been shown yet; `choose`
    /// picks which of them are put into the context now (those it could
    /// frame), and only those are marked shown — under the registry's
    /// lock, so that a prompt and a wake-up racing for the same message
    /// show it exactly once. A window that never registered gets nothing.
    pub fn take_new<T>(
        &self,
        win: &WindowId,
        unread: &[i64],
        choose: impl FnOnce(&[i64]) -> (Vec<i64>, T),
    ) -> Result<Option<T>> {
        self.with(|r| {
            let w = r.windows.iter_mut().find(|w| win.matches(w))?;
            if win.pid.is_none() {
                w.remember(None);
            }
            report::note_unreported(w);
            let new: Vec<i64> = unread
                .iter()
                .copied()
                .filter(|id| w.shown.binary_search(id).is_err())
                .collect();
            if new.is_empty() {
                return None;
            }
            let (chosen, out) = choose(&new);
            // (Not pruned by what is unread: `unread` may be only the part
            // above some id, as the waiter's long-poll asks. The newest
            // MAX_SHOWN are kept.)
            let chosen: Vec<i64> = chosen.into_iter().filter(|id| new.contains(id)).collect();
            report::unreported(w, &chosen);
            report::note_unreported(w);
            w.shown.extend(chosen);
            w.shown.sort_unstable();
            w.shown.dedup();
            if w.shown.len() > MAX_SHOWN {
                let cut = w.shown.len() - MAX_SHOWN;
                w.shown.drain(..cut);
            }
            Some(out)
        })
    }

    /// Makes `me` the waiter of window `win` (the one before steps aside).
    pub fn set_waiter(&self, win: &WindowId, me: u32) -> Result<bool> {
        self.with(|r| match r.windows.iter_mut().find(|w| win.matches(w)) {
            Some(w) => {
                w.waiter = Some(me);
                true
            }
            None => false,
        })
    }

    /// While `me` is still window `win`'s waiter (the window is alive and
    /// no newer waiter took over): the highest id the window has been shown
    /// (0 when none).
    pub fn waiting_after(&self, win: &WindowId, me: u32) -> Result<Option<i64>> {
        self.with(|r| {
            r.windows
                .iter()
                .find(|w| win.matches(w) && w.waiter == Some(me))
                .map(|w| w.shown.last().copied().unwrap_or(0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_tidy() {
        assert_eq!(name_from_project(Some("web app")), "web-app");
        assert_eq!(name_from_project(Some("Übung/../x")), "bung-..-x");
        assert_eq!(name_from_project(Some("claude-main")), "claude");
        assert_eq!(name_from_project(None), "claude");
        assert_eq!(name_from_project(Some(&"a".repeat(80))).len(), 40);
    }

    #[test]
    fn this_process_is_alive() {
        assert!(alive(std::process::id()));
    }

    #[test]
    fn a_writer_stopped_between_its_two_renames_loses_no_window() {
        let dir = tempfile::tempdir().unwrap();
        let reg = registry(dir.path());
        let me = WindowId {
            pid: Some(std::process::id()),
            conversation: None,
        };
        let (name, _) = reg.name_for(&me, None, false, Some("web")).unwrap();
        // Keep a second version, so that `.prev` exists, then stop a writer
        // after its first rename: only `.prev` is there.
        reg.reset_shown(&me, &[1], false).unwrap();
        let main = dir.path().join(REGISTRY_FILE);
        std::fs::rename(&main, main.with_extension(PREVIOUS_SUFFIX)).unwrap();
        assert_eq!(reg.name_of(&me).unwrap().map(|(n, _)| n), Some(name));
    }
}

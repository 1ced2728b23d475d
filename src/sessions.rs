//! This machine's registry of Claude Code windows: which window (its
//! `CLAUDE_PID`) goes by which session name. The first live window is
//! `claude-main`; a further one gets a name from its project folder, made
//! unique. A window keeps its name across resume, compact and `/clear` (the
//! process stays the same); a name is free again once its process is gone.
//! One small JSON file beside the identity, changed under a lock and
//! replaced atomically.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::DEFAULT_SESSION;

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
}

/// The most shown ids a window remembers (the newest).
const MAX_SHOWN: usize = 2_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Registry {
    #[serde(default)]
    windows: Vec<Window>,
}

/// Whether process `pid` is running.
#[cfg(unix)]
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether process `pid` is running (OpenProcess + GetExitCodeProcess).
#[cfg(windows)]
pub fn alive(pid: u32) -> bool {
    use std::ffi::c_void;
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn OpenProcess(access: u32, inherit: i32, pid: u32) -> *mut c_void;
        fn GetExitCodeProcess(process: *mut c_void, code: *mut u32) -> i32;
        fn CloseHandle(handle: *mut c_void) -> i32;
    }
    const PROCESS_QUERY_LIMITED_INFORMATION: u32 = 0x1000;
    const STILL_ACTIVE: u32 = 259;
    const ERROR_ACCESS_DENIED: i32 = 5;
    // SAFETY: plain Win32 calls; the handle is closed before returning.
    unsafe {
        let h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if h.is_null() {
            // Another user's process exists but may not be opened.
            return std::io::Error::last_os_error().raw_os_error() == Some(ERROR_ACCESS_DENIED);
        }
        let mut code = 0u32;
        let ok = GetExitCodeProcess(h, &mut code);
        CloseHandle(h);
        ok != 0 && code == STILL_ACTIVE
    }
}

#[cfg(not(any(unix, windows)))]
pub fn alive(_pid: u32) -> bool {
    true
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
}

/// The registry file of the `.claude` folder `dir`.
pub fn registry(dir: &Path) -> Windows {
    Windows {
        path: dir.join(REGISTRY_FILE),
    }
}

impl Windows {
    fn read(&self) -> Registry {
        // A damaged file is no reason to stop a session: start afresh (the
        // live windows register again at their next hook run).
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write(&self, r: &Registry) -> Result<()> {
        let text = serde_json::to_vec_pretty(r).map_err(|e| Error::Failed(e.to_string()))?;
        crate::write_atomic(&self.path, &text)
            .map_err(|e| Error::bad_input(&self.path, format!("cannot write: {e}")))
    }

    /// Runs `f` on the registry under its lock, with dead windows dropped,
    /// and saves what it leaves.
    fn with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> Result<T> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::bad_input(dir, format!("cannot create: {e}")))?;
        }
        let lock_path = self.path.with_extension("json.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::bad_input(&lock_path, format!("cannot open: {e}")))?;
        lock.lock()
            .map_err(|e| Error::bad_input(&lock_path, format!("cannot lock: {e}")))?;
        let read = self.read();
        let mut r = read.clone();
        r.windows.retain(|w| alive(w.pid));
        let out = f(&mut r);
        if r != read {
            self.write(&r)?;
        }
        Ok(out)
    }

    /// The name of window `pid`: the one it has, or a new one — `wanted`
    /// when given (an explicit name), else `claude-main` when no live window
    /// has it, else one from the project folder, made unique.
    pub fn name_for(
        &self,
        pid: u32,
        wanted: Option<&str>,
        project: Option<&str>,
    ) -> Result<String> {
        self.with(|r| {
            if let Some(w) = r.windows.iter_mut().find(|w| w.pid == pid) {
                if let Some(name) = wanted {
                    w.name = name.to_string();
                }
                return w.name.clone();
            }
            let taken = |n: &str| r.windows.iter().any(|w| w.name.eq_ignore_ascii_case(n));
            let name = match wanted {
                Some(n) => n.to_string(),
                None if !taken(DEFAULT_SESSION) => DEFAULT_SESSION.to_string(),
                None => {
                    let base = name_from_project(project);
                    let mut name = base.clone();
                    let mut i = 2;
                    while taken(&name) {
                        name = format!("{base}-{i}");
                        i += 1;
                    }
                    name
                }
            };
            r.windows.push(Window {
                pid,
                name: name.clone(),
                project: project.map(str::to_string),
                shown: Vec::new(),
                waiter: None,
            });
            name
        })
    }

    /// The name window `pid` has, if it registered.
    pub fn name_of(&self, pid: u32) -> Result<Option<String>> {
        self.with(|r| {
            r.windows
                .iter()
                .find(|w| w.pid == pid)
                .map(|w| w.name.clone())
        })
    }

    /// A new context (session start, resume, clear, compact): what it
    /// shows now is all that has been shown.
    pub fn reset_shown(&self, pid: u32, ids: &[i64]) -> Result<()> {
        self.with(|r| {
            if let Some(w) = r.windows.iter_mut().find(|w| w.pid == pid) {
                w.shown = ids.to_vec();
                w.shown.sort_unstable();
                w.shown.dedup();
            }
        })
    }

    /// Of `unread`, those window `pid` has not been shown yet, now marked
    /// shown — under the registry's lock, so that a prompt and a wake-up
    /// racing for the same message show it exactly once. A window that
    /// never registered gets nothing.
    pub fn take_new(&self, pid: u32, unread: &[i64]) -> Result<Vec<i64>> {
        self.with(|r| {
            let Some(w) = r.windows.iter_mut().find(|w| w.pid == pid) else {
                return Vec::new();
            };
            let new: Vec<i64> = unread
                .iter()
                .copied()
                .filter(|id| w.shown.binary_search(id).is_err())
                .collect();
            if new.is_empty() {
                return new;
            }
            // (Not pruned by what is unread: `unread` may be only the part
            // above some id, as the waiter's long-poll asks. The newest
            // MAX_SHOWN are kept.)
            w.shown.extend(&new);
            w.shown.sort_unstable();
            w.shown.dedup();
            if w.shown.len() > MAX_SHOWN {
                let cut = w.shown.len() - MAX_SHOWN;
                w.shown.drain(..cut);
            }
            new
        })
    }

    /// Makes `me` the waiter of window `pid` (the one before steps aside).
    pub fn set_waiter(&self, pid: u32, me: u32) -> Result<bool> {
        self.with(|r| match r.windows.iter_mut().find(|w| w.pid == pid) {
            Some(w) => {
                w.waiter = Some(me);
                true
            }
            None => false,
        })
    }

    /// While `me` is still window `pid`'s waiter (the window is alive and
    /// no newer waiter took over): the highest id the window has been shown
    /// (0 when none).
    pub fn waiting_after(&self, pid: u32, me: u32) -> Result<Option<i64>> {
        self.with(|r| {
            r.windows
                .iter()
                .find(|w| w.pid == pid && w.waiter == Some(me))
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
}

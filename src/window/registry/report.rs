//! v1.2 delivery, from this machine's side: what each window was shown
//! that the store has not been told yet, and which windows ended and are
//! not yet known closed. Hooks only note these in the registry they
//! already write; a waiter reports them (see `hook::report`).

use super::*;

/// The most ids a window keeps unreported (the newest), and the most
/// names waiting to be reported closed.
const MAX_UNREPORTED: usize = 500;
const MAX_TO_CLOSE: usize = 64;

/// Notes that `ids` were put into window `w`'s context.
pub(super) fn unreported(w: &mut Window, ids: &[i64]) {
    w.unreported.extend_from_slice(ids);
    w.unreported.sort_unstable();
    w.unreported.dedup();
    if w.unreported.len() > MAX_UNREPORTED {
        let cut = w.unreported.len() - MAX_UNREPORTED;
        w.unreported.drain(..cut);
    }
}

/// Whether this process saw windows of the machine that ended and are not
/// yet reported closed (set whenever the registry is read under its lock):
/// a hook that sees it reports them after its answer, at no cost otherwise.
static PENDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn note_pending(r: &Registry) {
    PENDING.store(!r.to_close.is_empty(), std::sync::atomic::Ordering::Relaxed);
}

/// Whether closes wait to be reported (as this process last saw).
pub fn closes_pending() -> bool {
    PENDING.load(std::sync::atomic::Ordering::Relaxed)
}

/// A window that ended: its name, and what it was shown that the store
/// was not told yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ended {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreported: Vec<i64>,
    /// False when an open window has the name again (resumed, or shared):
    /// then only what it was shown is reported, never a close.
    #[serde(default = "yes", skip_serializing)]
    pub close: bool,
}

fn yes() -> bool {
    true
}

/// Notes that windows `gone` ended, and whether any wait to be reported.
pub(super) fn ended(r: &mut Registry, gone: &[Window]) {
    for w in gone {
        closing(r, w);
    }
    note_pending(r);
}

/// Notes that window `w` ended.
fn closing(r: &mut Registry, w: &Window) {
    match r.to_close.iter_mut().find(|e| e.name == w.name) {
        Some(e) => {
            e.unreported.extend_from_slice(&w.unreported);
            e.unreported.sort_unstable();
            e.unreported.dedup();
        }
        None => r.to_close.push(Ended {
            name: w.name.clone(),
            unreported: w.unreported.clone(),
            close: true,
        }),
    }
    if r.to_close.len() > MAX_TO_CLOSE {
        let cut = r.to_close.len() - MAX_TO_CLOSE;
        r.to_close.drain(..cut);
    }
}

/// Whether this process saw its window with shown ids the store was not
/// told and no waiter alive to tell it (set under the registry's lock).
static UNREPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(super) fn note_unreported(w: &Window) {
    let pending = !w.unreported.is_empty() && !w.waiter.is_some_and(alive);
    UNREPORTED.store(pending, std::sync::atomic::Ordering::Relaxed);
}

/// Whether this window has shown ids to report and no waiter to do it (as
/// this process last saw).
pub fn unreported_pending() -> bool {
    UNREPORTED.load(std::sync::atomic::Ordering::Relaxed)
}

impl Windows {
    /// What window `win` was shown that the store has not been told.
    pub fn unreported(&self, win: &WindowId) -> Result<Vec<i64>> {
        self.with(|r| {
            r.windows
                .iter()
                .find(|w| win.matches(w))
                .map(|w| w.unreported.clone())
                .unwrap_or_default()
        })
    }

    /// The store has been told of `ids` (or cannot be: a server before
    /// v1.2).
    pub fn reported(&self, win: &WindowId, ids: &[i64]) -> Result<()> {
        self.with(|r| {
            if let Some(w) = r.windows.iter_mut().find(|w| win.matches(w)) {
                w.unreported.retain(|id| !ids.contains(id));
            }
        })
    }

    /// The windows that ended and are not yet reported; one whose name an
    /// open window has again (a conversation resumed in a new process,
    /// another window of an explicitly shared name) is not to be closed,
    /// only what it was shown reported.
    pub fn to_close(&self) -> Result<Vec<Ended>> {
        self.with(|r| {
            let open: Vec<String> = r
                .windows
                .iter()
                .map(|w| w.name.to_ascii_lowercase())
                .collect();
            let is_open = |e: &Ended| open.contains(&e.name.to_ascii_lowercase());
            r.to_close
                .retain(|e| !e.unreported.is_empty() || !is_open(e));
            r.to_close
                .iter()
                .map(|e| Ended {
                    close: !is_open(e),
                    ..e.clone()
                })
                .collect()
        })
    }

    /// The windows named `names` are reported.
    pub fn closed_reported(&self, names: &[String]) -> Result<()> {
        self.with(|r| r.to_close.retain(|e| !names.contains(&e.name)))
    }

    /// Whether anything waits to be reported: window `win`'s shown ids, or
    /// ended windows (read without the lock: the reporter's every look).
    /// A window whose process is gone counts: reading under the lock is
    /// what moves it to the ended ones.
    pub fn pending(&self, win: &WindowId) -> bool {
        let now = now_ms();
        self.peek().is_none_or(|r| {
            !r.to_close.is_empty()
                || r.windows
                    .iter()
                    .any(|w| (win.matches(w) && !w.unreported.is_empty()) || !w.is_open(now))
        })
    }

    /// Whether an open window goes by `name` (other than `win`).
    pub fn name_open_elsewhere(&self, name: &str, win: &WindowId) -> bool {
        self.peek().is_some_and(|r| {
            let now = now_ms();
            r.windows
                .iter()
                .any(|w| !win.matches(w) && w.name.eq_ignore_ascii_case(name) && w.is_open(now))
        })
    }
}

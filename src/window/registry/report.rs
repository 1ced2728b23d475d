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

pub(super) fn note_pending(r: &Registry) {
    PENDING.store(!r.to_close.is_empty(), std::sync::atomic::Ordering::Relaxed);
}

/// Whether closes wait to be reported (as this process last saw).
pub fn closes_pending() -> bool {
    PENDING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Notes that a window named `name` ended.
pub(super) fn closing(r: &mut Registry, name: &str) {
    if !r.to_close.iter().any(|n| n == name) {
        r.to_close.push(name.to_string());
    }
    if r.to_close.len() > MAX_TO_CLOSE {
        let cut = r.to_close.len() - MAX_TO_CLOSE;
        r.to_close.drain(..cut);
    }
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

    /// The names of windows that ended and are not yet reported closed,
    /// leaving out (and forgetting) any name an open window has again: a
    /// conversation resumed in a new process, or another window of an
    /// explicitly shared name.
    pub fn to_close(&self) -> Result<Vec<String>> {
        self.with(|r| {
            let open: Vec<String> = r
                .windows
                .iter()
                .map(|w| w.name.to_ascii_lowercase())
                .collect();
            r.to_close
                .retain(|n| !open.contains(&n.to_ascii_lowercase()));
            r.to_close.clone()
        })
    }

    /// `names` are reported closed.
    pub fn closed_reported(&self, names: &[String]) -> Result<()> {
        self.with(|r| r.to_close.retain(|n| !names.contains(n)))
    }

    /// Whether window `win` has a waiter running now.
    pub fn has_waiter(&self, win: &WindowId) -> bool {
        self.peek().is_some_and(|r| {
            r.windows
                .iter()
                .find(|w| win.matches(w))
                .and_then(|w| w.waiter)
                .is_some_and(alive)
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

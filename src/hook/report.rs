//! v1.2 delivery reports: telling the store what this machine's windows
//! were shown (`POST /messages/shown`) and which of them ended (`PUT
//! /sessions/{id}` with `state: closed`). The hooks only note these in the
//! window registry they already write; the waiter reports them every
//! `REPORT_EVERY`, off their hot path. Without a waiter (none installed,
//! `claude -p`) the prompt hook reports what it showed itself.

use std::time::{Duration, Instant};

use crate::connect::{self, Budget};
use crate::error::Error;
use crate::identity::Identity;
use crate::model::{CLOSED, SessionUpdate, Write};
use crate::window::{WindowId, registry};

/// How often a waiter reports: what a hook showed is recorded within this
/// (and one write) of being printed.
pub const REPORT_EVERY: Duration = Duration::from_millis(400);
/// How long one report may take.
const REPORT_DEADLINE: Duration = Duration::from_secs(3);

/// Whether a write's failure means the server will never take it (a
/// server before v1.2 — a 4xx, or an answer that is not v1.2's — or a
/// session it never saw): then it is dropped, not retried.
fn never(e: &Error) -> bool {
    matches!(e, Error::Rejected { status, .. } if (400..500).contains(status))
        || matches!(e, Error::Protocol { .. })
}

/// Runs `w` on the store within `deadline`: Ok(true) done, Ok(false) to
/// be dropped, Err to be tried again later.
fn send(id: &Identity, w: &Write, deadline: Instant) -> Result<bool, Error> {
    let backend = match connect::open(id, Budget::Hook { deadline })? {
        Some(b) => b,
        None => return Ok(false),
    };
    match backend.coord().write(w, None) {
        Ok(_) => Ok(true),
        Err(e) if never(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reports what window `win` (session `id`) was shown and the store has
/// not been told, within `deadline`. Quiet: a failure is tried again next
/// time.
pub fn shown(id: &Identity, win: &WindowId, deadline: Instant) {
    let reg = registry(&id.state_dir);
    let Ok(ids) = reg.unreported(win) else {
        return;
    };
    if ids.is_empty() {
        return;
    }
    let w = Write::MarkShown {
        session: id.session_id(),
        ids: ids.clone(),
    };
    if send(id, &w, deadline).is_ok() {
        let _ = reg.reported(win, &ids);
    }
}

/// Reports the windows of this machine that ended as closed sessions.
pub fn closes(id: &Identity) {
    closes_within(id, Instant::now() + REPORT_DEADLINE);
}

/// The same within `deadline`.
pub fn closes_within(id: &Identity, deadline: Instant) {
    let reg = registry(&id.state_dir);
    let Ok(names) = reg.to_close() else {
        return;
    };
    let mut done = Vec::new();
    for name in names {
        let session = format!("{}/{name}", id.machine);
        match close_by(id, &session, deadline) {
            Ok(()) => done.push(name),
            Err(_) => break, // the store is away: all of them later
        }
    }
    if !done.is_empty() {
        let _ = reg.closed_reported(&done);
    }
}

/// Marks `session` closed in the store, and forgets that its presence is
/// fresh (a conversation resumed at once must be seen live again).
pub fn close(id: &Identity, session: &str) -> Result<(), Error> {
    close_by(id, session, Instant::now() + REPORT_DEADLINE)
}

fn close_by(id: &Identity, session: &str, deadline: Instant) -> Result<(), Error> {
    let w = Write::TouchSession {
        session_id: session.to_string(),
        update: SessionUpdate {
            user: id.user.clone(),
            project: None,
            client: None,
            state: Some(CLOSED.into()),
        },
    };
    send(id, &w, deadline)?;
    crate::presence::forget(id, session);
    Ok(())
}

/// Claude Code's SessionEnd for window `win`: unless the window goes on
/// (`/clear`, a resume in the same process), its session is closed now —
/// when no other open window of this machine has its name.
pub fn session_end(id: &Identity, win: &WindowId, reason: Option<&str>) {
    if matches!(reason, Some("clear" | "resume")) || !win.is_known() {
        return;
    }
    if registry(&id.state_dir).name_open_elsewhere(&id.session, win) {
        return;
    }
    let _ = close(id, &id.session_id());
}

/// A wake-up's messages, reported before the waiter exits.
pub fn wake_shown(id: &Identity, win: &WindowId) {
    shown(id, win, Instant::now() + REPORT_DEADLINE);
}

/// The waiter's reporter: a thread that reports every `REPORT_EVERY`
/// until the process ends.
pub fn spawn_reporter(id: &Identity, win: &WindowId) {
    let (id, win) = (id.clone(), win.clone());
    std::thread::spawn(move || {
        loop {
            shown(&id, &win, Instant::now() + REPORT_DEADLINE);
            closes(&id);
            std::thread::sleep(REPORT_EVERY);
        }
    });
}

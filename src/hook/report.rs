//! v1.2 delivery reports: telling the store what this machine's windows
//! were shown (`POST /messages/shown`) and which of them ended (`PUT
//! /sessions/{id}` with `state: closed`). The hooks only note these in the
//! window registry they already write; the waiter reports them every
//! `REPORT_EVERY`, off their hot path. Without a waiter (none installed,
//! `claude -p`) the prompt hook reports what is pending itself, and a
//! window's SessionEnd reports what it was shown before it closes.

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
/// server before v1.2 — a refusal, or an answer that is not v1.2's — or a
/// session it never saw): then it is dropped. A busy or away server (408,
/// 429, 5xx, unreachable) or a token to fix: tried again.
fn never(e: &Error) -> bool {
    e.retry() == crate::delivery::Retry::Never
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
    let reg = registry(&id.state_dir).until(deadline);
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
        let _ = registry(&id.state_dir).until(deadline).reported(win, &ids);
    }
}

/// Reports the windows of this machine that ended as closed sessions.
pub fn closes(id: &Identity) {
    closes_within(id, Instant::now() + REPORT_DEADLINE);
}

/// The same within `deadline`: what each ended window was shown, then
/// its close (unless an open window has its name again).
pub fn closes_within(id: &Identity, deadline: Instant) {
    let Ok(ended) = registry(&id.state_dir).until(deadline).to_close() else {
        return;
    };
    let mut done = Vec::new();
    for e in ended {
        let session = format!("{}/{}", id.machine, e.name);
        if !e.unreported.is_empty() {
            let w = Write::MarkShown {
                session: session.clone(),
                ids: e.unreported.clone(),
            };
            if send(id, &w, deadline).is_err() {
                break; // the store is away: all of it later
            }
        }
        if e.close && close_by(id, &session, deadline).is_err() {
            break;
        }
        done.push(e.name);
    }
    if !done.is_empty() {
        let _ = registry(&id.state_dir)
            .until(deadline)
            .closed_reported(&done);
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
        // `{"state": "closed"}` alone: a server before v1.2 refuses it
        // (no `user`) instead of taking it for presence.
        update: SessionUpdate {
            user: String::new(),
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
    // What it was shown goes first (no waiter may be left to say it).
    shown(id, win, Instant::now() + REPORT_DEADLINE);
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
            // A look without the lock first: most looks find nothing.
            if registry(&id.state_dir).pending(&win) {
                shown(&id, &win, Instant::now() + REPORT_DEADLINE);
                closes(&id);
            }
            std::thread::sleep(REPORT_EVERY);
        }
    });
}

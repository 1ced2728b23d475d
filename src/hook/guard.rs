//! `coord-hook guard`: Claude Code's PreToolUse hook for edits (Edit,
//! Write, MultiEdit, NotebookEdit). When the file is inside a path another
//! session has claimed (`coord lock claim PROJECT RESOURCE --path GLOB`)
//! and the claim has not expired, it answers `deny` with a reason that
//! names the holder, the note, the time left and the command to ask them.
//! One's own claims, unclaimed paths and files outside any repository pass
//! silently. It is never in the way: a broken identity, an unreachable or
//! slow API (past `GUARD_DEADLINE`) or anything unexpected allows the edit.
//! It always exits 0.
//!
//! The project a file belongs to is the name of the folder that holds its
//! repository's `.git`: the same on every machine with a clone, wherever
//! the clone is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

/// The most the guard waits for the claims: it runs before every edit, and
/// with its own start it answers within 300 ms.
pub const GUARD_DEADLINE: Duration = Duration::from_millis(250);

/// What Claude Code sends a PreToolUse hook (the parts read here).
#[derive(Debug, Default, Deserialize)]
struct ToolInput {
    #[serde(default)]
    hook_event_name: Option<String>,
    #[serde(default)]
    cwd: Option<PathBuf>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    tool_input: Option<serde_json::Value>,
}

/// The repository holding `file` (the nearest folder up with a `.git`),
/// its name, and the file's path inside it with `/`.
pub fn repository_path(file: &Path) -> Option<(String, String)> {
    let mut dir = file.parent()?;
    loop {
        if dir.join(".git").exists() {
            let project = dir.file_name()?.to_string_lossy().into_owned();
            let rel = file.strip_prefix(dir).ok()?;
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            return Some((project, parts.join("/")));
        }
        dir = dir.parent()?;
    }
}

/// The deny reason for `rel` in `project`, when another session's live
/// claim covers it.
pub fn denial(locks: &[Lock], me: &str, project: &str, rel: &str, now: &Time) -> Option<String> {
    let me = canonical_session(me);
    let (lock, glob) = locks.iter().find_map(|l| {
        (canonical_session(&l.session_id) != me && l.expires_at > *now)
            .then(|| claiming(l, rel).map(|g| (l, g)))
            .flatten()
    })?;
    let left = (lock.expires_at - *now).num_minutes().max(1);
    let left = if left >= 60 {
        format!("{}h {}m", left / 60, left % 60)
    } else {
        format!("{left}m")
    };
    let holder = escape_controls(&crate::text::cell(&lock.session_id, 80)).to_string();
    let note = lock
        .note
        .as_deref()
        .map(|n| format!(" (note: {})", quoted(&crate::text::clip(n, 160))))
        .unwrap_or_default();
    Some(format!(
        "{} is claimed by {holder} under lock {}/{} (path {}){note} for another {left}. \
         Do not edit it now: ask the holder first, e.g. `coord msg send {} \"may I change {}?\"`, \
         or work on something else until the claim ends.",
        quoted(&crate::text::clip(rel, 200)),
        escape_controls(&crate::text::cell(project, 60)),
        escape_controls(&crate::text::cell(&lock.resource, 80)),
        quoted(&crate::text::clip(glob, 120)),
        shell_word(&lock.session_id),
        crate::text::cell(rel, 120).replace(['"', '`', '$', '\\'], "_"),
    ))
}

/// Asks the fleet's store `f` within `deadline` (`budget`: whether a
/// missing embedded store is made); None when the answer cannot be had in
/// time, Some(None) when there is no store yet to ask.
fn ask_with<T: Send + 'static>(
    id: &Identity,
    budget: connect::Budget,
    deadline: Instant,
    f: impl FnOnce(&dyn Coord) -> crate::error::Result<T> + Send + 'static,
) -> Option<Option<T>> {
    match connect::open(id, budget) {
        Ok(None) => Some(None),
        Ok(Some(connect::Backend::Store(s))) => f(&s).ok().map(Some),
        Ok(Some(connect::Backend::Api(c))) => {
            // On a thread: the deadline holds whatever the network does.
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(f(&c));
            });
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .ok()?
                .ok()
                .map(Some)
        }
        Err(_) => None,
    }
}

/// `ask_with` for a read: no store yet answers None (nothing is claimed).
fn ask<T: Send + 'static>(
    id: &Identity,
    deadline: Instant,
    f: impl FnOnce(&dyn Coord) -> crate::error::Result<T> + Send + 'static,
) -> Option<Option<T>> {
    ask_with(id, connect::Budget::Hook { deadline }, deadline, f)
}

/// The live claims of `project` as the fleet knows them, within
/// `deadline`; None when they cannot be had in time (then nothing is
/// refused).
pub(crate) fn claims(id: &Identity, project: &str, deadline: Instant) -> Option<Vec<Lock>> {
    let q = LockQuery::claims_of(project);
    ask(id, deadline, move |b| b.locks(&q)).map(Option::unwrap_or_default)
}

/// How recent another session's edit must be for the guard to name it.
pub const TOUCH_WINDOW_SECS: u64 = 600;
/// A file's edit is recorded at most this often per session.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The note for an edit of `rel` that other sessions made lately (the
/// newest first), if any.
pub fn touched_note(touches: &[Touch], me: &str, rel: &str, now: &Time) -> Option<String> {
    let me = canonical_session(me);
    let t = touches
        .iter()
        .find(|t| canonical_session(&t.session_id) != me)?;
    let ago = (*now - t.at).num_minutes().max(0);
    let ago = if ago == 0 {
        "less than a minute ago".to_string()
    } else {
        format!("{ago} min ago")
    };
    Some(format!(
        "coord: {} was edited by {} {ago}; check with them before changing it, e.g. `coord msg send {} \"are you still changing {}?\"`.",
        quoted(&crate::text::clip(rel, 200)),
        escape_controls(&crate::text::cell(&t.session_id, 80)),
        shell_word(&t.session_id),
        crate::text::cell(rel, 120).replace(['"', '`', '$', '\\'], "_"),
    ))
}

/// What the guard answers, as Claude Code's JSON.
fn answer(field: &str, text: &str) -> String {
    let mut out = json!({"hookSpecificOutput": {"hookEventName": "PreToolUse"}});
    if field == "deny" {
        out["hookSpecificOutput"]["permissionDecision"] = "deny".into();
        out["hookSpecificOutput"]["permissionDecisionReason"] = text.into();
    } else {
        out["hookSpecificOutput"]["additionalContext"] = text.into();
    }
    format!("{out}\n")
}

/// Runs the guard on Claude Code's input: before an edit it prints a
/// decision only to deny (or a note); after one it records the edit.
pub fn run(identity: Option<&Path>) {
    let started = Instant::now();
    let deadline = started + GUARD_DEADLINE;
    let Some(bytes) = input::read_bounded(INPUT_WAIT) else {
        return;
    };
    let input: ToolInput = serde_json::from_slice(&bytes).unwrap_or_default();
    let Some(file) = input
        .tool_input
        .as_ref()
        .and_then(|t| t.get("file_path").or_else(|| t.get("notebook_path")))
        .and_then(|p| p.as_str())
        .map(PathBuf::from)
    else {
        return;
    };
    let cwd = input
        .cwd
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let file = if file.is_absolute() {
        file
    } else {
        cwd.join(file)
    };
    let Some((project, rel)) = repository_path(&file) else {
        return;
    };
    let Ok(mut id) = Identity::load(identity, &cwd) else {
        return;
    };
    let win = window_id(input.session_id.as_deref());
    let _ = name_this_window(&mut id, &win, false, &cwd, started + GUARD_DEADLINE / 3);
    let me = id.session_id();
    if input.hook_event_name.as_deref() == Some("PostToolUse") {
        record_touch(&id, project, rel, deadline);
        return;
    }
    let (p, r, m) = (project.clone(), rel.clone(), me.clone());
    let found = ask(&id, deadline, move |b| {
        // One round trip where the server can (v1.2), else two.
        let (locks, touches) = match b.claims(&p, &r, TOUCH_WINDOW_SECS)? {
            Some(c) => (c.locks, Some(c.touches)),
            None => (b.locks(&LockQuery::claims_of(&p))?, None),
        };
        let now = crate::clock::now();
        if let Some(reason) = denial(&locks, &m, &p, &r, &now) {
            return Ok(Some(answer("deny", &reason)));
        }
        // Awareness without claims: who else edited it lately.
        let touches = match touches {
            Some(t) => t,
            None => b.touches(&p, &r, TOUCH_WINDOW_SECS).unwrap_or_default(),
        };
        Ok(touched_note(&touches, &m, &r, &now).map(|n| answer("note", &n)))
    });
    match found {
        Some(Some(Some(text))) => crate::out::out(&text),
        Some(_) => {}
        None => away_note(&id, &win),
    }
}

/// The fleet could not be asked: the edit goes on, and the model hears of
/// it once per window (a stamp per session and window process).
fn away_note(id: &Identity, win: &crate::window::WindowId) {
    let key = win
        .pid
        .map(|p| p.to_string())
        .or_else(|| win.conversation.clone())
        .unwrap_or_default();
    let session = id.session_id();
    let api = id.api.as_deref().unwrap_or_default();
    let stamp = crate::presence::stamp_path(
        &id.state_dir.join("coord-guard"),
        &[api, &session, &key],
        &session,
    );
    if stamp.exists() {
        return;
    }
    crate::presence::stamp_presence(&stamp);
    crate::out::out(&answer(
        "note",
        "coord: the fleet's path claims could not be checked (its store did not answer in time); edits in this window go on unguarded until it answers again.",
    ));
}

/// Records that this session edited `rel` of `project` (at most once a
/// minute per file; nothing is queued: the news is only worth it now).
fn record_touch(id: &Identity, project: String, rel: String, deadline: Instant) {
    let session = id.session_id();
    let api = id.api.as_deref().unwrap_or_default();
    let stamp = crate::presence::stamp_path(
        &id.state_dir.join("coord-touched"),
        &[api, &session, &project, &rel],
        &rel,
    );
    if crate::presence::is_fresh(&stamp, TOUCH_EVERY) {
        return;
    }
    let w = Write::TouchFiles {
        session_id: session,
        project,
        paths: vec![rel],
    };
    // The first edit on a machine without a store makes it.
    let budget = connect::Budget::SessionStart { deadline };
    if let Some(Some(_)) = ask_with(id, budget, deadline, move |b| b.write(&w, None)) {
        crate::presence::stamp_presence(&stamp);
    }
}

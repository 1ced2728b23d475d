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
        crate::text::clip(rel, 120).replace(['"', '`', '$', '\\'], "_"),
    ))
}

/// Runs the guard on Claude Code's input; prints a decision only to deny.
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
    let q = LockQuery {
        project: Some(project.clone()),
        limit: Some(MAX_LIST_LIMIT),
        ..Default::default()
    };
    let locks = match connect::open(&id, connect::Budget::Hook { deadline }) {
        Ok(Some(connect::Backend::Store(s))) => s.locks(&q),
        Ok(Some(connect::Backend::Api(c))) => {
            // On a thread: the deadline holds whatever the network does.
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(c.locks(&q));
            });
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(r) => r,
                Err(_) => return,
            }
        }
        _ => return,
    };
    let Ok(locks) = locks else {
        return;
    };
    if let Some(reason) = denial(
        &locks,
        &id.session_id(),
        &project,
        &rel,
        &crate::clock::now(),
    ) {
        crate::out::out(&format!(
            "{}\n",
            json!({"hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }})
        ));
    }
}

//! Presence: when and how a session tells the fleet it is there — at a
//! session start (at most once a minute, paced by a stamp file over HTTP
//! and by `last_seen` on the embedded store) and from the idle waiter.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::identity::{Identity, env_var};
use crate::model::{SessionUpdate, Write};

/// A session seen this recently needs no presence write at a session start.
pub const PRESENCE_FRESH: Duration = Duration::from_secs(60);

/// What this session's presence in the fleet is refreshed with.
pub fn presence(id: &Identity, cwd: &Path) -> Write {
    Write::TouchSession {
        session_id: id.session_id(),
        update: SessionUpdate {
            user: id.user.clone(),
            project: project_name(cwd),
            client: Some(concat!("coord-hook/", env!("CARGO_PKG_VERSION")).into()),
            state: None,
        },
    }
}

/// How long the presence refresh may take after the reads are in.
pub(crate) const PRESENCE_GRACE: Duration = Duration::from_millis(250);

/// The file whose age says when this presence (this session, API and
/// project) last landed. A new store behind the same address learns of
/// the session at the next refresh after the minute.
pub(crate) fn presence_stamp(id: &Identity, w: &Write) -> Option<PathBuf> {
    let Write::TouchSession { session_id, update } = w else {
        return None;
    };
    let api = id.api.as_deref().unwrap_or_default();
    let project = update.project.as_deref().unwrap_or_default();
    Some(stamp_path(
        &id.state_dir.join("coord-presence"),
        &[api, session_id, project],
        session_id,
    ))
}

/// A stamp file in `dir` for the exact bytes of `parts` (FNV-1a: file
/// systems that ignore case would fold `api` and `Api` together), its name
/// with a readable part for people.
pub(crate) fn stamp_path(dir: &Path, parts: &[&str], readable: &str) -> PathBuf {
    let hash = parts
        .iter()
        .flat_map(|part| part.bytes().chain([0]))
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    dir.join(format!("{hash:016x}-{}", readable_part(readable)))
}

/// The part of a stamp's name people can read.
fn readable_part(readable: &str) -> String {
    let mut name = String::new();
    for b in readable.to_ascii_lowercase().bytes().take(60) {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name
}

/// Forgets that `session`'s presence is fresh (every project's stamp):
/// the next session start of that name writes its presence again.
pub(crate) fn forget(id: &Identity, session: &str) {
    let suffix = format!("-{}", readable_part(session));
    let Ok(entries) = std::fs::read_dir(id.state_dir.join("coord-presence")) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(&suffix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// How long ago a file (its metadata) was last changed, if it can be told.
pub(crate) fn age(meta: std::io::Result<std::fs::Metadata>) -> Option<Duration> {
    meta.and_then(|m| m.modified()).ok()?.elapsed().ok()
}

pub(crate) fn presence_is_fresh(stamp: &Path) -> bool {
    is_fresh(stamp, PRESENCE_FRESH)
}

/// Whether stamp file `stamp` was made within `fresh`.
pub(crate) fn is_fresh(stamp: &Path, fresh: Duration) -> bool {
    age(std::fs::metadata(stamp)).is_some_and(|a| a < fresh)
}

/// Notes that presence landed now; stamps a day old go (their sessions
/// are long gone, or will simply write again).
pub(crate) fn stamp_presence(stamp: &Path) {
    let Some(dir) = stamp.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    // A fresh file each time (its time is its creation), renamed into
    // place: a symlink planted at this predictable name is replaced, never
    // written through.
    if crate::fsx::write_replace(stamp, b"", false).is_err() {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if age(e.metadata()).is_some_and(|a| a > Duration::from_secs(86_400)) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The project folder's name (never a full path): Claude Code's
/// `CLAUDE_PROJECT_DIR`, else the session's working directory.
pub fn project_name(cwd: &Path) -> Option<String> {
    let dir = env_var("CLAUDE_PROJECT_DIR").map_or_else(|| cwd.to_path_buf(), PathBuf::from);
    dir.file_name().map(|n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn a_symlink_planted_at_a_presence_stamp_is_replaced_not_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious data\n").unwrap();
        let stamps = dir.path().join("coord-presence");
        std::fs::create_dir_all(&stamps).unwrap();
        let stamp = stamps.join("0123456789abcdef-box%2Fclaude-main");
        std::os::unix::fs::symlink(&victim, &stamp).unwrap();
        super::stamp_presence(&stamp);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious data\n");
        assert!(super::presence_is_fresh(&stamp));
        assert!(!crate::fsx::is_symlink(&stamp));
    }
}

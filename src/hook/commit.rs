//! `coord-hook guard --staged`: git's pre-commit hook (`coord-hook install
//! --git` writes it). A commit that touches a path another session has
//! claimed is refused with the guard's own reason; `COORD_ALLOW_CLAIMED=1`
//! lets it through. Like the guard it is never in the way of a commit it
//! cannot judge: no repository, a broken identity, an API that does not
//! answer in time — the commit goes on, with a one-line note.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::guard::{claims, denial};
use crate::identity::{Identity, env_var};
use crate::out::note;

/// The variable that lets a commit through whatever is claimed.
pub const OVERRIDE: &str = "COORD_ALLOW_CLAIMED";
/// How long a commit may wait for the claims (a person is waiting, not a
/// model's every edit).
const COMMIT_DEADLINE: Duration = Duration::from_secs(3);
/// The most refusals listed; the rest are counted.
const MAX_LISTED: usize = 5;

/// What git says, or None when it cannot be asked.
fn git(cwd: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

/// A path git answers on one line, as it says it (relative to `cwd`
/// when it is).
pub(crate) fn git_path(cwd: &Path, args: &[&str]) -> Option<PathBuf> {
    let s = String::from_utf8(git(cwd, args)?).ok()?;
    let s = s.trim_end_matches(['\n', '\r']);
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// The repository's top folder, by git.
pub(crate) fn toplevel(cwd: &Path) -> Option<PathBuf> {
    git_path(cwd, &["rev-parse", "--show-toplevel"])
}

/// The paths the commit being made touches, `/`-separated and relative to
/// the top (renames as their two sides, deletions too).
fn staged(top: &Path) -> Option<Vec<String>> {
    let out = git(
        top,
        &[
            "-c",
            "core.quotePath=false",
            "diff",
            "--cached",
            "--name-only",
            "--no-renames",
            "-z",
        ],
    )?;
    Some(
        out.split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    )
}

/// Runs the check; answers the exit code (1 refuses the commit).
pub fn run(identity: Option<&Path>) -> i32 {
    if env_var(OVERRIDE).is_some_and(|v| v != "0") {
        return 0;
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let Some(top) = toplevel(&cwd) else {
        return 0;
    };
    let Some(project) = top.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return 0;
    };
    let Some(paths) = staged(&top).filter(|p| !p.is_empty()) else {
        return 0;
    };
    let id = match Identity::load(identity, &cwd) {
        Ok(id) => id,
        Err(e) => {
            note(&format!(
                "coord: claims not checked ({e}); the commit goes on"
            ));
            return 0;
        }
    };
    let Some(locks) = claims(&id, &project, Instant::now() + COMMIT_DEADLINE) else {
        note("coord: the fleet's claims could not be read in time; the commit goes on unchecked");
        return 0;
    };
    let now = crate::clock::now();
    let refused: Vec<String> = paths
        .iter()
        .filter_map(|p| denial(&locks, &id.session_id(), &project, p, &now))
        .collect();
    if refused.is_empty() {
        return 0;
    }
    let mut text = format!(
        "coord: commit refused: {} staged path{} claimed by another session.\n",
        refused.len(),
        if refused.len() == 1 { " is" } else { "s are" }
    );
    for r in refused.iter().take(MAX_LISTED) {
        text.push_str(&format!("  {r}\n"));
    }
    if refused.len() > MAX_LISTED {
        text.push_str(&format!("  … and {} more\n", refused.len() - MAX_LISTED));
    }
    text.push_str(&format!(
        "Ask the holder, wait for the claim to end, or commit anyway with {OVERRIDE}=1 git commit …"
    ));
    note(&text);
    1
}

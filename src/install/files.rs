//! The files install writes: settings.json (through a dotfiles link, never
//! through a repository's), its backup, and the skill — each through a
//! fresh temp file renamed into place, modes kept.

use super::*;

pub(super) fn read_settings(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim_start_matches('\u{feff}').trim().is_empty() => Ok(None),
        // Windows editors may start the file with a byte-order mark.
        Ok(text) => serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .map(Some)
            .map_err(|e| {
                Error::bad_input(
                    path,
                    format!("not valid JSON ({e}); fix it or move it aside"),
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::bad_input(path, format!("cannot read: {e}"))),
    }
}

/// Where the settings are written: the file, or the target of a symlinked
/// settings.json (dotfiles keep their link and get the hooks). In a
/// project, whose files a stranger may have written, a link leading out of
/// the project is refused, and so is a `.claude` folder that does.
pub(super) fn settings_target(path: &Path, project: Option<&Path>) -> Result<PathBuf> {
    if let Some(root) = project {
        within_project(root, path.parent().unwrap_or(root))?;
    }
    if !crate::fsx::is_symlink(path) {
        return Ok(path.to_path_buf());
    }
    let target = std::fs::canonicalize(path).map_err(|e| {
        Error::bad_input(
            path,
            format!("is a symbolic link that cannot be followed ({e}); fix or remove the link, then install again"),
        )
    })?;
    if let Some(root) = project {
        within_project(root, &target)?;
    }
    Ok(target)
}

/// Refuses a path that, links followed, leaves the project folder.
pub(super) fn within_project(root: &Path, path: &Path) -> Result<()> {
    let Ok(real) = std::fs::canonicalize(path) else {
        return Ok(()); // not there yet: created below, inside the project
    };
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    if real.starts_with(&root) {
        Ok(())
    } else {
        Err(Error::bad_input(
            path,
            format!(
                "leads out of the project (to {}) through a symbolic link; coord-hook does not write through it: remove the link, or install for your user without --project",
                real.display()
            ),
        ))
    }
}

/// Backs the old file up, then replaces it atomically (a fresh temp file,
/// fsync, rename), both with the old file's mode. A read-only file is left
/// as it is.
pub(super) fn write_settings(path: &Path, value: &Value) -> Result<Option<PathBuf>> {
    let io = |e: std::io::Error| Error::bad_input(path, format!("cannot write: {e}"));
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let backup = match std::fs::read(path) {
        Ok(old) => {
            if std::fs::metadata(path).is_ok_and(|m| m.permissions().readonly()) {
                return Err(Error::bad_input(
                    path,
                    "is read-only, so it was left as it is; make it writable (chmod u+w) and run install again, or add the entries by hand from `coord-hook install --print`",
                ));
            }
            let b = path.with_extension("json.bak");
            crate::fsx::write_replace_like(&b, &old, true, path).map_err(io)?;
            Some(b)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| Error::bad_input(path, e.to_string()))?;
    text.push('\n');
    crate::fsx::write_atomic(path, text.as_bytes()).map_err(io)?;
    Ok(backup)
}

/// Whether a SKILL.md is ours: this version, or an earlier one (same
/// name in its front matter). Anything else is the user's own.
pub(super) fn skill_is_ours(text: &str) -> bool {
    text == SKILL || text.replace("\r\n", "\n").starts_with("---\nname: coord\n")
}

/// Writes the skill when it differs; a user's own file there is kept as
/// `SKILL.md.bak` first. Answers a line saying what it did, if anything.
pub(super) fn write_skill(path: &Path) -> Result<Option<String>> {
    let io = |e: std::io::Error| Error::bad_input(path, format!("cannot write the skill: {e}"));
    let mut note = None;
    match std::fs::read(path) {
        Ok(old) if old == SKILL.as_bytes() => return Ok(None),
        Ok(old) if !skill_is_ours(&String::from_utf8_lossy(&old)) => {
            let bak = path.with_extension("md.bak");
            crate::fsx::write_replace_like(&bak, &old, true, path).map_err(io)?;
            note = Some(format!(
                "skill: {} was your own; kept as {}, and ours written in its place",
                path.display(),
                bak.display()
            ));
        }
        _ => {}
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    crate::fsx::write_atomic(path, SKILL.as_bytes()).map_err(io)?;
    Ok(Some(
        note.unwrap_or_else(|| format!("skill: {}", path.display())),
    ))
}

/// Removes the skill if it is ours (and the folders it leaves empty);
/// answers a line saying what happened.
pub(super) fn remove_skill(path: &Path) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    if !skill_is_ours(&String::from_utf8_lossy(&text)) {
        return Some(format!(
            "left {} as it is: it is not coord-hook's skill",
            path.display()
        ));
    }
    std::fs::remove_file(path).ok()?;
    // Only when empty: the coord folder, then skills/.
    let dir = path.parent()?;
    if std::fs::remove_dir(dir).is_ok()
        && let Some(skills) = dir.parent()
    {
        let _ = std::fs::remove_dir(skills);
    }
    Some(format!("removed the skill {}", path.display()))
}

//! `coord-hook install --git` / `uninstall --git`: a pre-commit hook in the
//! repository here that runs `coord-hook guard --staged`, so that a commit
//! made outside Claude Code (a person, a script) is held to the fleet's
//! path claims too. A hook that is not ours is never overwritten.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::hook::commit::OVERRIDE;
use crate::out::out;

/// The line that marks the file as ours.
const MARKER: &str = "# coord-hook: path-claim guard";

/// The repository's hooks folder (`core.hooksPath` honoured) and its top.
fn hooks_dir() -> Result<(PathBuf, PathBuf)> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::Usage(format!("cannot read the current folder: {e}")))?;
    let not_a_repo = || {
        Error::Usage(format!(
            "{} is not inside a git repository (or git is not on PATH): run install --git inside the clone to guard",
            cwd.display()
        ))
    };
    let top = crate::hook::commit::toplevel(&cwd).ok_or_else(not_a_repo)?;
    let rel = crate::hook::commit::git_path(&cwd, &["rev-parse", "--git-path", "hooks"])
        .ok_or_else(not_a_repo)?;
    Ok((cwd.join(rel), top))
}

/// The hook script: a POSIX shell script, which git runs on every OS (Git
/// for Windows brings its own sh). The program goes in with `/`.
fn script(program: &str) -> String {
    format!(
        "#!/bin/sh\n{MARKER}\n\
         # Refuses a commit that touches a path another coord session has claimed\n\
         # (coord lock claim PROJECT RESOURCE --path GLOB). {OVERRIDE}=1 commits anyway.\n\
         # `coord-hook uninstall --git` removes this file.\n\
         exec {program} guard --staged\n"
    )
}

fn is_ours(path: &Path) -> Option<bool> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text.lines().any(|l| l.trim() == MARKER)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(_) => Some(false),
    }
}

pub fn install() -> Result<()> {
    let (dir, top) = hooks_dir()?;
    let path = dir.join("pre-commit");
    if is_ours(&path) == Some(false) {
        return Err(Error::bad_input(
            &path,
            "is a pre-commit hook that is not coord-hook's; it is left as it is: add the line `coord-hook guard --staged || exit 1` to it yourself",
        ));
    }
    // Git for Windows' sh reads `\` as an escape: the path goes in with
    // `/` there (a POSIX path is quoted as it is).
    let program = super::hook_program()?;
    let program = if cfg!(windows) {
        program.replace('\\', "/")
    } else {
        program
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::bad_input(&dir, format!("cannot create: {e}")))?;
    // A fresh file renamed into place: a link planted at the name is
    // replaced, never written through.
    crate::fsx::write_replace(&path, script(&program).as_bytes(), true)
        .map_err(|e| Error::bad_input(&path, format!("cannot write: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::bad_input(&path, format!("cannot make it executable: {e}")))?;
    }
    out(&format!(
        "installed the pre-commit guard in {}\n  a commit in {} that touches a path another session has claimed is refused ({OVERRIDE}=1 commits anyway)\n",
        path.display(),
        top.display()
    ));
    Ok(())
}

pub fn uninstall() -> Result<()> {
    let (dir, _) = hooks_dir()?;
    let path = dir.join("pre-commit");
    match is_ours(&path) {
        None => out(&format!(
            "not installed: {} does not exist\n",
            path.display()
        )),
        Some(false) => out(&format!(
            "{} is not coord-hook's pre-commit hook; left as it is\n",
            path.display()
        )),
        Some(true) => {
            std::fs::remove_file(&path)
                .map_err(|e| Error::bad_input(&path, format!("cannot remove: {e}")))?;
            out(&format!(
                "removed the pre-commit guard {}\n",
                path.display()
            ));
        }
    }
    Ok(())
}

//! This window: which Claude Code window a hook runs for, and the one
//! function that decides its session name (an explicit one, else the
//! machine's window registry), which every hook and the waiter ask.

mod process;
pub mod registry;
mod salvage;

use std::path::Path;
use std::time::Instant;

use crate::identity::{Identity, env_var};
use crate::presence::project_name;
use crate::text::shell_quote;

pub use registry::{REGISTRY_FILE, WindowId, Windows, alive, name_from_project, registry};

/// The window a hook runs for: its process, and the conversation Claude
/// Code names in its input (the key when there is no `CLAUDE_PID`: another
/// host, an older Claude Code).
pub fn window_id(conversation: Option<&str>) -> WindowId {
    WindowId {
        pid: claude_pid(),
        // Claude Code also puts it in every hook's environment.
        conversation: conversation
            .map(str::to_string)
            .or_else(|| env_var("CLAUDE_CODE_SESSION_ID"))
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 200)
            .map(str::to_string),
    }
}

/// This Claude Code window's process (`CLAUDE_PID`, which Claude Code sets
/// for hooks and for the commands the model runs).
pub fn claude_pid() -> Option<u32> {
    env_var("CLAUDE_PID")
        .and_then(|p| p.trim().parse().ok())
        .filter(|p| *p > 0)
}

/// This Claude Code window's session name. Without an explicit one
/// (`COORD_SESSION`, an identity's `session`) the machine's window registry
/// picks it — `claude-main` for the first live window, one from the project
/// folder for others — keyed by the window's process (`CLAUDE_PID`), so it
/// stays across resume, compact and `/clear`. On SessionStart the name goes
/// into `CLAUDE_ENV_FILE`, so every command the model runs in this window
/// speaks as it. Problems come back as a note; the hook goes on.
pub(crate) fn name_this_window(
    id: &mut Identity,
    win: &WindowId,
    start: bool,
    cwd: &Path,
    deadline: Instant,
) -> Result<(), String> {
    if win.is_known() {
        let wanted = id.session_explicit.then(|| id.session.clone());
        let project = project_name(cwd);
        match registry(&id.state_dir).until(deadline).name_for(
            win,
            wanted.as_deref(),
            id.session_from_project,
            project.as_deref(),
        ) {
            Ok((name, note)) => {
                id.session = name;
                if let Some(n) = note {
                    // Still named, and the name goes to the env file.
                    write_env_file(id, start)?;
                    return Err(n);
                }
            }
            Err(e) if !id.session_explicit => {
                return Err(format!(
                    "{UNNAMED}: {e}; this window's messages are not shown now, they come at its next prompt"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "this window's session name could not be kept ({e})"
                ));
            }
        }
    }
    write_env_file(id, start)
}

/// The start of the note that says a window has no name yet (its
/// messages, whoever's they are, are not shown).
pub(crate) const UNNAMED: &str = "this window's session name could not be settled";

/// On SessionStart the name goes into `CLAUDE_ENV_FILE`, so every command
/// the model runs in this window speaks as it.
pub(crate) fn write_env_file(id: &Identity, start: bool) -> Result<(), String> {
    if let (true, Some(file)) = (start, env_var("CLAUDE_ENV_FILE")) {
        let line = format!("export COORD_SESSION={}\n", shell_quote(&id.session_id()));
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
        if let Err(e) = written {
            return Err(format!(
                "cannot write the session name to CLAUDE_ENV_FILE {file}: {e}"
            ));
        }
    }
    Ok(())
}

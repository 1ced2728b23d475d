//! `coord-hook install|uninstall`: merge our hook entries into Claude
//! Code's settings.json — the session-start block, the prompt hook and the
//! waiter — and the skill, keeping everything else as it was.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::identity::home_claude_dir;
use crate::out::out;

mod entries;
mod files;
pub mod git;

pub use entries::{Merged, entries, merge, remove, role_of};
use files::*;

/// The sessions the block runs on.
pub const MATCHER: &str = "startup|resume|clear|compact";
/// Claude Code's own limit for the block and prompt hooks, in seconds; ours
/// is far shorter.
pub const CLAUDE_TIMEOUT_S: u64 = 10;
/// The waiter's limit: a day (without one Claude Code kills it at 600 s and
/// the session is deaf until its next turn).
pub const WAITER_TIMEOUT_S: u64 = 86_400;
/// The skill, as shipped.
pub const SKILL: &str = include_str!("../../hooks/skill/SKILL.md");
/// What the model may run without asking a person: coord's everyday
/// commands, so that a wake-up's `coord msg reply` does not stall on an
/// approval prompt. Not `serve`, `install`, `uninstall` or `sync` (which
/// can drop queued writes).
pub const ALLOW_RULES: &[&str] = &[
    "Bash(coord msg:*)",
    "Bash(coord todo:*)",
    "Bash(coord lock:*)",
    "Bash(coord sessions:*)",
    "Bash(coord status:*)",
    "Bash(coord whoami:*)",
    "Bash(coord component:*)",
    "Bash(coord workflow:*)",
];

/// Adds our allow rules to `permissions.allow` (`allow`), or removes
/// exactly them; everything else there is kept. Answers whether it changed
/// anything.
pub fn merge_allow(settings: &mut Value, allow: bool) -> std::result::Result<bool, String> {
    let Some(root) = settings.as_object_mut() else {
        return Err("the top level is not a JSON object".into());
    };
    if !allow && !root.contains_key("permissions") {
        return Ok(false);
    }
    let perms = root
        .entry("permissions")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or("\"permissions\" is not an object")?;
    if !allow && !perms.contains_key("allow") {
        return Ok(false);
    }
    let list = perms
        .entry("allow")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or("\"permissions.allow\" is not an array")?;
    let before = list.len();
    let mut changed = false;
    if allow {
        for rule in ALLOW_RULES {
            if !list.iter().any(|v| v.as_str() == Some(rule)) {
                list.push(json!(rule));
                changed = true;
            }
        }
    } else {
        list.retain(|v| !v.as_str().is_some_and(|s| ALLOW_RULES.contains(&s)));
        changed = list.len() != before;
        // Leave no empty containers of ours behind.
        if list.is_empty() {
            perms.remove("allow");
        }
        if perms.is_empty() {
            root.remove("permissions");
        }
    }
    Ok(changed)
}

/// What one of our hooks does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The block (SessionStart) and the prompt hook: `--format json`.
    Context,
    /// The asyncRewake waiter: `wait`.
    Waiter,
    /// The PreToolUse guard for edits: `guard`.
    Guard,
}

/// `~/.claude`, or the project's `.claude`.
fn claude_dir(project: Option<&Path>) -> PathBuf {
    project.map_or_else(home_claude_dir, |dir| dir.join(".claude"))
}

pub fn settings_path(project: Option<&Path>) -> PathBuf {
    claude_dir(project).join("settings.json")
}

/// Where the skill goes: `~/.claude/skills/coord/`, or the project's.
pub fn skill_path(project: Option<&Path>) -> PathBuf {
    claude_dir(project)
        .join("skills")
        .join("coord")
        .join("SKILL.md")
}

/// The `coord-hook` binary beside this one, absolute and quoted for the
/// shell Claude Code runs hook commands in.
pub fn hook_program() -> Result<String> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Usage(format!("cannot find this program's path: {e}")))?;
    let exe = plain_path(exe.canonicalize().unwrap_or(exe));
    let name = format!("coord-hook{}", std::env::consts::EXE_SUFFIX);
    let hook = match exe.parent().map(|d| d.join(&name)) {
        Some(p) if p.is_file() => p,
        _ => exe,
    };
    quote_program(&hook.to_string_lossy())
}

/// One shell word naming `path`. POSIX: single quotes, inside which
/// nothing is special (a folder named `bin$(id)` stays a name). Windows:
/// double quotes (a path cannot hold one); `%`, `$` and `` ` `` would still
/// be expanded by cmd or Git Bash, so such a path is refused.
pub fn quote_program(path: &str) -> Result<String> {
    if cfg!(windows) {
        if let Some(c) = path.chars().find(|c| matches!(c, '%' | '$' | '`' | '"')) {
            return Err(Error::Usage(format!(
                "coord-hook is in a folder whose name holds {c:?} ({path}), which a hook command line cannot carry safely; move coord-hook to a plain folder and run install again"
            )));
        }
        Ok(format!("\"{path}\""))
    } else {
        Ok(format!("'{}'", path.replace('\'', "'\\''")))
    }
}

/// Windows' canonical form (`\\?\C:\…`) is not understood by every shell
/// that Claude Code may run the command in; a drive path without the prefix
/// means the same file.
fn plain_path(p: PathBuf) -> PathBuf {
    let s = p.to_string_lossy();
    match s.strip_prefix(r"\\?\") {
        Some(rest) if !rest.starts_with("UNC\\") => PathBuf::from(rest),
        _ => p,
    }
}

pub fn install(project: Option<&Path>, print: bool, waiter: bool, allow: bool) -> Result<()> {
    let program = hook_program()?;
    if print {
        let mut hooks = Map::new();
        for (event, entry) in entries(&program, waiter) {
            hooks.insert(event.to_string(), json!([entry]));
        }
        let mut snippet = json!({ "hooks": hooks });
        if allow {
            snippet["permissions"] = json!({ "allow": ALLOW_RULES });
        }
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&snippet).unwrap_or_default()
        ));
        return Ok(());
    }
    let shown = settings_path(project);
    let path = settings_target(&shown, project)?;
    let skill = skill_path(project);
    if let Some(root) = project {
        within_project(root, skill.parent().unwrap_or(root))?;
    }
    let mut settings = read_settings(&path)?.unwrap_or_else(|| json!({}));
    let merged = merge(&mut settings, &program, waiter).map_err(|m| Error::bad_input(&path, m))?;
    let allowed = merge_allow(&mut settings, allow).map_err(|m| Error::bad_input(&path, m))?;
    let skill_note = write_skill(&skill)?;
    let mut done = if merged.changed || allowed {
        let what = if waiter {
            "the session-start block, the prompt hook and the waiter"
        } else {
            "the session-start block and the prompt hook (no waiter)"
        };
        let backup = write_settings(&path, &settings)?;
        let mut s = format!(
            "installed {what} in {}\n  command: {program}\n",
            shown.display()
        );
        s.push_str(if allow {
            "  the model may run coord msg, todo, lock, sessions, status, whoami, component and workflow without asking (permissions.allow; --no-allow leaves them out)\n"
        } else {
            "  no permission rules: each coord command the model runs asks you first\n"
        });
        if path != shown {
            s.push_str(&format!("  (a link: written to {})\n", path.display()));
        }
        for r in &merged.replaced {
            s.push_str(&format!(
                "  replaced an entry that already ran coord-hook: {}\n",
                crate::text::cell(r, 200)
            ));
        }
        if let Some(b) = backup {
            s.push_str(&format!("  previous file kept as {}\n", b.display()));
        }
        s
    } else {
        format!("already installed in {}\n", shown.display())
    };
    if let Some(n) = skill_note {
        done.push_str(&format!("  {n}\n"));
    }
    done.push_str(
        "  start a new Claude Code session (or /clear) to load them; `coord-hook --preview` shows what a session will see\n",
    );
    out(&done);
    Ok(())
}

pub fn uninstall(project: Option<&Path>) -> Result<()> {
    let shown = settings_path(project);
    let path = settings_target(&shown, project)?;
    let skill = skill_path(project);
    if let Some(root) = project {
        within_project(root, skill.parent().unwrap_or(root))?;
    }
    let skill_note = remove_skill(&skill);
    let mut done = String::new();
    match read_settings(&path)? {
        None => done.push_str(&format!(
            "not installed: {} does not exist\n",
            shown.display()
        )),
        Some(mut settings) => {
            let rules = merge_allow(&mut settings, false).unwrap_or(false);
            if remove(&mut settings) || rules {
                if settings.as_object().is_some_and(Map::is_empty) {
                    // Nothing left but what we put there: no empty file.
                    let bak = write_settings(&path, &settings)?;
                    std::fs::remove_file(&path)
                        .map_err(|e| Error::bad_input(&path, format!("cannot remove: {e}")))?;
                    done.push_str(&format!(
                        "removed the coord-hook entries; {} held nothing else and is gone\n",
                        shown.display()
                    ));
                    if let Some(b) = bak {
                        done.push_str(&format!("  previous file kept as {}\n", b.display()));
                    }
                } else {
                    let bak = write_settings(&path, &settings)?;
                    done.push_str(&format!(
                        "removed the coord-hook entries from {}\n",
                        shown.display()
                    ));
                    if let Some(b) = bak {
                        done.push_str(&format!("  previous file kept as {}\n", b.display()));
                    }
                }
            } else {
                done.push_str(&format!("not installed in {}\n", shown.display()));
            }
        }
    }
    if let Some(n) = skill_note {
        done.push_str(&format!("  {n}\n"));
    }
    out(&done);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_verbatim_prefixes_are_dropped_for_drive_paths_only() {
        assert_eq!(
            plain_path(PathBuf::from(r"\\?\C:\Users\h\coord-hook.exe")),
            PathBuf::from(r"C:\Users\h\coord-hook.exe")
        );
        let unc = PathBuf::from(r"\\?\UNC\server\share\coord-hook.exe");
        assert_eq!(plain_path(unc.clone()), unc);
        assert_eq!(
            plain_path(PathBuf::from("/usr/bin/coord-hook")),
            PathBuf::from("/usr/bin/coord-hook")
        );
    }
}

//! `coord-hook install|uninstall`: merge our hook entries into Claude
//! Code's settings.json — the session-start block, the prompt hook and the
//! waiter — and the skill, keeping everything else as it was.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::cmd::out;
use crate::error::{Error, Result};
use crate::identity::home_claude_dir;

/// The sessions the block runs on.
pub const MATCHER: &str = "startup|resume|clear|compact";
/// Claude Code's own limit for the block and prompt hooks, in seconds; ours
/// is far shorter.
pub const CLAUDE_TIMEOUT_S: u64 = 10;
/// The waiter's limit: a day (without one Claude Code kills it at 600 s and
/// the session is deaf until its next turn).
pub const WAITER_TIMEOUT_S: u64 = 86_400;
/// The skill, as shipped.
pub const SKILL: &str = include_str!("../hooks/skill/SKILL.md");

/// What one of our hooks does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The block (SessionStart) and the prompt hook: `--format json`.
    Context,
    /// The asyncRewake waiter: `wait`.
    Waiter,
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

/// The `coord-hook` binary beside this one, absolute and quoted.
pub fn hook_program() -> Result<String> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Usage(format!("cannot find this program's path: {e}")))?;
    let exe = plain_path(exe.canonicalize().unwrap_or(exe));
    let name = format!("coord-hook{}", std::env::consts::EXE_SUFFIX);
    let hook = match exe.parent().map(|d| d.join(&name)) {
        Some(p) if p.is_file() => p,
        _ => exe,
    };
    Ok(format!("\"{}\"", hook.display()))
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

fn hook(command: &str, role: Role) -> Value {
    match role {
        Role::Context => {
            json!({ "type": "command", "command": command, "timeout": CLAUDE_TIMEOUT_S })
        }
        Role::Waiter => json!({
            "type": "command", "command": command, "asyncRewake": true, "timeout": WAITER_TIMEOUT_S
        }),
    }
}

/// Our entries, by hook event: `program` is the quoted binary.
pub fn entries(program: &str, waiter: bool) -> Vec<(&'static str, Value)> {
    let context = format!("{program} --format json");
    let wait = format!("{program} wait");
    let mut start = vec![hook(&context, Role::Context)];
    if waiter {
        start.push(hook(&wait, Role::Waiter));
    }
    let mut out = vec![
        (
            "SessionStart",
            json!({ "matcher": MATCHER, "hooks": start }),
        ),
        (
            "UserPromptSubmit",
            json!({ "hooks": [hook(&context, Role::Context)] }),
        ),
    ];
    if waiter {
        out.push(("Stop", json!({ "hooks": [hook(&wait, Role::Waiter)] })));
    }
    out
}

/// Whether `command` is one of ours, exactly: a `coord-hook` binary (any
/// path, quoted or not) with `--format json` or `wait` — not any command
/// that merely mentions coord-hook.
pub fn role_of(command: &str) -> Option<Role> {
    let c = command.trim();
    let (program, rest) = match c.strip_prefix('"') {
        Some(r) => {
            let end = r.find('"')?;
            (&r[..end], r[end + 1..].trim())
        }
        None => match c.split_once(' ') {
            Some((p, r)) => (p, r.trim()),
            None => (c, ""),
        },
    };
    let stem = program
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(program)
        .trim_end_matches(".exe");
    if stem != "coord-hook" {
        return None;
    }
    match rest {
        "--format json" => Some(Role::Context),
        "wait" => Some(Role::Waiter),
        _ => None,
    }
}

fn ours(h: &Value) -> Option<Role> {
    h.get("command").and_then(Value::as_str).and_then(role_of)
}

/// Adds, points at this binary, or repairs our entries; removes the
/// waiter's when `waiter` is false. Answers whether anything changed.
pub fn merge(
    settings: &mut Value,
    program: &str,
    waiter: bool,
) -> std::result::Result<bool, String> {
    let before = settings.clone();
    remove_where(settings, |role| role == Role::Waiter && !waiter);
    let root = settings
        .as_object_mut()
        .ok_or("the top level is not a JSON object")?;
    let hooks = root
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or("\"hooks\" is not an object")?;
    for (event, wanted) in entries(program, waiter) {
        let groups = hooks
            .entry(event)
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| format!("\"hooks.{event}\" is not an array"))?;
        let want_hooks = wanted["hooks"].as_array().cloned().unwrap_or_default();
        for w in &want_hooks {
            let role = ours(w);
            // Our hook of this role, wherever it is in this event.
            let found = groups.iter_mut().find_map(|g| {
                let idx = g
                    .get("hooks")
                    .and_then(Value::as_array)
                    .and_then(|l| l.iter().position(|h| ours(h) == role))?;
                Some((g, idx))
            });
            match found {
                Some((g, idx)) => {
                    // Point it at this binary and repair its settings.
                    if let Some(list) = g.get_mut("hooks").and_then(Value::as_array_mut) {
                        list[idx] = w.clone();
                    }
                    // A matcher is ours to repair only where the group is
                    // ours alone.
                    let only_ours = g
                        .get("hooks")
                        .and_then(Value::as_array)
                        .is_some_and(|l| l.iter().all(|h| ours(h).is_some()));
                    if let (true, Some(m)) = (only_ours, wanted.get("matcher")) {
                        g["matcher"] = m.clone();
                    }
                }
                None => {
                    // Into our own group of this event, or a new one.
                    let own = groups.iter_mut().find(|g| {
                        g.get("hooks")
                            .and_then(Value::as_array)
                            .is_some_and(|l| !l.is_empty() && l.iter().all(|h| ours(h).is_some()))
                    });
                    match own {
                        Some(g) => {
                            if let Some(list) = g.get_mut("hooks").and_then(Value::as_array_mut) {
                                list.push(w.clone());
                            }
                        }
                        None => {
                            let mut g = wanted.clone();
                            g["hooks"] = json!([w]);
                            groups.push(g);
                        }
                    }
                }
            }
        }
    }
    Ok(*settings != before)
}

/// Removes our hooks for which `which` holds, and any container it leaves
/// empty.
fn remove_where(settings: &mut Value, which: impl Fn(Role) -> bool) -> bool {
    let Some(hooks) = settings.get_mut("hooks").and_then(Value::as_object_mut) else {
        return false;
    };
    let mut changed = false;
    let events: Vec<String> = hooks.keys().cloned().collect();
    for event in events {
        let Some(groups) = hooks.get_mut(&event).and_then(Value::as_array_mut) else {
            continue;
        };
        groups.retain_mut(|group| {
            let Some(list) = group.get_mut("hooks").and_then(Value::as_array_mut) else {
                return true;
            };
            let before = list.len();
            list.retain(|h| !ours(h).is_some_and(&which));
            if list.len() != before {
                changed = true;
                return !list.is_empty();
            }
            true
        });
        if groups.is_empty() {
            hooks.remove(&event);
        }
    }
    if hooks.is_empty()
        && let Some(root) = settings.as_object_mut()
    {
        root.remove("hooks");
    }
    changed
}

/// Removes all our entries; answers whether anything changed.
pub fn remove(settings: &mut Value) -> bool {
    remove_where(settings, |_| true)
}

fn read_settings(path: &Path) -> Result<Option<Value>> {
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

/// Backs the old file up, then replaces it atomically (temp file, fsync,
/// rename).
fn write_settings(path: &Path, value: &Value) -> Result<Option<PathBuf>> {
    let io = |e: std::io::Error| Error::bad_input(path, format!("cannot write: {e}"));
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let backup = if path.exists() {
        let b = path.with_extension("json.bak");
        std::fs::copy(path, &b).map_err(io)?;
        Some(b)
    } else {
        None
    };
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| Error::bad_input(path, e.to_string()))?;
    text.push('\n');
    crate::write_atomic(path, text.as_bytes()).map_err(io)?;
    Ok(backup)
}

pub fn install(project: Option<&Path>, print: bool, waiter: bool) -> Result<()> {
    let program = hook_program()?;
    let skill = skill_path(project);
    if print {
        let mut hooks = Map::new();
        for (event, entry) in entries(&program, waiter) {
            hooks.insert(event.to_string(), json!([entry]));
        }
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({ "hooks": hooks })).unwrap_or_default()
        ));
        crate::cmd::note(&format!(
            "and the skill (hooks/skill/SKILL.md) into {}",
            skill.display()
        ));
        return Ok(());
    }
    let path = settings_path(project);
    let mut settings = read_settings(&path)?.unwrap_or_else(|| json!({}));
    let changed = merge(&mut settings, &program, waiter).map_err(|m| Error::bad_input(&path, m))?;
    let skill_changed = write_skill(&skill)?;
    if !changed {
        out(&format!("already installed in {}\n", path.display()));
        if skill_changed {
            out(&format!("  skill updated: {}\n", skill.display()));
        }
        return Ok(());
    }
    let what = if waiter {
        "the session-start block, the prompt hook and the waiter"
    } else {
        "the session-start block and the prompt hook (no waiter)"
    };
    save(
        &path,
        &settings,
        &format!(
            "installed {what} in {}\n  command: {program}\n  skill: {}",
            path.display(),
            skill.display()
        ),
    )
}

/// Writes the skill when it differs; answers whether it did.
fn write_skill(path: &Path) -> Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == SKILL) {
        return Ok(false);
    }
    let io = |e: std::io::Error| Error::bad_input(path, format!("cannot write the skill: {e}"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    crate::write_atomic(path, SKILL.as_bytes()).map_err(io)?;
    Ok(true)
}

pub fn uninstall(project: Option<&Path>) -> Result<()> {
    let path = settings_path(project);
    let skill = skill_path(project);
    let skill_removed = std::fs::remove_file(&skill).is_ok();
    if skill_removed && let Some(dir) = skill.parent() {
        let _ = std::fs::remove_dir(dir); // only when empty
    }
    let Some(mut settings) = read_settings(&path)? else {
        out(&format!(
            "not installed: {} does not exist\n",
            path.display()
        ));
        return Ok(());
    };
    if !remove(&mut settings) {
        out(&format!("not installed in {}\n", path.display()));
        return Ok(());
    }
    save(
        &path,
        &settings,
        &format!(
            "removed the coord-hook entries from {}{}",
            path.display(),
            if skill_removed {
                format!(" and the skill {}", skill.display())
            } else {
                String::new()
            }
        ),
    )
}

/// Writes the settings, then says what was done and where the old file went.
fn save(path: &Path, settings: &Value, done: &str) -> Result<()> {
    let backup = write_settings(path, settings)?;
    out(&format!("{done}\n"));
    if let Some(b) = backup {
        out(&format!("  previous file kept as {}\n", b.display()));
    }
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

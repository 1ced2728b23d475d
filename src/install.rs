//! `coord-hook install|uninstall`: merge our SessionStart entry into Claude
//! Code's settings.json, keeping everything else as it was.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::cmd::out;
use crate::error::{Error, Result};
use crate::identity::home_claude_dir;

/// The sessions the hook runs on.
pub const MATCHER: &str = "startup|resume|clear|compact";
/// Claude Code's own limit for our hook, in seconds; ours is far shorter.
pub const CLAUDE_TIMEOUT_S: u64 = 10;
/// How our entry is recognised: its command runs a `coord-hook` binary.
const MARK: &str = "coord-hook";

pub fn settings_path(project: Option<&Path>) -> PathBuf {
    match project {
        Some(dir) => dir.join(".claude").join("settings.json"),
        None => home_claude_dir().join("settings.json"),
    }
}

/// The command Claude Code runs: the absolute path of the `coord-hook`
/// binary beside this one, quoted, in the JSON form.
pub fn hook_command() -> Result<String> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Usage(format!("cannot find this program's path: {e}")))?;
    let exe = plain_path(exe.canonicalize().unwrap_or(exe));
    let name = format!("coord-hook{}", std::env::consts::EXE_SUFFIX);
    let hook = match exe.parent().map(|d| d.join(&name)) {
        Some(p) if p.is_file() => p,
        _ => exe,
    };
    Ok(format!("\"{}\" --format json", hook.display()))
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

/// Our entry, as it goes into `hooks.SessionStart`.
pub fn entry(command: &str) -> Value {
    json!({
        "matcher": MATCHER,
        "hooks": [{ "type": "command", "command": command, "timeout": CLAUDE_TIMEOUT_S }]
    })
}

fn is_ours(hook: &Value) -> bool {
    hook.get("command")
        .and_then(Value::as_str)
        .is_some_and(|c| c.contains(MARK))
}

/// Adds (or updates) our entry; answers whether anything changed.
pub fn merge(settings: &mut Value, command: &str) -> std::result::Result<bool, String> {
    let root = settings
        .as_object_mut()
        .ok_or("the top level is not a JSON object")?;
    let hooks = root
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or("\"hooks\" is not an object")?;
    let groups = hooks
        .entry("SessionStart")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or("\"hooks.SessionStart\" is not an array")?;
    for group in groups.iter_mut() {
        let Some(list) = group.get_mut("hooks").and_then(Value::as_array_mut) else {
            continue;
        };
        if let Some(h) = list.iter_mut().find(|h| is_ours(h)) {
            if h["command"] == command {
                return Ok(false);
            }
            // The binary moved: point the existing entry at the new path.
            h["command"] = json!(command);
            return Ok(true);
        }
    }
    groups.push(entry(command));
    Ok(true)
}

/// Removes our entry and any container it leaves empty.
pub fn remove(settings: &mut Value) -> bool {
    let Some(hooks) = settings.get_mut("hooks").and_then(Value::as_object_mut) else {
        return false;
    };
    let Some(groups) = hooks.get_mut("SessionStart").and_then(Value::as_array_mut) else {
        return false;
    };
    let mut changed = false;
    groups.retain_mut(|group| {
        let Some(list) = group.get_mut("hooks").and_then(Value::as_array_mut) else {
            return true;
        };
        let before = list.len();
        list.retain(|h| !is_ours(h));
        if list.len() != before {
            changed = true;
            return !list.is_empty();
        }
        true
    });
    if groups.is_empty() {
        hooks.remove("SessionStart");
    }
    if hooks.is_empty()
        && let Some(root) = settings.as_object_mut()
    {
        root.remove("hooks");
    }
    changed
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
    let tmp = dir.join(format!(".settings.json.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(backup)
}

pub fn install(project: Option<&Path>, print: bool) -> Result<()> {
    let command = hook_command()?;
    if print {
        let snippet = json!({ "hooks": { "SessionStart": [entry(&command)] } });
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&snippet).unwrap_or_default()
        ));
        return Ok(());
    }
    let path = settings_path(project);
    let mut settings = read_settings(&path)?.unwrap_or_else(|| json!({}));
    let changed = merge(&mut settings, &command).map_err(|m| Error::bad_input(&path, m))?;
    if !changed {
        out(&format!("already installed in {}\n", path.display()));
        return Ok(());
    }
    save(
        &path,
        &settings,
        &format!(
            "installed the SessionStart hook in {}\n  command: {command}",
            path.display()
        ),
    )
}

pub fn uninstall(project: Option<&Path>) -> Result<()> {
    let path = settings_path(project);
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
        &format!("removed the coord-hook entry from {}", path.display()),
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

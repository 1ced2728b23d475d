//! `coord-hook install|uninstall`: merge our hook entries into Claude
//! Code's settings.json — the session-start block, the prompt hook and the
//! waiter — and the skill, keeping everything else as it was.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::identity::home_claude_dir;
use crate::out::out;

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

/// Splits a command line into words the way a POSIX shell would for plain
/// commands (quotes removed); good enough to find the program.
fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                any = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                any = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' if chars.peek().is_some_and(|n| matches!(n, '"' | '$' | '`')) => {
                            cur.extend(chars.next());
                        }
                        c => cur.push(c),
                    }
                }
            }
            c if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Our programs: the binary and the wrappers in `hooks/`.
fn is_our_program(word: &str) -> bool {
    let name = word
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(word)
        .to_ascii_lowercase();
    ["", ".exe", ".sh", ".cmd", ".bat", ".ps1"]
        .iter()
        .any(|ext| name == format!("coord-hook{ext}"))
}

/// Programs that may stand before ours: a shell or PowerShell running a
/// wrapper (`sh coord-hook.sh`, `powershell -File coord-hook.ps1`).
fn is_runner(word: &str) -> bool {
    let name = word
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(word)
        .to_ascii_lowercase();
    let name = name.trim_end_matches(".exe");
    matches!(name, "sh" | "bash" | "cmd" | "powershell" | "pwsh")
        || word.starts_with('-')
        || word.starts_with('/') && word.len() <= 3
        || word.eq_ignore_ascii_case("bypass")
}

/// Whether `command` is one of ours, and which: any entry whose program is
/// `coord-hook` (any path, quoted or not) or one of our wrappers, run as
/// the hook (no subcommand, hook flags only) or as the waiter (`wait`).
/// A command that merely mentions coord-hook, or runs one of its other
/// subcommands, is the user's.
pub fn role_of(command: &str) -> Option<Role> {
    let words = words(command);
    let at = words.iter().take(6).position(|w| is_our_program(w))?;
    if !words[..at].iter().all(|w| is_runner(w)) {
        return None;
    }
    let mut rest = words[at + 1..].iter().map(String::as_str);
    let mut role = Role::Context;
    while let Some(w) = rest.next() {
        match w {
            "wait" if role == Role::Context => role = Role::Waiter,
            "--format" | "--timeout" | "--identity" => {
                rest.next()?;
            }
            w if w.starts_with("--format=")
                || w.starts_with("--timeout=")
                || w.starts_with("--identity=") => {}
            "--no-color" => {}
            _ => return None,
        }
    }
    Some(role)
}

fn ours(h: &Value) -> Option<Role> {
    h.get("command").and_then(Value::as_str).and_then(role_of)
}

/// What `merge` did.
#[derive(Debug, Default, PartialEq)]
pub struct Merged {
    pub changed: bool,
    /// Entries of ours written by someone else (by hand, a wrapper, an
    /// older path) that were replaced or removed as duplicates.
    pub replaced: Vec<String>,
}

/// Adds, points at this binary, or repairs our entries; removes the
/// waiter's when `waiter` is false. Any entry whose program is ours counts
/// (see `role_of`): one of each role per event is kept and made ours, the
/// others go, so the block never runs twice.
pub fn merge(
    settings: &mut Value,
    program: &str,
    waiter: bool,
) -> std::result::Result<Merged, String> {
    let before = settings.clone();
    let mut replaced = Vec::new();
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
            let want_cmd = w.get("command").and_then(Value::as_str).unwrap_or("");
            // Every hook of this role in this event: the first is kept and
            // made ours, the rest removed.
            let mut first: Option<(usize, usize)> = None;
            let mut emptied = Vec::new();
            for (gi, g) in groups.iter_mut().enumerate() {
                let Some(list) = g.get_mut("hooks").and_then(Value::as_array_mut) else {
                    continue;
                };
                let was_empty = list.is_empty();
                let mut hi = 0;
                list.retain(|h| {
                    let keep = if ours(h) == role {
                        let cmd = h.get("command").and_then(Value::as_str).unwrap_or("");
                        if role_of(cmd).is_some() && cmd != want_cmd {
                            replaced.push(cmd.to_string());
                        }
                        if first.is_none() {
                            first = Some((gi, hi));
                            true
                        } else {
                            false
                        }
                    } else {
                        true
                    };
                    if keep {
                        hi += 1;
                    }
                    keep
                });
                if !was_empty && list.is_empty() {
                    emptied.push(gi);
                }
            }
            // Groups left empty by removing duplicates go (only groups
            // after the kept hook's can be emptied, so its index holds).
            for gi in emptied.into_iter().rev() {
                groups.remove(gi);
            }
            match first {
                Some((gi, hi)) => {
                    let g = &mut groups[gi];
                    if let Some(list) = g.get_mut("hooks").and_then(Value::as_array_mut) {
                        list[hi] = w.clone();
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
    replaced.dedup();
    Ok(Merged {
        changed: *settings != before,
        replaced,
    })
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

/// Where the settings are written: the file, or the target of a symlinked
/// settings.json (dotfiles keep their link and get the hooks). In a
/// project, whose files a stranger may have written, a link leading out of
/// the project is refused, and so is a `.claude` folder that does.
fn settings_target(path: &Path, project: Option<&Path>) -> Result<PathBuf> {
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
fn within_project(root: &Path, path: &Path) -> Result<()> {
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
fn write_settings(path: &Path, value: &Value) -> Result<Option<PathBuf>> {
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

/// Whether a SKILL.md is ours: this version, or an earlier one (same
/// name in its front matter). Anything else is the user's own.
fn skill_is_ours(text: &str) -> bool {
    text == SKILL || text.replace("\r\n", "\n").starts_with("---\nname: coord\n")
}

/// Writes the skill when it differs; a user's own file there is kept as
/// `SKILL.md.bak` first. Answers a line saying what it did, if anything.
fn write_skill(path: &Path) -> Result<Option<String>> {
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
fn remove_skill(path: &Path) -> Option<String> {
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

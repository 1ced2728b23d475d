//! Our entries in settings.json: what they are, how any entry whose
//! program is ours is recognised, and merging them in (or out) while
//! everything else stays as it was.

use super::*;

pub(super) fn hook(command: &str, role: Role) -> Value {
    match role {
        Role::Context => {
            json!({ "type": "command", "command": command, "timeout": CLAUDE_TIMEOUT_S })
        }
        Role::Waiter => json!({
            "type": "command", "command": command, "asyncRewake": true, "timeout": WAITER_TIMEOUT_S
        }),
        Role::Guard => json!({ "type": "command", "command": command, "timeout": GUARD_TIMEOUT_S }),
    }
}

/// The tools the guard is asked about: the ones that change a file.
pub const GUARD_MATCHER: &str = "Edit|Write|MultiEdit|NotebookEdit";
/// Claude Code's limit for the guard (it answers within 0.3 s or allows).
const GUARD_TIMEOUT_S: u64 = 5;

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
    // The window ends: its session is known closed at once.
    out.push((
        "SessionEnd",
        json!({ "hooks": [hook(&context, Role::Context)] }),
    ));
    // The guard before an edit (claims), and after it (what was touched).
    let guard = json!({ "matcher": GUARD_MATCHER, "hooks": [hook(&format!("{program} guard"), Role::Guard)] });
    out.push(("PreToolUse", guard.clone()));
    out.push(("PostToolUse", guard));
    out
}

/// Splits a command line into words the way a POSIX shell would for plain
/// commands (quotes removed); good enough to find the program.
pub(super) fn words(command: &str) -> Vec<String> {
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
pub(super) fn is_our_program(word: &str) -> bool {
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
pub(super) fn is_runner(word: &str) -> bool {
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
            "guard" if role == Role::Context => role = Role::Guard,
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

pub(super) fn ours(h: &Value) -> Option<Role> {
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
pub(super) fn remove_where(settings: &mut Value, which: impl Fn(Role) -> bool) -> bool {
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

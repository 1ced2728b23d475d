//! `coord-hook install|uninstall` on a settings.json that already has other
//! hooks, and the platform wrappers in hooks/.

mod common;

use common::{Machine, stderr, stdout};
use serde_json::{Value, json};

fn existing() -> Value {
    json!({
        "model": "opus",
        "permissions": {"allow": ["Bash(git status)"], "deny": []},
        "hooks": {
            "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "audit.sh"}]}],
            "SessionStart": [{"matcher": "startup", "hooks": [{"type": "command", "command": "echo hi", "timeout": 5}]}]
        },
        "someFutureKey": {"x": [1, 2, 3]}
    })
}

fn read(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn install_merges_keeps_the_rest_and_is_idempotent() {
    let m = Machine::new("BOX");
    let settings = m.claude_dir().join("settings.json");
    let original = serde_json::to_string_pretty(&existing()).unwrap();
    std::fs::write(&settings, &original).unwrap();

    let out = m.bin("coord-hook", None, &["install"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("installed"));
    let after = read(&settings);
    let groups = after["hooks"]["SessionStart"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0], existing()["hooks"]["SessionStart"][0]);
    assert_eq!(groups[1]["matcher"], "startup|resume|clear|compact");
    let hook = &groups[1]["hooks"][0];
    assert_eq!(hook["type"], "command");
    assert_eq!(hook["timeout"], 10);
    let command = hook["command"].as_str().unwrap();
    assert!(command.ends_with("--format json"), "{command}");
    let exe = assert_cmd::cargo::cargo_bin("coord-hook");
    let exe = exe.canonicalize().unwrap_or(exe).display().to_string();
    // install writes a plain drive path on Windows, not canonicalize()'s
    // `\\?\C:\…` form, which not every shell understands.
    let exe = exe.strip_prefix(r"\\?\").unwrap_or(&exe);
    assert!(command.contains(exe), "{command}");
    assert!(!command.contains(r"\\?\"), "{command}");
    for key in ["model", "permissions", "someFutureKey"] {
        assert_eq!(after[key], existing()[key], "{key}");
    }
    assert_eq!(
        after["hooks"]["PreToolUse"],
        existing()["hooks"]["PreToolUse"]
    );
    // Key order is kept too.
    let keys: Vec<&String> = after.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["model", "permissions", "hooks", "someFutureKey"]);
    // The old file is backed up.
    assert_eq!(
        std::fs::read_to_string(settings.with_extension("json.bak")).unwrap(),
        original
    );

    // Twice changes nothing.
    let before = std::fs::read(&settings).unwrap();
    let out = m.bin("coord-hook", None, &["install"]).output().unwrap();
    assert!(stdout(&out).contains("already installed"));
    assert_eq!(std::fs::read(&settings).unwrap(), before);

    // Uninstall removes our entry and nothing else.
    let out = m.bin("coord-hook", None, &["uninstall"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(read(&settings), existing());
    let out = m.bin("coord-hook", None, &["uninstall"]).output().unwrap();
    assert!(stdout(&out).contains("not installed"));
}

#[test]
fn install_into_a_project_and_print() {
    let m = Machine::new("BOX");
    let project = m.root().join("proj");
    std::fs::create_dir_all(&project).unwrap();
    let out = m
        .bin(
            "coord-hook",
            None,
            &["install", "--project", project.to_str().unwrap()],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let written = read(&project.join(".claude/settings.json"));
    assert_eq!(
        written["hooks"]["SessionStart"].as_array().unwrap().len(),
        1
    );
    m.bin(
        "coord-hook",
        None,
        &["uninstall", "--project", project.to_str().unwrap()],
    )
    .assert()
    .success();
    assert_eq!(read(&project.join(".claude/settings.json")), json!({}));

    let out = m
        .bin("coord-hook", None, &["install", "--print"])
        .output()
        .unwrap();
    let snippet: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(snippet["hooks"]["SessionStart"][0]["hooks"][0]["command"].is_string());
    assert!(
        !m.claude_dir().join("settings.json").exists(),
        "--print wrote a file"
    );
}

#[test]
fn a_broken_settings_file_is_named_and_left_alone() {
    let m = Machine::new("BOX");
    let settings = m.claude_dir().join("settings.json");
    std::fs::write(&settings, "{ \"hooks\": ").unwrap();
    let out = m.bin("coord-hook", None, &["install"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("settings.json"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), "{ \"hooks\": ");
}

#[test]
fn the_shipped_snippet_is_what_install_writes() {
    let shipped: Value =
        serde_json::from_str(include_str!("../hooks/settings-snippet.json")).unwrap();
    for (event, entry) in coord_hook::install::entries("coord-hook", true) {
        assert_eq!(shipped["hooks"][event][0], entry, "{event}");
    }
}

#[cfg(unix)]
#[test]
fn the_posix_wrapper_is_silent_without_the_binary() {
    let m = Machine::new("BOX");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hooks/coord-hook.sh");
    let out = std::process::Command::new("sh")
        .arg(script)
        .env("PATH", "/usr/bin:/bin")
        .env_remove("COORD_HOOK_BIN")
        .current_dir(m.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());

    let out = std::process::Command::new("sh")
        .arg(script)
        .env("COORD_HOOK_BIN", assert_cmd::cargo::cargo_bin("coord-hook"))
        .env("HOME", m.root())
        .current_dir(m.root())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "SessionStart");
}

/// `hooks/coord-hook.cmd` under the real `cmd.exe` (wine's in CI): silent
/// and exit 0 when the binary is missing (by name or by full path), and
/// Claude Code's stdin reaches the binary when it is there.
#[cfg(windows)]
#[test]
fn the_cmd_wrapper_is_silent_without_the_binary_and_passes_stdin() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let m = Machine::new("BOX");
    let script = m.root().join("coord-hook.cmd");
    std::fs::write(&script, include_str!("../hooks/coord-hook.cmd")).unwrap();
    let run = |bin: Option<&std::ffi::OsStr>, path: &std::ffi::OsStr, stdin: &str| {
        let mut c = Command::new("cmd");
        c.arg("/c")
            .arg(&script)
            .env("PATH", path)
            .env("HOME", m.root())
            .env("USERPROFILE", m.root())
            .env_remove("COORD_HOOK_BIN")
            .current_dir(m.root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(b) = bin {
            c.env("COORD_HOOK_BIN", b);
        }
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let system = std::env::var_os("SystemRoot").unwrap_or_else(|| r"C:\windows".into());
    let bare_path = std::path::Path::new(&system).join("system32");
    let missing = m.root().join("nowhere").join("coord-hook.exe");
    for bin in [
        None,
        Some(missing.as_os_str()),
        Some("no-such-coord-hook".as_ref()),
    ] {
        let out = run(bin, bare_path.as_os_str(), "{}");
        assert_eq!(out.status.code(), Some(0), "{bin:?}");
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{bin:?}: {} {}",
            stdout(&out),
            stderr(&out)
        );
    }

    // A project folder whose identity names the session: only the hook's
    // stdin (its `cwd`) leads there.
    let project = m.root().join("proj");
    std::fs::create_dir_all(project.join(".claude")).unwrap();
    std::fs::write(
        project.join(".claude").join("identity.json"),
        r#"{"user": "howard", "machine": "BOX", "session": "via-stdin"}"#,
    )
    .unwrap();
    let stdin = json!({"hook_event_name": "SessionStart", "cwd": project}).to_string();
    let exe = assert_cmd::cargo::cargo_bin("coord-hook");
    let bin_dir = exe.parent().unwrap().to_path_buf();
    let with_bin = std::env::join_paths([bin_dir, bare_path.clone()]).unwrap();
    // By full path, and found on the PATH by its default name.
    for bin in [Some(exe.as_os_str()), None] {
        let out = run(bin, &with_bin, &stdin);
        assert_eq!(out.status.code(), Some(0), "{bin:?}: {}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{bin:?}: {e}: {}", stdout(&out)));
        let context = v["hookSpecificOutput"]["additionalContext"]
            .as_str()
            .unwrap();
        assert!(context.contains("BOX/via-stdin"), "{context}");
    }
}

//! `coord-hook install|uninstall` on a settings.json that already has other
//! hooks, and the platform wrappers in hooks/.

use crate::common::{Machine, stderr, stdout};
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
    for key in ["model", "someFutureKey"] {
        assert_eq!(after[key], existing()[key], "{key}");
    }
    // The user's rules stay first; ours follow (see the permissions test).
    assert_eq!(after["permissions"]["allow"][0], "Bash(git status)");
    assert_eq!(after["permissions"]["deny"], json!([]));
    // The user's PreToolUse hooks stay first; the guard follows.
    let pre = after["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(pre[0], existing()["hooks"]["PreToolUse"][0]);
    assert_eq!(pre[1]["matcher"], "Edit|Write|MultiEdit|NotebookEdit");
    assert!(
        pre[1]["hooks"][0]["command"]
            .as_str()
            .unwrap()
            .ends_with(" guard")
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
    // Nothing of ours is left behind: no empty settings.json, no empty
    // skills folder.
    assert!(!project.join(".claude/settings.json").exists());
    assert!(!project.join(".claude/skills").exists());

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
        serde_json::from_str(include_str!("../../hooks/settings-snippet.json")).unwrap();
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
    std::fs::write(&script, include_str!("../../hooks/coord-hook.cmd")).unwrap();
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

fn install_in(m: &Machine, project: Option<&std::path::Path>) -> std::process::Output {
    let mut args = vec!["install"];
    if let Some(p) = project {
        args.extend(["--project", p.to_str().unwrap()]);
    }
    m.bin("coord-hook", None, &args).output().unwrap()
}

#[cfg(unix)]
#[test]
fn a_repository_cannot_make_install_write_through_its_symlinks() {
    let m = Machine::new("BOX");
    let repo = m.root().join("repo");
    std::fs::create_dir_all(repo.join(".claude")).unwrap();
    let victim = m.root().join(".bashrc");
    std::fs::write(&victim, "# my shell\n").unwrap();
    std::fs::write(
        repo.join(".claude/settings.json"),
        r#"{"x":"$(touch PWNED)"}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(&victim, repo.join(".claude/settings.json.bak")).unwrap();
    // A predictable temp name planted as a link, as the old code used.
    for pid in 1..50 {
        let _ = std::os::unix::fs::symlink(
            &victim,
            repo.join(format!(".claude/.settings.json.{pid}.tmp")),
        );
    }
    let out = install_in(&m, Some(&repo));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "# my shell\n");
    // The backup is a plain file holding the old settings.
    let bak = repo.join(".claude/settings.json.bak");
    assert!(
        !std::fs::symlink_metadata(&bak)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::read_to_string(&bak).unwrap().contains("PWNED"));

    // A settings.json, or a .claude folder, that leads out of the project
    // is refused, and the file it leads to is untouched.
    let repo2 = m.root().join("repo2");
    std::fs::create_dir_all(repo2.join(".claude")).unwrap();
    let outside = m.root().join("outside.json");
    std::fs::write(&outside, "{}").unwrap();
    std::os::unix::fs::symlink(&outside, repo2.join(".claude/settings.json")).unwrap();
    let out = install_in(&m, Some(&repo2));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("leads out of the project"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "{}");
    let repo3 = m.root().join("repo3");
    std::fs::create_dir_all(&repo3).unwrap();
    std::os::unix::fs::symlink(m.claude_dir(), repo3.join(".claude")).unwrap();
    let out = install_in(&m, Some(&repo3));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!m.claude_dir().join("settings.json").exists());
}

#[cfg(unix)]
#[test]
fn install_keeps_the_mode_and_a_dotfiles_link_and_leaves_a_read_only_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let m = Machine::new("BOX");
    let settings = m.claude_dir().join("settings.json");
    std::fs::write(&settings, r#"{"env":{"SECRET":"x"}}"#).unwrap();
    std::fs::set_permissions(&settings, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = install_in(&m, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&settings), 0o600);
    assert_eq!(mode(&settings.with_extension("json.bak")), 0o600);

    // A symlinked settings.json (dotfiles): the link stays, its target
    // gets the hooks.
    let dotfiles = m.root().join("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    std::fs::write(dotfiles.join("settings.json"), r#"{"model":"x"}"#).unwrap();
    std::fs::remove_file(&settings).unwrap();
    std::os::unix::fs::symlink(dotfiles.join("settings.json"), &settings).unwrap();
    let out = install_in(&m, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&settings)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let target = read(&dotfiles.join("settings.json"));
    assert_eq!(target["model"], "x");
    assert!(target["hooks"]["SessionStart"].is_array());

    // Read-only: left as it is, with a line that says what to do.
    std::fs::remove_file(&settings).unwrap();
    std::fs::write(&settings, r#"{"model":"x"}"#).unwrap();
    std::fs::set_permissions(&settings, std::fs::Permissions::from_mode(0o444)).unwrap();
    let out = install_in(&m, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("read-only"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&settings).unwrap(),
        r#"{"model":"x"}"#
    );
    assert_eq!(mode(&settings), 0o444);
}

#[test]
fn a_users_own_skill_is_kept_and_uninstall_leaves_it() {
    let m = Machine::new("BOX");
    let skill = m.claude_dir().join("skills/coord/SKILL.md");
    std::fs::create_dir_all(skill.parent().unwrap()).unwrap();
    std::fs::write(&skill, "my own notes\n").unwrap();
    let out = install_in(&m, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("was your own"), "{}", stdout(&out));
    assert_eq!(
        std::fs::read_to_string(skill.with_extension("md.bak")).unwrap(),
        "my own notes\n"
    );
    assert!(
        std::fs::read_to_string(&skill)
            .unwrap()
            .starts_with("---\nname: coord")
    );
    // Ours goes at uninstall; a user's own file in its place stays.
    std::fs::write(&skill, "rewritten by me\n").unwrap();
    let out = m.bin("coord-hook", None, &["uninstall"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("not coord-hook's skill"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&skill).unwrap(),
        "rewritten by me\n"
    );
}

#[test]
fn a_hand_written_coord_hook_entry_or_wrapper_is_replaced_not_doubled() {
    let m = Machine::new("BOX");
    let settings = m.claude_dir().join("settings.json");
    let exe = assert_cmd::cargo::cargo_bin("coord-hook");
    let own = json!({"hooks": {"SessionStart": [
        {"hooks": [
            {"type": "command", "command": format!("{} --format json --timeout 3000", exe.display())},
            {"type": "command", "command": "/opt/coord/coord-hook.sh"},
            {"type": "command", "command": "echo coord-hook is great"}
        ]},
        {"matcher": "startup", "hooks": [{"type": "command", "command": "sh /opt/coord/coord-hook.sh"}]}
    ]}});
    std::fs::write(&settings, own.to_string()).unwrap();
    let out = install_in(&m, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("replaced an entry"),
        "{}",
        stdout(&out)
    );
    let after = read(&settings);
    let commands: Vec<String> = after["hooks"]["SessionStart"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["hooks"].as_array().unwrap().clone())
        .map(|h| h["command"].as_str().unwrap().to_string())
        .collect();
    let blocks = commands
        .iter()
        .filter(|c| c.ends_with("--format json"))
        .count();
    assert_eq!(blocks, 1, "{commands:?}");
    assert!(commands.contains(&"echo coord-hook is great".to_string()));
    // Running install again changes nothing.
    let out = install_in(&m, None);
    assert!(
        stdout(&out).contains("already installed"),
        "{}",
        stdout(&out)
    );
}

#[cfg(unix)]
#[test]
fn the_installed_command_keeps_a_hostile_folder_name_a_name() {
    let m = Machine::new("BOX");
    let dir = m.root().join("bin$(touch PWNED)`touch PWNED2`'x");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("coord-hook");
    std::fs::copy(assert_cmd::cargo::cargo_bin("coord-hook"), &exe).unwrap();
    // A copy just written may be briefly "busy": another test's fork can
    // hold its write descriptor until that child execs (ETXTBSY).
    let out = (0..50)
        .find_map(|_| {
            match std::process::Command::new(&exe)
                .arg("install")
                .env("HOME", m.root())
                .env("NO_COLOR", "1")
                .current_dir(m.root())
                .output()
            {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                }
                r => Some(r.unwrap()),
            }
        })
        .expect("the copy became executable");
    assert!(out.status.success(), "{}", stderr(&out));
    let after = read(&m.claude_dir().join("settings.json"));
    let command = after["hooks"]["UserPromptSubmit"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .to_string();
    let run = std::process::Command::new("sh")
        .args(["-c", &format!("{command} --version")])
        .current_dir(m.root())
        .env("HOME", m.root())
        .output()
        .unwrap();
    assert!(!m.root().join("PWNED").exists() && !m.root().join("PWNED2").exists());
    assert!(run.status.success(), "{command}: {}", stderr(&run));
    assert!(stdout(&run).contains("coord"), "{}", stdout(&run));
}

#[test]
fn install_allows_coords_everyday_commands_and_uninstall_removes_exactly_those() {
    let m = Machine::new("BOX");
    let settings = m.claude_dir().join("settings.json");
    std::fs::write(
        &settings,
        r#"{"permissions":{"allow":["Bash(git status)"]}}"#,
    )
    .unwrap();
    let out = install_in(&m, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("without asking"), "{}", stdout(&out));
    let allow: Vec<String> = read(&settings)["permissions"]["allow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(allow[0], "Bash(git status)");
    for rule in coord_hook::install::ALLOW_RULES {
        assert!(allow.contains(&rule.to_string()), "{rule}");
    }
    for never in ["serve", "install", "sync"] {
        assert!(!allow.iter().any(|r| r.contains(never)), "{never}");
    }
    // --no-allow takes ours out again, and nothing else.
    let out = m
        .bin("coord-hook", None, &["install", "--no-allow"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        read(&settings)["permissions"]["allow"],
        json!(["Bash(git status)"])
    );
    install_in(&m, None);
    m.bin("coord-hook", None, &["uninstall"]).assert().success();
    assert_eq!(
        read(&settings),
        json!({"permissions": {"allow": ["Bash(git status)"]}})
    );
}

//! Claims that hold (issue 24): `coord lock claim … --path GLOB` and the
//! PreToolUse guard, across two machines' clones of one repository (other
//! absolute paths, the same folder name), through a real `coord serve`.

use std::path::{Path, PathBuf};

use crate::common::{Machine, Server, dead_url, stderr, stdout};
use serde_json::{Value, json};

/// A clone of the repository `shop` under `m`'s home, at `at`.
fn clone(m: &Machine, at: &str) -> PathBuf {
    let root = m.root().join(at).join("shop");
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(root.join("db/migrations")).unwrap();
    std::fs::create_dir_all(root.join("src/a")).unwrap();
    root
}

/// What the guard printed for `event` on an edit of `file` (Null when it
/// printed nothing: allowed, nothing to say).
fn ask(m: &Machine, event: &str, file: &Path, cwd: &Path) -> Value {
    let input = json!({
        "session_id": "0b5e-guard", "cwd": cwd, "hook_event_name": event,
        "tool_name": "Edit", "tool_input": {"file_path": file, "old_string": "a", "new_string": "b"}
    });
    let out = m
        .bin("coord-hook", None, &["guard"])
        .write_stdin(input.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    if text.trim().is_empty() {
        return Value::Null;
    }
    let v: Value = serde_json::from_str(&text).expect("the guard prints JSON");
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "PreToolUse");
    v["hookSpecificOutput"].clone()
}

/// The guard's answer for an edit of `file`: the deny reason, or None when
/// it allows (a note may come with that: see `note`).
fn guard(m: &Machine, file: &Path, cwd: &Path) -> Option<String> {
    let v = ask(m, "PreToolUse", file, cwd);
    if v.is_null() || v.get("permissionDecision").is_none() {
        return None;
    }
    assert_eq!(v["permissionDecision"], "deny");
    Some(v["permissionDecisionReason"].as_str().unwrap().to_string())
}

/// The note the guard adds to an edit it allows, if any.
fn note(m: &Machine, file: &Path, cwd: &Path) -> Option<String> {
    let v = ask(m, "PreToolUse", file, cwd);
    assert!(v.get("permissionDecision").is_none(), "{v}");
    v.get("additionalContext")
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[test]
fn a_path_claimed_on_one_machine_stops_the_edit_on_another() {
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BRAVO", &s.url);
    let (ra, rb) = (clone(&a, "work"), clone(&b, "src/elsewhere"));
    let out = a
        .coord(&[
            "lock",
            "claim",
            "shop",
            "schema",
            "--path",
            "db/migrations",
            "--path",
            "src/**/*.rs",
            "--note",
            "renaming the users table",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The other machine's clone: denied, with who, why and how to ask.
    let why = guard(&b, &rb.join("db/migrations/0042.sql"), &rb).expect("denied");
    assert!(why.contains("ALPHA/claude-main"), "{why}");
    assert!(why.contains("renaming the users table"), "{why}");
    assert!(why.contains("coord msg send ALPHA/claude-main"), "{why}");
    assert!(why.contains("shop/schema"), "{why}");
    assert!(guard(&b, &rb.join("src/a/deep.rs"), &rb).is_some());
    // Free paths, the holder itself, and files outside a repository pass.
    assert_eq!(guard(&b, &rb.join("src/a/notes.txt"), &rb), None);
    assert_eq!(guard(&b, &rb.join("README.md"), &rb), None);
    assert_eq!(guard(&a, &ra.join("db/migrations/0042.sql"), &ra), None);
    let outside = b.root().join("scratch.txt");
    assert_eq!(guard(&b, &outside, b.root()), None);
    // `lock list` shows the paths.
    let list = a.coord(&["lock", "list"]).output().unwrap();
    assert!(stdout(&list).contains("db/migrations"), "{}", stdout(&list));
    let json = a.json(None, &["lock", "list"]);
    assert_eq!(json[0]["paths"], json!(["db/migrations", "src/**/*.rs"]));
    // Released: the edit passes.
    let out = a
        .coord(&["lock", "release", "shop", "schema"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(guard(&b, &rb.join("db/migrations/0042.sql"), &rb), None);
}

#[test]
fn an_expired_claim_no_longer_stops_anyone() {
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BRAVO", &s.url);
    let rb = clone(&b, "w");
    let out = a
        .coord(&[
            "lock", "claim", "shop", "hot", "--path", "db", "--ttl", "0.0003",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(guard(&b, &rb.join("db/x.sql"), &rb), None);
}

#[test]
fn the_guard_allows_when_the_api_is_away_or_the_identity_broken() {
    let dead = Machine::remote("BRAVO", &dead_url());
    let r = clone(&dead, "w");
    // Allowed, and said once per window, not at every edit.
    let said = note(&dead, &r.join("db/migrations/1.sql"), &r).expect("a note");
    assert!(said.contains("could not be checked"), "{said}");
    assert_eq!(guard(&dead, &r.join("db/migrations/1.sql"), &r), None);
    assert_eq!(note(&dead, &r.join("db/migrations/2.sql"), &r), None);
    let broken = Machine::new("BROKEN");
    std::fs::write(broken.identity_path(), "{ not json").unwrap();
    let r = clone(&broken, "w");
    assert_eq!(guard(&broken, &r.join("db/1.sql"), &r), None);
}

#[test]
fn claims_on_the_embedded_store_hold_between_windows_of_one_machine() {
    let m = Machine::new("BOX");
    let r = clone(&m, "w");
    let out = m
        .session("other", &["lock", "claim", "shop", "api", "--path", "src"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let why = guard(&m, &r.join("src/a/lib.rs"), &r).expect("denied");
    assert!(why.contains("BOX/other"), "{why}");
}

#[test]
fn a_path_that_cannot_be_a_claim_is_refused_by_cli_and_server() {
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    for bad in ["/etc/passwd", "../up", ""] {
        let out = a
            .coord(&["lock", "claim", "shop", "x", "--path", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--path"), "{}", stderr(&out));
    }
    let r = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .post(&format!("{}/api/coord/locks", s.url))
        .header("Content-Type", "application/json")
        .send(r#"{"project":"shop","resource":"x","session_id":"A/x","paths":["../../etc"]}"#)
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
}

#[test]
fn a_new_file_in_a_claimed_folder_and_the_case_rule_of_the_os() {
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BRAVO", &s.url);
    let rb = clone(&b, "w");
    let out = a
        .coord(&["lock", "claim", "shop", "gen", "--path", "Generated/Schema"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // A Write of a file whose folders do not exist yet.
    let new_file = rb
        .join("Generated")
        .join("Schema")
        .join("v2")
        .join("new.sql");
    assert!(!new_file.parent().unwrap().exists());
    assert!(guard(&b, &new_file, &rb).is_some());
    // The same path in another case: one file on Windows and macOS, two on
    // Linux.
    let other_case = rb.join("generated").join("schema").join("x.sql");
    assert_eq!(
        guard(&b, &other_case, &rb).is_some(),
        cfg!(any(windows, target_os = "macos"))
    );
}

#[test]
fn an_edit_another_session_made_lately_is_named_but_allowed() {
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BRAVO", &s.url);
    let (ra, rb) = (clone(&a, "work"), clone(&b, "elsewhere"));
    // ALPHA edits src/a/lib.rs (its PostToolUse records it) …
    assert!(ask(&a, "PostToolUse", &ra.join("src/a/lib.rs"), &ra).is_null());
    // … BRAVO, about to edit the same file in its own clone, hears of it.
    let said = note(&b, &rb.join("src/a/lib.rs"), &rb).expect("a note");
    assert!(said.contains("ALPHA/claude-main"), "{said}");
    assert!(said.contains("src/a/lib.rs"), "{said}");
    assert!(said.contains("coord msg send ALPHA/claude-main"), "{said}");
    // Not of its own edits, nor of files nobody touched.
    assert_eq!(note(&a, &ra.join("src/a/lib.rs"), &ra), None);
    assert_eq!(note(&b, &rb.join("src/a/other.rs"), &rb), None);
    // The server keeps one row per file and session, and answers it.
    let body = ureq::get(&format!(
        "{}/api/coord/touches?project=shop&path=src/a/lib.rs",
        s.url
    ))
    .call()
    .unwrap()
    .body_mut()
    .read_to_string()
    .unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["session_id"], "ALPHA/claude-main");
    // A claim outranks the note: denied.
    let out = a
        .coord(&["lock", "claim", "shop", "lib", "--path", "src/a"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(guard(&b, &rb.join("src/a/lib.rs"), &rb).is_some());
}

#[test]
fn edits_are_known_between_windows_of_the_embedded_store() {
    let m = Machine::new("BOX");
    let r = clone(&m, "w");
    let input = json!({
        "session_id": "other-window", "cwd": &r, "hook_event_name": "PostToolUse",
        "tool_name": "Write", "tool_input": {"file_path": r.join("README.md"), "content": "x"}
    });
    let out = m
        .bin("coord-hook", Some("other"), &["guard"])
        .write_stdin(input.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success() && stdout(&out).is_empty(),
        "{}",
        stderr(&out)
    );
    let said = note(&m, &r.join("README.md"), &r).expect("a note");
    assert!(said.contains("BOX/other"), "{said}");
}

/// git, when this machine has it (the Windows tests under wine do not).
fn git(dir: &Path, args: &[&str]) -> Option<std::process::Output> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .ok()?;
    Some(out)
}

#[test]
fn the_git_pre_commit_hook_refuses_a_claimed_path_until_told_otherwise() {
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BRAVO", &s.url);
    let repo = b.root().join("src").join("shop");
    std::fs::create_dir_all(repo.join("db")).unwrap();
    let Some(init) = git(&repo, &["init", "-q"]) else {
        eprintln!("SKIPPED: no git on this machine");
        return;
    };
    assert!(init.status.success());
    // Install, from inside the clone: the hook is ours and runs the guard.
    let out = b
        .bin("coord-hook", None, &["install", "--git"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let hook = repo.join(".git/hooks/pre-commit");
    let script = std::fs::read_to_string(&hook).unwrap();
    assert!(script.contains("guard --staged"), "{script}");
    let out = a
        .coord(&[
            "lock",
            "claim",
            "shop",
            "schema",
            "--path",
            "db",
            "--note",
            "migrating",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(repo.join("db/1.sql"), "x").unwrap();
    std::fs::write(repo.join("free.txt"), "x").unwrap();
    // A commit of a free path goes through.
    git(&repo, &["add", "free.txt"]).unwrap();
    let ok = b
        .bin_cmd("git", &["commit", "-q", "-m", "free"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));
    // One that touches the claim is refused, with the guard's reason.
    git(&repo, &["add", "db/1.sql"]).unwrap();
    let refused = b
        .bin_cmd("git", &["commit", "-q", "-m", "schema"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let why = stderr(&refused);
    assert!(why.contains("commit refused"), "{why}");
    assert!(
        why.contains("ALPHA/claude-main") && why.contains("migrating"),
        "{why}"
    );
    assert!(why.contains("COORD_ALLOW_CLAIMED=1"), "{why}");
    // The override lets it through.
    let forced = b
        .bin_cmd("git", &["commit", "-q", "-m", "schema"])
        .current_dir(&repo)
        .env("COORD_ALLOW_CLAIMED", "1")
        .output()
        .unwrap();
    assert!(forced.status.success(), "{}", stderr(&forced));
    // Uninstall removes our hook; one that is not ours is never touched.
    let out = b
        .bin("coord-hook", None, &["uninstall", "--git"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!hook.exists());
    std::fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
    let out = b
        .bin("coord-hook", None, &["install", "--git"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not coord-hook's"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\necho mine\n"
    );
}

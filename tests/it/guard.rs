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

/// The guard's answer for an edit of `file` in session `session`: the deny
/// reason, or None when it allows (prints nothing).
fn guard(m: &Machine, file: &Path, cwd: &Path) -> Option<String> {
    let input = json!({
        "session_id": "0b5e-guard", "cwd": cwd, "hook_event_name": "PreToolUse",
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
        return None;
    }
    let v: Value = serde_json::from_str(&text).expect("the guard prints JSON");
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "PreToolUse");
    assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny");
    Some(
        v["hookSpecificOutput"]["permissionDecisionReason"]
            .as_str()
            .unwrap()
            .to_string(),
    )
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
    assert_eq!(guard(&dead, &r.join("db/migrations/1.sql"), &r), None);
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

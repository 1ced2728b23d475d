//! The real `coord-hook` binary as Claude Code runs it: stdin JSON, the
//! embedded store or a real `coord serve`, and every way the API can fail.

use std::io::Write as _;
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Machine, Server, stderr, stdout};
use serde_json::{Value, json};

fn hook(m: &Machine, args: &[&str], input: &str) -> std::process::Output {
    m.bin("coord-hook", None, args)
        .write_stdin(input.to_string())
        .output()
        .expect("run coord-hook")
}

fn context(out: &std::process::Output) -> (String, Value) {
    let v: Value = serde_json::from_slice(&out.stdout).expect("hook printed JSON");
    let ctx = v["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .expect("additionalContext")
        .to_string();
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "SessionStart");
    (ctx, v)
}

/// Replaces what changes from run to run with placeholders.
fn redact(text: &str, m: &Machine, url: Option<&str>) -> String {
    let mut t = text.to_string();
    if let Some(u) = url {
        t = t.replace(u, "[URL]");
    }
    let root = m.root().display().to_string();
    t.replace(&root, "[TMP]").replace('\\', "/")
}

fn input_for(m: &Machine) -> String {
    json!({
        "session_id": "9b2f5c1e-0000-4000-8000-000000000000",
        "transcript_path": "/tmp/t.jsonl",
        "cwd": m.root(),
        "hook_event_name": "SessionStart",
        "source": "startup",
        "model": "claude-x",
        "agent_type": "main",
        "something_new": {"nested": true}
    })
    .to_string()
}

fn seed(m: &Machine) {
    m.json(
        Some("other"),
        &[
            "msg",
            "send",
            "HOWARD-HOME",
            "first, to main",
            "-s",
            "hello",
        ],
    );
    m.json(Some("other"), &["msg", "send", "ALL", "a broadcast"]);
    m.json(
        Some("other"),
        &[
            "msg",
            "send",
            "HOWARD-HOME/claude-main",
            "third\nwith two lines",
        ],
    );
    m.json(
        None,
        &["todo", "add", "rotate the token", "--project", "web"],
    );
    m.json(None, &["lock", "claim", "web", "deploy"]);
}

fn check_seeded_block(ctx: &str) {
    assert!(
        ctx.contains("UNREAD COORD MESSAGES: 3 for HOWARD-HOME/claude-main"),
        "{ctx}"
    );
    assert!(ctx.contains("coord msg read <id>"));
    assert!(ctx.contains("ALL_SESSIONS (broadcast)"));
    assert!(ctx.contains("| third\n| with two lines\n"));
    assert!(ctx.contains("subject: \"hello\""));
    assert!(ctx.contains("- #1 [web] rotate the token (for everyone)"));
    assert!(ctx.contains("web/deploy until"));
    assert!(ctx.trim_end().ends_with("=== END COORD MESSAGES ==="));
}

#[test]
fn on_the_embedded_store() {
    let m = Machine::new("HOWARD-HOME");
    // Nothing written yet: one short line. The session's presence is the
    // first thing the store holds.
    let out = hook(&m, &[], &input_for(&m));
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "coord: no unread messages, open todos or locks for HOWARD-HOME/claude-main.\n"
    );
    let sessions = m.json(None, &["sessions"]);
    assert_eq!(sessions[0]["session_id"], "HOWARD-HOME/claude-main");
    assert_eq!(sessions[0]["active"], true);

    seed(&m);
    let out = hook(&m, &["--format", "json"], &input_for(&m));
    assert!(out.status.success(), "{}", stderr(&out));
    let (ctx, v) = context(&out);
    check_seeded_block(&ctx);
    assert_eq!(
        v["systemMessage"],
        "coord: 3 unread messages, 1 todo, 1 lock"
    );

    // The hook marks nothing read.
    assert_eq!(m.json(None, &["msg", "inbox"]).as_array().unwrap().len(), 3);
    // Plain text is the same block.
    let plain = hook(&m, &[], "");
    assert_eq!(stdout(&plain), ctx);
}

#[test]
fn against_coord_serve_finding_the_identity_from_the_input_cwd() {
    let s = Server::start(&[]);
    let m = Machine::remote("HOWARD-HOME", &s.url);
    seed(&m);
    let elsewhere = tempfile::tempdir().unwrap();
    let out = m
        .bin("coord-hook", None, &["--format", "json"])
        .current_dir(elsewhere.path())
        .write_stdin(input_for(&m))
        .output()
        .unwrap();
    assert!(out.status.success());
    let (ctx, _) = context(&out);
    check_seeded_block(&ctx);
    // Three reads, nothing else, and no writes.
    let log = s.log_text();
    assert!(log.contains("GET /api/coord/messages 200"));
    assert!(log.contains("GET /api/coord/todos 200"));
    assert!(log.contains("GET /api/coord/locks 200"));
}

fn failing(m: &Machine, url: &str, timeout_ms: &str) -> (String, String, Duration) {
    let start = Instant::now();
    let plain = hook(m, &["--timeout", timeout_ms], "{}");
    let json = hook(m, &["--timeout", timeout_ms, "--format", "json"], "{}");
    let took = start.elapsed() / 2;
    assert!(plain.status.success() && json.status.success());
    let (ctx, v) = context(&json);
    assert_eq!(ctx, stdout(&plain));
    let sys = v["systemMessage"]
        .as_str()
        .expect("the person is told")
        .to_string();
    assert_eq!(sys.lines().count(), 1);
    (redact(&ctx, m, Some(url)), redact(&sys, m, Some(url)), took)
}

#[test]
fn api_refused() {
    let url = crate::common::dead_url();
    let m = Machine::remote("HOWARD-HOME", &url);
    let (ctx, sys, _) = failing(&m, &url, "2000");
    insta::assert_snapshot!(ctx);
    insta::assert_snapshot!(sys);
}

#[test]
fn api_accepting_but_never_answering() {
    // Bound and listening, never accepted: connections hang after connect.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", hole.local_addr().unwrap());
    let m = Machine::remote("HOWARD-HOME", &url);
    let (ctx, sys, took) = failing(&m, &url, "500");
    // Loosely: the bench measures it properly.
    assert!(took < Duration::from_millis(500 + 800), "took {took:?}");
    insta::assert_snapshot!(ctx);
    insta::assert_snapshot!(sys);
    drop(hole);
}

#[test]
fn api_answering_html() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut c, &mut buf);
                let body = "<html><body><h1>502 Bad Gateway</h1></body></html>";
                let _ = write!(
                    c,
                    "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    let m = Machine::remote("HOWARD-HOME", &url);
    let (ctx, sys, _) = failing(&m, &url, "2000");
    assert!(!ctx.contains("<html>"));
    insta::assert_snapshot!(ctx);
    insta::assert_snapshot!(sys);
}

#[test]
fn identity_file_broken() {
    let m = Machine::new("HOWARD-HOME");
    std::fs::write(
        m.identity_path(),
        "{\"user\": \"howard\", \"machine\": [1]}",
    )
    .unwrap();
    let (ctx, sys, _) = failing(&m, "-", "2000");
    assert!(ctx.contains("identity.json"));
    insta::assert_snapshot!(ctx);
    insta::assert_snapshot!(sys);
}

#[test]
fn odd_input_is_fine_and_an_open_pipe_never_blocks() {
    let m = Machine::new("HOWARD-HOME");
    seed(&m);
    for input in [
        "",
        "not json at all",
        "[1,2,3]",
        "{\"cwd\": 5}",
        "\u{0}\u{1}\u{2}",
    ] {
        let out = hook(&m, &[], input);
        assert!(out.status.success(), "{input:?}");
        assert!(
            stdout(&out).contains("UNREAD COORD MESSAGES: 3"),
            "{input:?}"
        );
    }
    // stdin left open and never written to.
    let mut child = m
        .std_bin("coord-hook", None, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _keep_open = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("UNREAD COORD MESSAGES: 3"));
}

#[test]
fn preview_shows_where_it_reads_and_changes_nothing() {
    let m = Machine::new("HOWARD-HOME");
    let out = m.coord(&["--preview"]).output().unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains(&m.db_path().display().to_string()));
    assert!(!m.db_path().exists(), "preview created the store");
    seed(&m);
    let out = m.bin("coord-hook", None, &["--preview"]).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("preview for HOWARD-HOME/claude-main"),
        "{text}"
    );
    check_seeded_block(&text);
    assert!(!text.contains('\x1b'), "no colour without a terminal");
    assert_eq!(m.json(None, &["msg", "inbox"]).as_array().unwrap().len(), 3);
}

#[test]
fn timeout_precedence_flag_env_identity() {
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", hole.local_addr().unwrap());
    let m = Machine::with_identity(
        "HOWARD-HOME",
        &json!({"user": "h", "machine": "HOWARD-HOME", "coord_api": url, "hook_timeout_ms": 300}),
    );
    let says = |out: std::process::Output| stdout(&out);
    assert!(says(hook(&m, &[], "")).contains("within the 300 ms deadline"));
    let env = m
        .bin("coord-hook", None, &[])
        .env("COORD_HOOK_TIMEOUT_MS", "400")
        .output()
        .unwrap();
    assert!(says(env).contains("within the 400 ms deadline"));
    let flag = m
        .bin("coord-hook", None, &["--timeout", "200"])
        .env("COORD_HOOK_TIMEOUT_MS", "400")
        .output()
        .unwrap();
    assert!(says(flag).contains("within the 200 ms deadline"));
}

#[test]
fn the_fast_path_and_clap_agree() {
    let m = Machine::new("HOWARD-HOME");
    seed(&m);
    // `--format json` alone takes the fast path; `--no-color` forces clap.
    let fast = hook(
        &m,
        &["--format", "json", "--timeout", "1500"],
        &input_for(&m),
    );
    let clap = hook(
        &m,
        &["--no-color", "--format", "json", "--timeout", "1500"],
        &input_for(&m),
    );
    assert!(fast.status.success() && clap.status.success());
    assert_eq!(context(&fast), context(&clap));
    let plain_fast = hook(&m, &[], "");
    let plain_clap = hook(&m, &["--format", "text", "--no-color"], "");
    assert_eq!(stdout(&plain_fast), stdout(&plain_clap));
}

#[test]
fn a_hook_command_line_it_cannot_read_still_exits_0_and_says_why() {
    let m = Machine::new("HOWARD-HOME");
    let out = hook(&m, &["--format", "yaml"], "{}");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("does not understand"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("settings.json"));
    // A subcommand's usage error is still a usage error.
    let out = m
        .bin("coord-hook", None, &["msg", "send"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

//! Messages reach running sessions (issue 14): the prompt hook, the waiter
//! (`coord-hook wait`), shown exactly once between them, `coord serve`'s
//! long-poll, and install/uninstall of every entry and the skill.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Fake, Machine, Server, Window, http_answer, message, run_with_input, stderr};
use serde_json::{Value, json};

pub(crate) fn project(m: &Machine) -> std::path::PathBuf {
    let p = m.root().join("proj");
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// The prompt hook of `w`, as Claude Code runs it before a prompt.
pub(crate) fn prompt(m: &Machine, w: &Window, claude_session: &str) -> String {
    let mut c = m.std_bin("coord-hook", None, &["--format", "json"]);
    c.env("CLAUDE_PID", w.pid());
    let input = json!({"session_id": claude_session, "cwd": project(m),
                       "hook_event_name": "UserPromptSubmit", "prompt": "go on"});
    let out = run_with_input(&mut c, input.to_string().as_bytes());
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).unwrap()
}

/// `coord-hook wait` for window `w`, interactive unless `attended` is "0".
pub(crate) fn waiter(m: &Machine, w: &Window, attended: &str) -> Child {
    m.std_bin("coord-hook", None, &["wait"])
        .env("CLAUDE_PID", w.pid())
        .env("CLAUDE_CODE_SESSION_ATTENDED", attended)
        .env(
            "CLAUDE_CODE_ENTRYPOINT",
            if attended == "1" { "cli" } else { "sdk-cli" },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded) for a child to end; its code and stderr.
pub(crate) fn ends(mut c: Child, within: Duration) -> (Option<i32>, String) {
    let until = Instant::now() + within;
    loop {
        if let Some(status) = c.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = c.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.code(), err);
        }
        if Instant::now() > until {
            let _ = c.kill();
            panic!("still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn send(m: &Machine, body: &str) -> i64 {
    m.json(Some("peer"), &["msg", "send", "BOX", body])["id"]
        .as_i64()
        .unwrap()
}

fn running(m: &Machine) {
    let w = Window::open();
    m.arrive(Some("peer"));
    let before = send(m, "before the session");
    let start = w.start(m, &project(m), "startup", "c1");
    let ctx = start["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert!(ctx.contains("before the session"), "{ctx}");

    // A prompt with nothing new: nothing at all.
    assert_eq!(prompt(m, &w, "c1"), "");
    // Something new: only that, once, answering UserPromptSubmit.
    send(m, "mid-session news");
    let out = prompt(m, &w, "c1");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "UserPromptSubmit");
    let text = v["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert!(text.contains("| mid-session news"), "{text}");
    assert!(!text.contains("before the session"), "{text}");
    assert!(text.contains("coord msg reply"), "{text}");
    assert_eq!(prompt(m, &w, "c1"), "");

    // The waiter: quiet under `claude -p`.
    let (code, err) = ends(waiter(m, &w, "0"), Duration::from_secs(20));
    assert_eq!((code, err.as_str()), (Some(0), ""));
    // Interactive: it waits, and a message wakes it (exit 2, on stderr).
    let waiting = waiter(m, &w, "1");
    std::thread::sleep(Duration::from_millis(300));
    send(m, "wake up");
    let (code, err) = ends(waiting, Duration::from_secs(30));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("| wake up"), "{err}");
    assert!(err.contains("NEW COORD MESSAGE"), "{err}");
    // Shown once: the next prompt does not repeat it.
    assert_eq!(prompt(m, &w, "c1"), "");

    // A newer waiter supersedes the older, which exits 0.
    let older = waiter(m, &w, "1");
    std::thread::sleep(Duration::from_millis(300));
    let newer = waiter(m, &w, "1");
    let (code, _) = ends(older, Duration::from_secs(40));
    assert_eq!(code, Some(0));
    // After /clear (same window, new Claude session) the waiter still
    // wakes it, and the next session start shows everything unread again.
    let clear = w.start(m, &project(m), "clear", "c2");
    let ctx = clear["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert!(
        ctx.contains("before the session") && ctx.contains("wake up"),
        "{ctx}"
    );
    send(m, "after clear");
    let (code, err) = ends(newer, Duration::from_secs(30));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("| after clear"), "{err}");

    // Orphaned: the window's process is gone; the waiter exits 0.
    let orphan = waiter(m, &w, "1");
    std::thread::sleep(Duration::from_millis(300));
    let pid = w.pid();
    w.close();
    let (code, _) = ends(orphan, Duration::from_secs(40));
    assert_eq!(code, Some(0), "window {pid}");
    let _ = before;
}

#[test]
fn a_running_session_gets_new_messages_on_the_embedded_store() {
    running(&Machine::new("BOX"));
}

#[test]
fn a_running_session_gets_new_messages_through_coord_serve() {
    let s = Server::start(&[]);
    running(&Machine::remote("BOX", &s.url));
}

/// A prompt racing a wake-up for one message: exactly one of them shows it.
fn race(m: &Machine, rounds: usize) {
    let w = Window::open();
    m.arrive(Some("peer"));
    w.start(m, &project(m), "startup", "r");
    for round in 0..rounds {
        let waiting = waiter(m, &w, "1");
        std::thread::sleep(Duration::from_millis(100));
        let body = format!("race {round}");
        send(m, &body);
        let shown_by_prompt = prompt(m, &w, "r").contains(&format!("| {body}"));
        let (code, err) = if shown_by_prompt {
            // The waiter must not show it too: supersede it to end it.
            let mut w2 = waiter(m, &w, "1");
            let r = ends(waiting, Duration::from_secs(40));
            let _ = w2.kill();
            let _ = w2.wait();
            r
        } else {
            ends(waiting, Duration::from_secs(30))
        };
        let shown_by_waiter = code == Some(2) && err.contains(&format!("| {body}"));
        assert!(
            shown_by_prompt ^ shown_by_waiter,
            "round {round}: prompt {shown_by_prompt}, waiter {shown_by_waiter} ({code:?} {err})"
        );
    }
    w.close();
}

#[test]
fn a_prompt_racing_a_wake_up_shows_each_message_once_on_both_backends() {
    race(&Machine::new("BOX"), 3);
    let s = Server::start(&[]);
    race(&Machine::remote("BOX", &s.url), 2);
}

#[test]
fn against_a_v1_server_without_wait_the_waiter_polls() {
    // A v1 server: answers at once, ignores wait and after_id; no sessions.
    let delivered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = delivered.clone();
    let fake = Fake::start(move |req| {
        let line = req.lines().next().unwrap_or("");
        if line.contains("/sessions") {
            http_answer(404, r#"{"detail":"Not Found"}"#)
        } else if line.starts_with("GET /api/coord/messages")
            && flag.load(std::sync::atomic::Ordering::SeqCst)
        {
            http_answer(
                200,
                r#"[{"id":9,"from_session":"X/y","to_session":"BOX/claude-main","subject":null,"body":"polled in","created_by_user":"x","created_by_machine":"X","created_at":"2026-11-25T08:00:00","read":false,"read_at":null}]"#,
            )
        } else {
            http_answer(200, "[]")
        }
    });
    let m = Machine::remote("BOX", &fake.url);
    let w = Window::open();
    w.start(&m, &project(&m), "startup", "v");
    let waiting = waiter(&m, &w, "1");
    std::thread::sleep(Duration::from_millis(500));
    delivered.store(true, std::sync::atomic::Ordering::SeqCst);
    let (code, err) = ends(waiting, Duration::from_secs(30));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("| polled in"), "{err}");
    assert_eq!(prompt(&m, &w, "v"), "", "shown once");
    // What it showed was offered to the server once (v1.2), and, not
    // understood there, dropped: nothing is retried forever.
    let offered = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST /api/coord/messages/shown"))
        .count();
    assert!(offered >= 1, "the wake-up's shown report");
    let registry = std::fs::read_to_string(m.claude_dir().join("coord-windows.json")).unwrap();
    assert!(!registry.contains("\"unreported\""), "{registry}");
    w.close();
}

#[test]
fn a_long_poll_is_woken_by_the_write_that_concerns_it() {
    use coord_hook::backend::Coord;
    use coord_hook::client::HttpCoord;
    use coord_hook::model::*;
    let s = Server::start(&[]);
    // Many waiters on other sessions, one on ours.
    let mut others = Vec::new();
    for i in 0..50 {
        let url = s.url.clone();
        others.push(std::thread::spawn(move || {
            let c = HttpCoord::new(&url, None, Duration::from_secs(30)).with_wait(3);
            c.messages(&MessageQuery {
                session: format!("OTHER/s{i}"),
                unread_only: true,
                ..Default::default()
            })
        }));
    }
    let url = s.url.clone();
    let started = Instant::now();
    let ours = std::thread::spawn(move || {
        let c = HttpCoord::new(&url, None, Duration::from_secs(30)).with_wait(20);
        c.messages(&MessageQuery {
            session: "BOX/claude-main".into(),
            unread_only: true,
            ..Default::default()
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    let c = HttpCoord::new(&s.url, None, Duration::from_secs(5));
    c.write(&message("BOX/claude-main", "long-polled"), None)
        .unwrap();
    let got = ours.join().unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "long-polled");
    // Woken by the write, not by its 20 s running out.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // The others were not answered with it; they end empty at their time.
    for o in others {
        assert!(o.join().unwrap().unwrap().is_empty());
    }
}

#[test]
fn install_wires_every_entry_and_the_skill_and_uninstall_removes_them() {
    let m = Machine::new("BOX");
    let settings = m.claude_dir().join("settings.json");
    let existing = json!({
        "model": "opus",
        "hooks": {
            "SessionStart": [{"matcher": "startup", "hooks": [{"type": "command", "command": "echo mine"}]}],
            "Stop": [{"hooks": [{"type": "command", "command": "notify-send coord-hook-done"}]}],
            "UserPromptSubmit": [{"hooks": [{"type": "command", "command": "/opt/x/coord-hook-audit --log"}]}]
        }
    });
    std::fs::write(&settings, existing.to_string()).unwrap();
    let out = m.bin("coord-hook", None, &["install"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    let hooks = &v["hooks"];
    // Other hooks that merely mention coord-hook are not taken for ours.
    assert_eq!(hooks["Stop"][0], existing["hooks"]["Stop"][0]);
    assert_eq!(
        hooks["UserPromptSubmit"][0],
        existing["hooks"]["UserPromptSubmit"][0]
    );
    let ours_start = &hooks["SessionStart"][1];
    assert_eq!(ours_start["matcher"], "startup|resume|clear|compact");
    assert!(
        ours_start["hooks"][0]["command"]
            .as_str()
            .unwrap()
            .ends_with("--format json")
    );
    assert_eq!(ours_start["hooks"][1]["asyncRewake"], true);
    assert_eq!(ours_start["hooks"][1]["timeout"], 86400);
    assert!(
        hooks["UserPromptSubmit"][1]["hooks"][0]["command"]
            .as_str()
            .unwrap()
            .ends_with("--format json")
    );
    assert!(
        hooks["Stop"][1]["hooks"][0]["command"]
            .as_str()
            .unwrap()
            .ends_with(" wait")
    );
    let skill = m.claude_dir().join("skills/coord/SKILL.md");
    let text = std::fs::read_to_string(&skill).unwrap();
    assert!(
        text.starts_with("---\nname: coord\ndescription: "),
        "{text}"
    );

    // A stale matcher and timeout on our entries are repaired.
    let mut stale = v.clone();
    stale["hooks"]["SessionStart"][1]["matcher"] = json!("startup");
    stale["hooks"]["Stop"][1]["hooks"][0]["timeout"] = json!(600);
    std::fs::write(&settings, stale.to_string()).unwrap();
    m.bin("coord-hook", None, &["install"]).assert().success();
    let repaired: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(repaired["hooks"], v["hooks"]);
    // Twice changes nothing.
    let out = m.bin("coord-hook", None, &["install"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("already installed"));
    // Without the waiter.
    m.bin("coord-hook", None, &["install", "--no-wait"])
        .assert()
        .success();
    let no_wait = std::fs::read_to_string(&settings).unwrap();
    assert!(!no_wait.contains("asyncRewake"), "{no_wait}");
    // Uninstall removes all of ours and nothing else.
    m.bin("coord-hook", None, &["uninstall"]).assert().success();
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(after, existing);
    assert!(!skill.exists());
}

/// The prompt hook of `w` in project folder `dir`.
fn prompt_in(m: &Machine, w: &Window, dir: &std::path::Path) -> String {
    let mut c = m.std_bin("coord-hook", None, &["--format", "json"]);
    c.env("CLAUDE_PID", w.pid());
    let input = json!({"session_id": "c", "cwd": dir,
                       "hook_event_name": "UserPromptSubmit", "prompt": "go on"});
    let out = run_with_input(&mut c, input.to_string().as_bytes());
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).unwrap()
}

fn dir(m: &Machine, name: &str) -> std::path::PathBuf {
    let p = m.root().join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[test]
fn a_stuck_registry_lock_does_not_hold_the_hook_and_hands_out_no_mail() {
    let m = Machine::new("BOX");
    m.session(
        "PEER/p",
        &["msg", "send", "BOX", "for the main window", "--force"],
    )
    .assert()
    .success();
    let w = Window::open();
    // Another process holds the registry's lock (a hook stopped mid-write).
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(m.claude_dir().join("coord-windows.json.lock"))
        .unwrap();
    lock.lock().unwrap();
    let mut c = m.std_bin(
        "coord-hook",
        None,
        &["--format", "json", "--timeout", "500"],
    );
    c.env("CLAUDE_PID", w.pid());
    let input = json!({"cwd": dir(&m, "proj"), "hook_event_name": "SessionStart"});
    let out = run_with_input(&mut c, input.to_string().as_bytes());
    // It answered while the lock was still held, said why the messages are
    // missing, and showed none of them (its name is not settled).
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ctx = crate::common::context(&v);
    assert!(ctx.contains("could not be settled"), "{ctx}");
    assert!(!ctx.contains("for the main window"), "{ctx}");
    assert_eq!(prompt_in(&m, &w, &dir(&m, "proj")), "");
    drop(lock);
    // Free again: the window is named and sees its mail.
    w.start(&m, &dir(&m, "proj"), "startup", "c");
    let ctx = crate::common::context(&w.start(&m, &dir(&m, "proj"), "clear", "c"));
    assert!(ctx.contains("for the main window"), "{ctx}");
    w.close();
}

#[test]
fn a_torn_registry_does_not_hand_one_windows_mail_to_another() {
    let m = Machine::new("BOX");
    let (a, b) = (Window::open(), Window::open());
    a.start(&m, &dir(&m, "projA"), "startup", "a");
    b.start(&m, &dir(&m, "api"), "startup", "b");
    assert_eq!(
        (a.exported().as_str(), b.exported().as_str()),
        ("BOX/claude-main", "BOX/api")
    );
    // Torn by a crash: only the first 40 bytes survive.
    let reg = m.claude_dir().join("coord-windows.json");
    let bytes = std::fs::read(&reg).unwrap();
    std::fs::write(&reg, &bytes[..40]).unwrap();
    m.session(
        "PEER/p",
        &[
            "msg",
            "send",
            "BOX/claude-main",
            "for the main window",
            "--force",
        ],
    )
    .assert()
    .success();
    let in_b = prompt_in(&m, &b, &dir(&m, "api"));
    let in_a = prompt_in(&m, &a, &dir(&m, "projA"));
    assert!(!in_b.contains("for the main window"), "{in_b}");
    assert!(in_a.contains("for the main window"), "{in_a}");
    // The damaged file was set aside, not thrown away.
    assert!(m.claude_dir().join("coord-windows.json.damaged").exists());
    a.close();
    b.close();
}

#[test]
fn a_repository_cannot_take_a_live_windows_name() {
    let m = Machine::new("BOX");
    let repo = dir(&m, "repo");
    std::fs::create_dir_all(repo.join(".claude")).unwrap();
    std::fs::write(
        repo.join(".claude/identity.json"),
        r#"{"session": "claude-main"}"#,
    )
    .unwrap();
    let (a, b) = (Window::open(), Window::open());
    a.start(&m, &dir(&m, "a"), "startup", "a");
    let v = b.start(&m, &repo, "startup", "b");
    assert_eq!(a.exported(), "BOX/claude-main");
    assert_eq!(b.exported(), "BOX/repo");
    let ctx = crate::common::context(&v);
    assert!(
        ctx.contains("asks for session name \"claude-main\""),
        "{ctx}"
    );
    m.session(
        "PEER/p",
        &[
            "msg",
            "send",
            "BOX",
            "private to the main window",
            "--force",
        ],
    )
    .assert()
    .success();
    assert!(!prompt_in(&m, &b, &repo).contains("private to the main"));
    assert!(prompt_in(&m, &a, &dir(&m, "a")).contains("private to the main"));
    // Once the main window is gone, the repository may have the name.
    a.close();
    let c = Window::open();
    c.start(&m, &repo, "startup", "c");
    assert_eq!(c.exported(), "BOX/claude-main");
    b.close();
    c.close();
}

#[test]
fn a_burst_between_prompts_is_counted_whole_and_shown_in_turn() {
    let m = Machine::new("BOX");
    let w = Window::open();
    let p = dir(&m, "proj");
    w.start(&m, &p, "startup", "c");
    {
        let store = coord_hook::store::LocalStore::open(&m.db_path()).unwrap();
        use coord_hook::backend::Coord;
        for i in 1..=150 {
            store
                .write(&message("BOX/claude-main", &format!("burst {i}")), None)
                .unwrap();
        }
    }
    let first = crate::common::context(&serde_json::from_str(&prompt_in(&m, &w, &p)).unwrap());
    assert!(
        first.contains("NEW COORD MESSAGES: 150 for"),
        "{}",
        &first[..200]
    );
    let framed = first.matches("--- message #").count();
    assert!(framed > 0 && framed < 150);
    let summary = first
        .lines()
        .find(|l| l.contains("more new messages not shown here"))
        .unwrap();
    assert!(
        summary.starts_with(&format!("[{} more", 150 - framed)),
        "{summary}"
    );
    // What was only counted is still new at the next prompt.
    let second = crate::common::context(&serde_json::from_str(&prompt_in(&m, &w, &p)).unwrap());
    assert!(second.contains("--- message #"), "{second}");
    let again: Vec<&str> = second
        .lines()
        .filter(|l| l.starts_with("--- message #"))
        .collect();
    for l in &again {
        assert!(!first.contains(*l), "shown twice: {l}");
    }
    w.close();
}

#[test]
fn a_waiter_started_before_the_block_waits_for_it_and_repeats_nothing() {
    let m = Machine::new("BOX");
    m.arrive(Some("peer"));
    send(&m, "before the session");
    let w = Window::open();
    // Claude Code starts both at once, each with its input; here the
    // waiter is first.
    let mut waiting = m
        .std_bin("coord-hook", None, &["wait"])
        .env("CLAUDE_PID", w.pid())
        .env("CLAUDE_CODE_SESSION_ATTENDED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = waiting.stdin.take().unwrap();
        let input =
            json!({"session_id": "c1", "hook_event_name": "SessionStart", "source": "startup"});
        stdin.write_all(input.to_string().as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let ctx = crate::common::context(&w.start(&m, &project(&m), "startup", "c1"));
    assert!(ctx.contains("before the session"), "{ctx}");
    send(&m, "while idle");
    let (code, err) = ends(waiting, Duration::from_secs(30));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("| while idle"), "{err}");
    assert!(!err.contains("before the session"), "shown twice: {err}");
    w.close();
}

#[test]
fn a_conversation_resumed_in_a_new_process_keeps_its_address_and_what_it_saw() {
    let m = Machine::new("BOX");
    m.arrive(Some("peer"));
    let web = dir(&m, "web");
    let api = dir(&m, "api");
    let (first, second) = (Window::open(), Window::open());
    first.start(&m, &web, "startup", "conv-web");
    second.start(&m, &api, "startup", "conv-api");
    assert_eq!(second.exported(), "BOX/api");
    m.json(Some("peer"), &["msg", "send", "BOX/api", "seen by api"]);
    let ctx = crate::common::context(&second.start(&m, &api, "clear", "conv-api"));
    assert!(ctx.contains("seen by api"), "{ctx}");
    // `claude --resume conv-api` in a new process, after the old one ended;
    // a fresh window of another project starts meanwhile.
    second.close();
    let other = Window::open();
    other.start(&m, &dir(&m, "zzz"), "startup", "conv-other");
    m.json(Some("peer"), &["msg", "send", "BOX/api", "while closed"]);
    let resumed = Window::open();
    let ctx = crate::common::context(&resumed.start(&m, &api, "resume", "conv-api"));
    assert_eq!(resumed.exported(), "BOX/api");
    assert!(ctx.contains("while closed"), "{ctx}");
    // What the conversation was shown is still in its history.
    assert!(!ctx.contains("| seen by api"), "{ctx}");
    assert!(ctx.contains("shown earlier in this conversation"), "{ctx}");
    // A new conversation in the same project is not the resumed one.
    let fresh = Window::open();
    fresh.start(&m, &api, "startup", "conv-new");
    assert_ne!(fresh.exported(), "BOX/api");
    for w in [first, other, resumed, fresh] {
        w.close();
    }
}

#[test]
fn without_claude_pid_the_prompt_hook_goes_by_the_conversation() {
    let m = Machine::new("BOX");
    m.arrive(Some("peer"));
    let p = project(&m);
    let hook = |event: &str| {
        let mut c = m.std_bin("coord-hook", None, &["--format", "json"]);
        c.env_remove("CLAUDE_PID");
        let input = json!({"session_id": "conv-np", "cwd": p, "hook_event_name": event,
                           "source": "startup", "prompt": "go on"});
        let out = run_with_input(&mut c, input.to_string().as_bytes());
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout).unwrap()
    };
    hook("SessionStart");
    send(&m, "news without a pid");
    let first = hook("UserPromptSubmit");
    assert!(first.contains("news without a pid"), "{first}");
    assert_eq!(hook("UserPromptSubmit"), "");
}

#[test]
fn a_conversation_first_seen_without_claude_pid_keeps_its_name_once_it_has_one() {
    let m = Machine::new("BOX");
    let p = project(&m);
    // A hook without CLAUDE_PID names the window by its conversation.
    let mut c = m.std_bin("coord-hook", None, &["--format", "json"]);
    c.env_remove("CLAUDE_PID");
    let input = json!({"session_id": "conv-1", "cwd": p, "hook_event_name": "SessionStart"});
    run_with_input(&mut c, input.to_string().as_bytes());
    // The same conversation, now with its process: the same window.
    let w = Window::open();
    w.start(&m, &p, "startup", "conv-1");
    assert_eq!(w.exported(), "BOX/claude-main");
    let reg: Value = serde_json::from_str(
        &std::fs::read_to_string(m.claude_dir().join("coord-windows.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(reg["windows"].as_array().unwrap().len(), 1, "{reg}");
    w.close();
}

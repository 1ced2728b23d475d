//! The sender knows (issue 25): shown / read / replied per recipient,
//! recorded from what the hooks really put into a window's context (never
//! by `--preview`), closed windows known as closed, and a reply that quotes
//! what it answers — on the embedded store, through `coord serve` (and
//! again on PostgreSQL when the suite runs with COORD_TEST_BACKEND), and
//! against a server before v1.2.

use std::time::{Duration, Instant};

use crate::common::{Fake, Machine, Server, Window, http_answer, stderr, stdout};
use crate::running::{ends, project, prompt, waiter};
use serde_json::{Value, json};

/// `coord msg status ID --json` as `m` (session `s`) sees it.
fn status(m: &Machine, s: Option<&str>, id: i64) -> Value {
    m.json(s, &["msg", "status", &id.to_string()])
}

/// The one recipient row of `d` for `session`.
fn row<'a>(d: &'a Value, session: &str) -> &'a Value {
    d["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["session"] == session)
        .unwrap_or_else(|| panic!("no row for {session}: {d}"))
}

/// Waits (bounded) until `f` holds; what it last saw.
fn eventually(within: Duration, mut f: impl FnMut() -> Option<Value>) -> Value {
    let until = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The state `coord sessions --json` gives `session`.
fn state(m: &Machine, session: &str) -> String {
    let all = m.json(None, &["sessions", "--all"]);
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == session)
        .map(|s| s["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// The sender: a machine, and the session it speaks as there.
type Sender<'a> = (&'a Machine, Option<&'a str>);

fn shown_read_replied(sender: Sender, b: &Machine) {
    let (a, me) = sender;
    let coord = |args: &[&str]| match me {
        Some(s) => a.session(s, args).output().unwrap(),
        None => a.coord(args).output().unwrap(),
    };
    let w = Window::open();
    w.start(b, &project(b), "startup", "c1");
    let id = a.json(me, &["msg", "send", "BOX", "deploy the api?\nsecond line"])["id"]
        .as_i64()
        .unwrap();
    let d = status(a, me, id);
    assert_eq!(d["id"], id);
    assert_eq!(d["recipients"].as_array().unwrap().len(), 1, "{d}");
    let r = row(&d, "BOX/claude-main");
    assert!(r["shown_at"].is_null() && r["read_at"].is_null() && r["reply_id"].is_null());
    // A preview shows it to a person, not to the model: nothing recorded.
    let out = b.bin("coord-hook", None, &["--preview"]).output().unwrap();
    assert!(stdout(&out).contains("deploy the api?"), "{}", stdout(&out));
    assert!(row(&status(a, me, id), "BOX/claude-main")["shown_at"].is_null());
    // The prompt hook puts it into the context: shown (no waiter here, so
    // the hook reports it itself).
    assert!(prompt(b, &w, "c1").contains("deploy the api?"));
    let d = status(a, me, id);
    assert!(row(&d, "BOX/claude-main")["shown_at"].is_string(), "{d}");
    assert!(row(&d, "BOX/claude-main")["read_at"].is_null(), "{d}");
    // Read, then replied.
    b.json(None, &["msg", "read", &id.to_string()]);
    let reply = b.json(None, &["msg", "reply", &id.to_string(), "done, 1.4 is out"])["id"]
        .as_i64()
        .unwrap();
    let d = status(a, me, id);
    let r = row(&d, "BOX/claude-main");
    assert!(r["read_at"].is_string(), "{d}");
    assert_eq!(r["reply_id"], reply, "{d}");
    // People see it in a table, and compactly in `msg sent`.
    let out = coord(&["msg", "status", &id.to_string()]);
    let text = stdout(&out);
    assert!(
        text.contains("shown 1/1 · read 1/1 · replied 1/1"),
        "{text}"
    );
    assert!(
        text.contains("BOX/claude-main") && text.contains(&format!("#{reply}")),
        "{text}"
    );
    let out = coord(&["msg", "sent"]);
    assert!(
        stdout(&out).contains("shown 1/1 · read 1/1"),
        "{}",
        stdout(&out)
    );
    // The asker's model gets the reply with what it answers.
    let (_, ctx) = a.hook_context(me);
    assert!(
        ctx.contains(&format!("answers #{id}: \"deploy the api?\"")),
        "{ctx}"
    );
    assert!(!ctx.contains("second line"), "{ctx}");
    w.close();
}

#[test]
fn shown_read_and_replied_per_recipient_on_the_embedded_store() {
    // "Another machine" on one store: a session that speaks as ALPHA.
    let m = Machine::new("BOX");
    shown_read_replied((&m, Some("ALPHA/claude-main")), &m);
}

#[test]
fn shown_read_and_replied_per_recipient_through_coord_serve() {
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BOX", &s.url);
    shown_read_replied((&a, None), &b);
}

#[test]
fn a_closed_window_is_closed_and_live_again_when_resumed() {
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BOX", &s.url);
    a.arrive(None);
    let w = Window::open();
    w.start(&b, &project(&b), "startup", "conv-1");
    assert_eq!(state(&a, "BOX/claude-main"), "live");
    // Its waiter sees the window end and tells the fleet.
    let wait = waiter(&b, &w, "1");
    std::thread::sleep(Duration::from_millis(300));
    w.close();
    let (code, err) = ends(wait, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    eventually(Duration::from_secs(10), || {
        (state(&a, "BOX/claude-main") == "closed").then_some(Value::Null)
    });
    // A send to it says so and still sends; --live refuses (exit 2).
    let out = a
        .coord(&["msg", "send", "BOX", "are you there?"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let note = stderr(&out);
    assert!(note.contains("BOX/claude-main closed"), "{note}");
    assert!(note.contains("when a window of that name starts"), "{note}");
    let out = a
        .coord(&["msg", "send", "BOX", "only if live", "--live"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let inbox = b.json(None, &["msg", "inbox"]);
    assert_eq!(inbox.as_array().unwrap().len(), 1, "{inbox}");
    // The same conversation resumed in a new process: live again, under
    // its old address, and a broadcast counts it.
    let w2 = Window::open();
    w2.start(&b, &project(&b), "resume", "conv-1");
    assert_eq!(state(&a, "BOX/claude-main"), "live");
    let out = a
        .coord(&["msg", "send", "BOX", "welcome back", "--live"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    w2.close();
}

#[test]
fn a_broadcast_counts_the_sessions_live_when_it_was_sent() {
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BOX", &s.url);
    a.arrive(None);
    for name in ["one", "two", "three", "gone"] {
        b.arrive(Some(name));
    }
    // BOX/gone's window ended (Claude Code's SessionEnd); a /clear does not
    // end one.
    let end = |session: &str, reason: &str| {
        let input = json!({"session_id": "x", "hook_event_name": "SessionEnd", "reason": reason});
        let out = b
            .bin("coord-hook", Some(session), &["--format", "json"])
            .write_stdin(input.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "{}",
            stderr(&out)
        );
    };
    end("one", "clear");
    end("gone", "prompt_input_exit");
    assert_eq!(state(&a, "BOX/one"), "live");
    assert_eq!(state(&a, "BOX/gone"), "closed");
    let id = a.json(None, &["msg", "send", "ALL", "freeze merges"])["id"]
        .as_i64()
        .unwrap();
    let d = status(&a, None, id);
    let got: Vec<&str> = d["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["session"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["BOX/one", "BOX/three", "BOX/two"], "{d}");
    // One of them reads it: read 1/3.
    b.json(Some("two"), &["msg", "read", &id.to_string()]);
    let out = a
        .coord(&["msg", "status", &id.to_string()])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("shown 1/3 · read 1/3"),
        "{}",
        stdout(&out)
    );
    assert!(row(&status(&a, None, id), "BOX/two")["read_at"].is_string());
}

#[test]
fn a_message_shown_twice_keeps_its_first_shown_at() {
    let m = Machine::new("BOX");
    m.arrive(Some("peer"));
    let w = Window::open();
    w.start(&m, &project(&m), "startup", "c1");
    let id = m.json(Some("peer"), &["msg", "send", "BOX", "read me twice"])["id"]
        .as_i64()
        .unwrap();
    // The waiter wakes the window with it, and reports it shown.
    let (code, err) = ends(waiter(&m, &w, "1"), Duration::from_secs(30));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("read me twice"), "{err}");
    let first = row(&status(&m, Some("peer"), id), "BOX/claude-main")["shown_at"].clone();
    assert!(first.is_string(), "{first}");
    // /clear: the block shows it again, and the next waiter reports that
    // (the registry keeps nothing unreported); the first time stays.
    let wait = waiter(&m, &w, "1");
    std::thread::sleep(Duration::from_millis(1100));
    let ctx = w.start(&m, &project(&m), "clear", "c2");
    assert!(ctx.to_string().contains("read me twice"));
    let registry = m.claude_dir().join("coord-windows.json");
    eventually(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&registry).unwrap_or_default();
        (text.contains("\"shown\"") && !text.contains("\"unreported\"")).then_some(Value::Null)
    });
    let again = row(&status(&m, Some("peer"), id), "BOX/claude-main")["shown_at"].clone();
    assert_eq!(again, first);
    w.close();
    let _ = ends(wait, Duration::from_secs(30));
}

#[test]
fn a_server_before_v1_2_gets_one_clear_note() {
    // A server that does not know the endpoint.
    let fake = Fake::start(|_| http_answer(404, r#"{"detail":"Not Found"}"#));
    let m = Machine::remote("BOX", &fake.url);
    let out = m.coord(&["msg", "status", "7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot tell what was delivered"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_window_killed_without_a_waiter_is_closed_by_the_next_session_start() {
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BOX", &s.url);
    let dir = |name: &str| {
        let d = b.root().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let main = Window::open();
    main.start(&b, &dir("main"), "startup", "c-main");
    let api = Window::open();
    api.start(&b, &dir("api"), "startup", "c-api");
    assert_eq!(state(&a, "BOX/api"), "live");
    // Killed: no SessionEnd, no waiter to notice.
    api.close();
    assert_eq!(state(&a, "BOX/api"), "live");
    // The machine's next session start does.
    let web = Window::open();
    web.start(&b, &dir("web"), "startup", "c-web");
    assert_eq!(state(&a, "BOX/api"), "closed");
    assert_eq!(state(&a, "BOX/claude-main"), "live");
    main.close();
    web.close();
}

#[test]
fn without_a_waiter_what_the_block_showed_is_reported_at_the_next_prompt() {
    // `claude -p` or `install --no-wait`: nobody else reports it.
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BOX", &s.url);
    let w = Window::open();
    w.start(&b, &project(&b), "startup", "c1");
    let id = a.json(None, &["msg", "send", "BOX", "in the block"])["id"]
        .as_i64()
        .unwrap();
    let ctx = w.start(&b, &project(&b), "clear", "c2");
    assert!(ctx.to_string().contains("in the block"));
    assert!(row(&status(&a, None, id), "BOX/claude-main")["shown_at"].is_null());
    // A prompt with nothing new prints nothing, and reports the block's.
    assert_eq!(prompt(&b, &w, "c2"), "");
    assert!(row(&status(&a, None, id), "BOX/claude-main")["shown_at"].is_string());
    w.close();
}

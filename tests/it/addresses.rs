//! Every session has its own address (issue 13): a name per Claude Code
//! window, presence and `coord sessions`, no silent misdelivery, own
//! messages, replies and `read_by`, locks between windows, and a v1 server
//! that knows none of it. Both backends, real binaries.

use crate::common::{Fake, Machine, Server, Window, http_answer, stderr, stdout};
use serde_json::{Value, json};

fn project(m: &Machine, name: &str) -> std::path::PathBuf {
    let p = m.root().join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn two_windows(m: &Machine) {
    let web = project(m, "web app");
    let api = project(m, "api");
    let first = Window::open();
    let second = Window::open();
    first.start(m, &web, "startup", "c-1");
    assert_eq!(first.exported(), "BOX/claude-main");
    let v = second.start(m, &api, "startup", "c-2");
    assert_eq!(second.exported(), "BOX/api");
    assert!(
        v["hookSpecificOutput"]["additionalContext"]
            .as_str()
            .unwrap()
            .contains("BOX/api"),
        "{v}"
    );
    // Stable across resume, compact and /clear (a new Claude session id).
    first.start(m, &web, "resume", "c-1");
    first.start(m, &web, "compact", "c-1");
    first.start(m, &web, "clear", "c-1b");
    assert_eq!(first.exported(), "BOX/claude-main");
    second.start(m, &api, "clear", "c-2b");
    assert_eq!(second.exported(), "BOX/api");

    // The fleet knows both.
    let sessions = m.json(None, &["sessions"]);
    let ids: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"BOX/claude-main") && ids.contains(&"BOX/api"),
        "{sessions}"
    );
    let api_row = session_row(m, "BOX/api").unwrap();
    assert_eq!(api_row["project"], "api");
    assert_eq!(api_row["active"], true);
    let table = m.coord(&["sessions"]).output().unwrap();
    assert!(stdout(&table).contains("BOX/api"), "{}", stdout(&table));

    // Two windows, two inboxes, and a lock one holds is a conflict for the
    // other (exit 3), not a renewal.
    m.session("api", &["lock", "claim", "web", "db-migrate"])
        .assert()
        .success();
    let out = m
        .coord(&["lock", "claim", "web", "db-migrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // A name is free again once its window's process is gone: a new window
    // gets claude-main after the first one closed.
    first.close();
    let third = Window::open();
    third.start(m, &web, "startup", "c-3");
    assert_eq!(third.exported(), "BOX/claude-main");
    // A third concurrent window of the same project gets a unique name.
    let fourth = Window::open();
    fourth.start(m, &api, "startup", "c-4");
    assert_eq!(fourth.exported(), "BOX/api-2");
    second.close();
    third.close();
    fourth.close();
}

#[test]
fn two_windows_get_two_names_on_the_embedded_store() {
    two_windows(&Machine::new("BOX"));
}

#[test]
fn two_windows_get_two_names_through_coord_serve() {
    let s = Server::start(&[]);
    two_windows(&Machine::remote("BOX", &s.url));
}

#[test]
fn an_explicit_name_wins_and_is_quoted_for_the_shell() {
    let m = Machine::with_identity(
        "BOX",
        &json!({"user": "h", "machine": "box", "session": "its.mine_2"}),
    );
    let w = Window::open();
    w.start(&m, &project(&m, "p"), "startup", "c");
    let text = std::fs::read_to_string(&w.env_file).unwrap();
    assert_eq!(text, "export COORD_SESSION='BOX/its.mine_2'\n");
    w.close();
    // A name outside the address grammar is refused, naming the field,
    // and never reaches the shell.
    std::fs::write(
        m.identity_path(),
        json!({"user": "h", "machine": "box", "session": "it's-mine"}).to_string(),
    )
    .unwrap();
    let w = Window::open();
    let v = w.start(&m, &project(&m, "q"), "startup", "c");
    let ctx = crate::common::context(&v);
    assert!(ctx.contains("\"session\""), "{ctx}");
    assert!(
        std::fs::read_to_string(&w.env_file)
            .unwrap_or_default()
            .is_empty()
    );
    w.close();
}

fn addressing(m: &Machine, other: &Machine) {
    other.arrive(None);
    // Wrong case, a domain, a bare machine: all reach BETA/claude-main.
    for to in ["beta", "BETA", "beta.example.internal", "Beta/claude-main"] {
        let v = m.json(None, &["msg", "send", to, &format!("to {to}")]);
        assert_eq!(v["to_session"], "BETA/claude-main", "{to}");
    }
    // Nobody has used GAMMA: nothing is sent, exit 2, and the closest known
    // addresses and --force are named.
    let out = m
        .coord(&["msg", "send", "GAMMA", "lost?"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("machine GAMMA has not joined the fleet yet") && err.contains("--force"),
        "{err}"
    );
    // The sender itself is never offered as a known address.
    assert!(!err.contains(&format!("{}/claude-main,", m.name)), "{err}");
    assert!(err.contains("BETA/claude-main"), "{err}");
    let forced = m.json(None, &["msg", "send", "GAMMA", "on purpose", "--force"]);
    assert_eq!(forced["to_session"], "GAMMA/claude-main");
    // Broadcasts always go, and are never unread for their sender.
    m.json(None, &["msg", "send", "ALL", "everyone"]);
    let mine = m.json(None, &["msg", "inbox"]);
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|x| x["body"] != "everyone"),
        "{mine}"
    );
    let theirs = other.json(None, &["msg", "inbox", "--limit", "1000"]);
    let bodies: Vec<&str> = theirs
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["body"].as_str().unwrap())
        .collect();
    assert!(
        bodies.contains(&"everyone") && bodies.contains(&"to beta"),
        "{bodies:?}"
    );
    // The hook of the sender does not show its own broadcast.
    let out = m
        .bin("coord-hook", None, &[])
        .write_stdin("{}")
        .output()
        .unwrap();
    assert!(!stdout(&out).contains("everyone"), "{}", stdout(&out));

    // A conversation: reply, and who has read what.
    let first = theirs
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["body"] == "to beta")
        .unwrap()
        .clone();
    let id = first["id"].to_string();
    let r = other.json(None, &["msg", "reply", &id, "got it"]);
    assert_eq!(r["to_session"], first["from_session"]);
    assert_eq!(r["in_reply_to"], first["id"]);
    assert_eq!(r["subject"], "re: to beta");
    other.json(None, &["msg", "read", &id]);
    let inbox = m.coord(&["msg", "inbox"]).output().unwrap();
    assert!(
        stdout(&inbox).contains(&format!("re #{id}")),
        "{}",
        stdout(&inbox)
    );
    let block = m
        .bin("coord-hook", None, &[])
        .write_stdin("{}")
        .output()
        .unwrap();
    assert!(
        stdout(&block).contains(&format!("· re #{id}")),
        "{}",
        stdout(&block)
    );
    let sent = m.json(None, &["msg", "sent", "--limit", "50"]);
    let row = sent
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == first["id"])
        .unwrap();
    assert_eq!(row["read_by"], json!(["BETA/claude-main"]));
    let table = m.coord(&["msg", "sent"]).output().unwrap();
    assert!(stdout(&table).contains("READ BY"), "{}", stdout(&table));
}

#[test]
fn addresses_on_the_embedded_store() {
    let m = Machine::new("ALPHA");
    // One store, two machines' sessions (as on a shared host).
    let other = Machine::with_identity(
        "BETA",
        &json!({"user": "b", "machine": "beta", "coord_db": m.db_path()}),
    );
    addressing(&m, &other);
}

#[test]
fn addresses_through_coord_serve() {
    let s = Server::start(&[]);
    addressing(
        &Machine::remote("ALPHA", &s.url),
        &Machine::remote("beta", &s.url),
    );
}

/// Session `id`'s row in `coord sessions --all`, if the fleet knows it.
fn session_row(m: &Machine, id: &str) -> Option<Value> {
    let all = m.json(None, &["sessions", "--all"]);
    all.as_array()?
        .iter()
        .find(|x| x["session_id"] == id)
        .cloned()
}

#[test]
fn a_session_start_has_registered_the_session_when_the_hook_exits() {
    // The presence refresh runs beside the reads; the hook must not exit
    // before it lands, or the next `msg send` to the session is refused.
    let s = Server::start(&[]);
    let m = Machine::remote("BOX", &s.url);
    for i in 0..15 {
        let name = format!("w{i}");
        m.arrive(Some(&name));
        assert!(
            session_row(&m, &format!("BOX/{name}")).is_some(),
            "BOX/{name} missing after its hook ran"
        );
    }
}

#[test]
fn a_session_start_within_a_minute_of_the_last_writes_no_presence() {
    let s = Server::start(&[]);
    let m = Machine::remote("BOX", &s.url);
    let seen = |m: &Machine| {
        session_row(m, "BOX/claude-main").expect("BOX/claude-main is known")["last_seen"].clone()
    };
    m.arrive(None);
    let first = seen(&m);
    std::thread::sleep(std::time::Duration::from_millis(20));
    m.arrive(None);
    assert_eq!(seen(&m), first, "a second write within the minute");
    // The same machine moved to another server: that one is told at once.
    let other = Server::start(&[]);
    std::fs::write(
        m.identity_path(),
        json!({"user": "box", "machine": "BOX", "coord_api": other.url}).to_string(),
    )
    .unwrap();
    m.arrive(None);
    seen(&m);
    // The same session from another project within the minute: the fleet
    // is told the new project at once.
    let elsewhere = m.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out = m
        .bin("coord-hook", None, &[])
        .env_remove("CLAUDE_PROJECT_DIR")
        .write_stdin(json!({"cwd": elsewhere}).to_string())
        .output()
        .unwrap();
    assert!(out.status.success());
    let row = session_row(&m, "BOX/claude-main").unwrap();
    assert_eq!(row["project"], "elsewhere", "{row}");
}

#[test]
fn a_forced_release_tells_the_holder_and_release_takes_a_name() {
    let s = Server::start(&[]);
    let m = Machine::remote("BOX", &s.url);
    m.arrive(Some("api"));
    m.session("api", &["lock", "claim", "web", "deploy"])
        .assert()
        .success();
    // By name, not someone else's without --force.
    let out = m
        .coord(&["lock", "release", "web", "deploy"])
        .output()
        .unwrap();
    // Held by another session: exit 3, as for a claim.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = m
        .coord(&["lock", "release", "web", "deploy", "--force"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("BOX/api held it"), "{}", stdout(&out));
    let told = m.json(Some("api"), &["msg", "inbox"]);
    assert!(
        told[0]["body"]
            .as_str()
            .unwrap()
            .contains("BOX/claude-main force-released your lock web/deploy"),
        "{told}"
    );
    // Own lock by name.
    m.coord(&["lock", "claim", "web", "deploy"])
        .assert()
        .success();
    m.coord(&["lock", "release", "web", "deploy"])
        .assert()
        .success();
    assert_eq!(m.json(None, &["lock", "list"]), json!([]));
    let out = m
        .coord(&["lock", "release", "web", "deploy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn identity_typos_are_named_with_what_was_meant() {
    let m = Machine::with_identity(
        "BOX",
        &json!({"user": "h", "machin": "OTHER", "coord_tokn": "x"}),
    );
    // A misspelt known key is a usage error: nothing runs as the wrong
    // machine or against a private store.
    let out = m.coord(&["whoami"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("\"coord_tokn\"") || err.contains("\"machin\""),
        "{err}"
    );
    assert!(err.contains("did you mean"), "{err}");
    let out = m
        .bin("coord-hook", None, &[])
        .write_stdin("{}")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("did you mean"), "{}", stdout(&out));
    // coord_apl: never a silent private store.
    std::fs::write(
        m.identity_path(),
        json!({"user": "h", "machine": "BOX", "coord_apl": "http://127.0.0.1:9"}).to_string(),
    )
    .unwrap();
    let out = m.coord(&["msg", "send", "ALL", "hi"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean \"coord_api\""),
        "{}",
        stderr(&out)
    );
    assert!(!m.db_path().exists());
    // A key far from every known one is only named.
    std::fs::write(
        m.identity_path(),
        json!({"user": "h", "machine": "BOX", "favourite_colour": "green"}).to_string(),
    )
    .unwrap();
    let out = m.coord(&["whoami"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("\"favourite_colour\" is ignored"),
        "{}",
        stderr(&out)
    );
}

/// A v1 server: no /sessions (404), ignores in_reply_to, order, from_session.
fn v1() -> Fake {
    Fake::start(|req| {
        let line = req.lines().next().unwrap_or("");
        if line.contains("/sessions") {
            http_answer(404, r#"{"detail":"Not Found"}"#)
        } else if line.starts_with("POST /api/coord/messages ") {
            http_answer(
                201,
                r#"{"id":7,"from_session":"BOX/claude-main","to_session":"NEWBOX/claude-main","subject":null,"body":"hi","created_by_user":"h","created_by_machine":"BOX","created_at":"2026-11-25T08:00:00","read":false,"read_at":null}"#,
            )
        } else if line.starts_with("GET /api/coord/messages") {
            http_answer(
                200,
                r#"[{"id":3,"from_session":"BOX/claude-main","to_session":"ALL_SESSIONS","subject":null,"body":"my own broadcast","created_by_user":"h","created_by_machine":"BOX","created_at":"2026-11-25T08:00:00","read":false,"read_at":null},
                    {"id":4,"from_session":"X/y","to_session":"BOX/claude-main","subject":null,"body":"for me","created_by_user":"x","created_by_machine":"X","created_at":"2026-11-25T08:01:00","read":false,"read_at":null}]"#,
            )
        } else {
            http_answer(200, "[]")
        }
    })
}

#[test]
fn a_v1_server_still_sends_and_the_hook_still_works() {
    let fake = v1();
    let m = Machine::remote("BOX", &fake.url);
    // Sends unchecked, with one note.
    let out = m.coord(&["msg", "send", "NEWBOX", "hi"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("v1"), "{}", stderr(&out));
    // The hook works, presence's 404 is quiet, and its own broadcast is not
    // shown as unread.
    let out = m
        .bin("coord-hook", None, &[])
        .write_stdin("{}")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("| for me"), "{text}");
    assert!(!text.contains("my own broadcast"), "{text}");
    assert!(!text.contains("note:"), "{text}");
    // Commands that need v1.1 say so.
    let out = m.coord(&["sessions"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("v1"), "{}", stderr(&out));
    let out = m.coord(&["msg", "sent"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("v1"), "{}", stderr(&out));
}

#[test]
fn a_window_that_exited_is_not_active_on_its_own_machine() {
    let m = Machine::new("BOX");
    let (first, second) = (Window::open(), Window::open());
    first.start(&m, &project(&m, "web"), "startup", "c-1");
    second.start(&m, &project(&m, "api"), "startup", "c-2");
    let active = |id: &str| session_row(&m, id).unwrap()["active"].clone();
    assert_eq!(active("BOX/api"), true);
    second.close();
    // Seen a moment ago, but its window is gone: not active.
    assert_eq!(active("BOX/api"), false);
    assert_eq!(active("BOX/claude-main"), true);
    first.close();
}

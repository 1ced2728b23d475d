//! The coord CLI end to end on the embedded store: the real binary, a
//! temporary home, one SQLite file shared by several sessions.

use std::time::{Duration, Instant};

use crate::common::{Machine, stderr, stdout};
use coord_hook::model::{Component, Lock, Message, Status, Todo, Workflow};
use serde_json::Value;

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect()
}

#[test]
fn two_sessions_of_one_machine_message_each_other() {
    let m = Machine::new("HOWARD-HOME");
    m.arrive(Some("two"));
    let sent = m.json(
        None,
        &[
            "msg",
            "send",
            "HOWARD-HOME/two",
            "ping from main",
            "-s",
            "hi",
        ],
    );
    assert_eq!(sent["from_session"], "HOWARD-HOME/claude-main");
    assert_eq!(sent["to_session"], "HOWARD-HOME/two");
    assert_eq!(sent["created_by_user"], "howard");

    // The other session sees it; the sender's inbox does not.
    let inbox = m.json(Some("two"), &["msg", "inbox"]);
    assert_eq!(inbox[0]["body"], "ping from main");
    assert_eq!(inbox[0]["subject"], "hi");
    assert!(ids(&m.json(None, &["msg", "inbox"])).is_empty());

    // A bare machine name means its claude-main session.
    m.json(Some("two"), &["msg", "send", "HOWARD-HOME", "pong"]);
    let back = m.json(None, &["msg", "inbox"]);
    assert_eq!(back[0]["body"], "pong");
    assert_eq!(back[0]["from_session"], "HOWARD-HOME/two");

    let id = back[0]["id"].as_i64().unwrap().to_string();
    let marked = m.json(None, &["msg", "read", &id]);
    assert_eq!(marked[0]["read"], true);
    assert!(ids(&m.json(None, &["msg", "inbox"])).is_empty());
    assert_eq!(ids(&m.json(None, &["msg", "inbox", "--all"])).len(), 1);
}

#[test]
fn broadcast_read_state_is_per_session() {
    let m = Machine::new("BOX");
    for alias in ["ALL", "fleet", "Broadcast"] {
        let sent = m.json(None, &["msg", "send", alias, "everyone"]);
        assert_eq!(sent["to_session"], "ALL_SESSIONS");
    }
    let a = ids(&m.json(Some("a"), &["msg", "inbox"]));
    let b = ids(&m.json(Some("b"), &["msg", "inbox"]));
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);

    let first = a[0].to_string();
    m.json(Some("a"), &["msg", "read", &first]);
    assert_eq!(ids(&m.json(Some("a"), &["msg", "inbox"])).len(), 2);
    assert_eq!(ids(&m.json(Some("b"), &["msg", "inbox"])).len(), 3);
}

#[test]
fn reading_an_unknown_id_names_it_and_still_marks_the_others() {
    let m = Machine::new("BOX");
    let id = m.json(None, &["msg", "send", "BOX", "x"])["id"]
        .as_i64()
        .unwrap();
    let out = m
        .coord(&["msg", "read", "9999", &id.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("message 9999 not found"),
        "{}",
        stderr(&out)
    );
    assert!(ids(&m.json(None, &["msg", "inbox"])).is_empty());
}

#[test]
fn todo_lifecycle() {
    let m = Machine::new("BOX");
    let t = m.json(
        None,
        &[
            "todo",
            "add",
            "ship it",
            "--project",
            "web",
            "--source",
            "review",
        ],
    );
    assert_eq!(t["status"], "pending");
    assert_eq!(t["user"], Value::Null);
    assert_eq!(t["created_by_machine"], "BOX");
    let parent = t["id"].as_i64().unwrap().to_string();
    let child = m.json(
        None,
        &[
            "todo",
            "add",
            "write notes",
            "--user",
            "alice",
            "--parent",
            &parent,
            "--auto",
        ],
    );
    assert_eq!(child["parent_id"].as_i64().unwrap().to_string(), parent);
    assert_eq!(child["auto"], true);
    m.json(None, &["todo", "add", "for bob", "--user", "bob"]);

    // alice sees hers and the ones for everyone, not bob's.
    let alice = m.json(None, &["todo", "list", "--user", "alice"]);
    assert_eq!(alice.as_array().unwrap().len(), 2);
    assert_eq!(
        m.json(None, &["todo", "list", "--project", "web"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let done = m.json(None, &["todo", "done", &parent]);
    assert_eq!(done[0]["status"], "done");
    assert_eq!(done[0]["completed_by"], "BOX/claude-main");
    assert_eq!(m.json(None, &["todo", "list"]).as_array().unwrap().len(), 2);
    assert_eq!(
        m.json(None, &["todo", "list", "--status", "done"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        m.json(None, &["todo", "list", "--status", "all"])
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Completing again is idempotent and keeps the first completion.
    let again = m.json(Some("other"), &["todo", "done", &parent]);
    assert_eq!(again[0]["completed_by"], "BOX/claude-main");

    let bad = m
        .coord(&["todo", "add", "x", "--parent", "777"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("parent todo 777"));
}

#[test]
fn lock_conflict_exits_3_and_names_the_holder() {
    let m = Machine::new("BOX");
    let first = m.json(
        Some("a"),
        &["lock", "claim", "web", "deploy", "--note", "release"],
    );
    let renewed = m.json(Some("a"), &["lock", "claim", "web", "deploy", "--ttl", "5"]);
    assert_eq!(first["id"], renewed["id"]);
    assert!(renewed["expires_at"].as_str() > first["expires_at"].as_str());
    assert_eq!(renewed["note"], "release");

    let out = m
        .session("b", &["lock", "claim", "web", "deploy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("held by BOX/a"), "{err}");
    assert!(err.contains("until"), "{err}");

    // Release: not yours → refused; --force breaks it; then b can claim.
    let id = first["id"].as_i64().unwrap().to_string();
    let out = m.session("b", &["lock", "release", &id]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("--force"));
    m.json(Some("b"), &["lock", "release", &id, "--force"]);
    m.json(Some("b"), &["lock", "claim", "web", "deploy"]);
    let mine = m.json(Some("b"), &["lock", "list", "--mine"]);
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert!(
        m.json(Some("a"), &["lock", "list", "--mine"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A TTL out of range is a usage error naming the flag, found before
    // anything is sent.
    for ttl in ["200", "0", "-1"] {
        let bad = m
            .coord(&["lock", "claim", "web", "x", &format!("--ttl={ttl}")])
            .output()
            .unwrap();
        assert_eq!(bad.status.code(), Some(2), "{ttl}");
        assert!(stderr(&bad).contains("--ttl"), "{}", stderr(&bad));
    }
    // An id that names nothing: exit 2 from read and reply alike.
    for args in [
        &["msg", "read", "999"][..],
        &["msg", "reply", "999", "x"][..],
    ] {
        let out = m.coord(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn sixteen_simultaneous_claims_have_exactly_one_winner() {
    let m = Machine::new("BOX");
    // Create the store first so the race is on the lock, not on set-up.
    m.json(None, &["lock", "list"]);
    crate::common::race_for_one_lock(&m, 16);
}

#[test]
fn a_lock_past_its_ttl_is_gone() {
    let m = Machine::new("BOX");
    // 0.0003 h ≈ 1.1 s.
    m.json(
        Some("a"),
        &["lock", "claim", "web", "deploy", "--ttl", "0.0003"],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let locks = m.json(None, &["lock", "list"]);
        if locks.as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "lock never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Someone else may now claim it.
    let l = m.json(Some("b"), &["lock", "claim", "web", "deploy"]);
    assert_eq!(l["session_id"], "BOX/b");
}

#[test]
fn json_output_is_exactly_the_contract_objects() {
    let m = Machine::new("BOX");
    m.json(
        Some("other"),
        &["msg", "send", "BOX", "hello", "--subject", "s"],
    );
    m.json(None, &["todo", "add", "t"]);
    m.json(None, &["lock", "claim", "p", "r"]);
    m.json(
        None,
        &[
            "component",
            "set",
            "web",
            "api",
            "deployed",
            "--version",
            "1.2",
        ],
    );
    m.json(
        None,
        &[
            "workflow", "set", "release", "running", "--detail", "step 3",
        ],
    );

    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k.join(",")
    };
    let msgs = m.json(None, &["msg", "inbox"]);
    let _: Vec<Message> = serde_json::from_value(msgs.clone()).unwrap();
    assert_eq!(
        keys(&msgs[0]),
        "body,created_at,created_by_machine,created_by_user,from_session,id,in_reply_to,read,read_at,subject,to_session"
    );
    let todos = m.json(None, &["todo", "list"]);
    let _: Vec<Todo> = serde_json::from_value(todos.clone()).unwrap();
    assert_eq!(
        keys(&todos[0]),
        "auto,completed_at,completed_by,created_at,created_by_machine,created_by_user,id,parent_id,project,source,status,text,user"
    );
    let locks = m.json(None, &["lock", "list"]);
    let _: Vec<Lock> = serde_json::from_value(locks.clone()).unwrap();
    assert_eq!(
        keys(&locks[0]),
        "created_at,expires_at,id,note,paths,project,resource,session_id"
    );

    let status = m.json(None, &["status"]);
    let s: Status = serde_json::from_value(status.clone()).unwrap();
    assert_eq!(keys(&status), "components,locks,workflows");
    assert_eq!(s.locks.len(), 1);
    let _: Component = serde_json::from_value(status["components"][0].clone()).unwrap();
    let _: Workflow = serde_json::from_value(status["workflows"][0].clone()).unwrap();
    assert_eq!(
        keys(&status["components"][0]),
        "component,notes,project,state,updated_at,updated_by,version"
    );
    assert_eq!(
        keys(&status["workflows"][0]),
        "detail,name,state,updated_at,updated_by"
    );
    // RFC 3339 in UTC.
    assert!(msgs[0]["created_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn a_broken_identity_file_is_named_with_line_and_field() {
    let m = Machine::new("BOX");
    std::fs::write(
        m.identity_path(),
        "{\n  \"user\": \"howard\",\n  \"machine\": 42\n}",
    )
    .unwrap();
    let out = m.coord(&["msg", "inbox"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("identity.json"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("\"machine\""), "{err}");

    std::fs::write(m.identity_path(), "{\"user\": \"howard\",").unwrap();
    let out = m.coord(&["whoami"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("identity.json"), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}

#[test]
fn a_directory_where_the_db_should_be_is_named() {
    let m = Machine::new("BOX");
    std::fs::create_dir_all(m.db_path()).unwrap();
    let out = m.coord(&["msg", "inbox"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&m.db_path().display().to_string()), "{err}");
    assert!(err.contains("directory"), "{err}");
}

#[test]
fn an_odd_body_comes_back_byte_for_byte() {
    let m = Machine::new("BOX");
    let mut body = String::from("line one\n\ttabbed\r\nemoji 🦀🚀 e\u{301}\n");
    while body.len() < 100 * 1024 {
        body.push_str("the quick brown fox jumps over the lazy dog 0123456789\n");
    }
    let file = m.root().join("body.txt");
    std::fs::write(&file, &body).unwrap();
    m.json(
        Some("other"),
        &["msg", "send", "BOX", "--body-file", file.to_str().unwrap()],
    );
    // And once more through stdin.
    let out = m
        .session("other", &["--json", "msg", "send", "BOX", "-"])
        .write_stdin(body.clone())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let inbox = m.json(None, &["msg", "inbox"]);
    assert_eq!(inbox[0]["body"].as_str().unwrap(), body);
    assert_eq!(inbox[1]["body"].as_str().unwrap(), body);
}

#[test]
fn an_empty_body_is_a_usage_error() {
    let m = Machine::new("BOX");
    for args in [&["msg", "send", "BOX"][..], &["msg", "send", "BOX", "  "]] {
        let out = m.coord(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("empty"));
    }
    let out = m
        .coord(&["msg", "send", "BOX", "-"])
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn whoami_names_the_identity_and_the_store() {
    let m = Machine::new("BOX");
    let out = m.coord(&["whoami"]).output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("BOX/claude-main"), "{text}");
    assert!(
        text.contains(&m.identity_path().display().to_string()),
        "{text}"
    );
    assert!(text.contains(&m.db_path().display().to_string()), "{text}");
    assert!(stderr(&out).is_empty());

    // Without any identity file: defaults, and a note on stderr.
    std::fs::remove_file(m.identity_path()).unwrap();
    let out = m.coord(&["whoami"]).env("USER", "howard").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("(defaults)"));
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(stderr(&out).contains("no identity.json"));
    // And with neither USER nor USERNAME (containers, cron, services): the
    // account this runs as, as `whoami` says.
    let out = m
        .coord(&["--json", "whoami"])
        .env_remove("USER")
        .env_remove("USERNAME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let user = v["user"].as_str().unwrap_or("");
    assert!(!user.is_empty(), "{v}");
    #[cfg(unix)]
    {
        let account = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        assert_eq!(user, String::from_utf8_lossy(&account.stdout).trim());
    }
}

#[test]
fn identity_search_order_and_overrides() {
    let m = Machine::new("HOME-BOX");
    // A project folder with its own identity wins over the home one.
    let project = m.root().join("work/project/sub");
    std::fs::create_dir_all(project.join("../.claude")).unwrap();
    std::fs::write(
        m.root().join("work/project/.claude/identity.json"),
        r#"{"user":"howard","machine":"PROJ-BOX","session":"s1","extra":"ignored"}"#,
    )
    .unwrap();
    let who = |cmd: &mut assert_cmd::Command| -> Value {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // A project's identity file names the session and nothing else: who
    // we are and where we connect come from the user's own file.
    let v = who(m.coord(&["--json", "whoami"]).current_dir(&project));
    assert_eq!(v["session_id"], "HOME-BOX/s1");
    assert_eq!(v["ignored_fields"], serde_json::json!(["user", "machine"]));
    // COORD_SESSION overrides the file's session; COORD_DB the store.
    let v = who(m
        .coord(&["--json", "whoami"])
        .current_dir(&project)
        .env("COORD_SESSION", "s2")
        .env("COORD_DB", m.root().join("x.db")));
    assert_eq!(v["session_id"], "HOME-BOX/s2");
    assert!(v["location"].as_str().unwrap().ends_with("x.db"));
    // --identity beats everything.
    let v = who(m
        .coord(&[
            "--json",
            "whoami",
            "--identity",
            m.identity_path().to_str().unwrap(),
        ])
        .current_dir(&project));
    assert_eq!(v["session_id"], "HOME-BOX/claude-main");
    // A named file that does not exist is an error, not a fallback.
    let out = m
        .coord(&["whoami"])
        .env("COORD_IDENTITY", "nope.json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nope.json"));
}

#[test]
fn both_binaries_answer_version() {
    let m = Machine::new("BOX");
    for bin in ["coord", "coord-hook"] {
        let out = m.bin(bin, None, &["--version"]).output().unwrap();
        assert!(out.status.success());
        assert!(stdout(&out).contains(env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn a_reply_acknowledges_what_it_answers() {
    let m = Machine::new("BOX");
    m.arrive(Some("peer"));
    m.arrive(None);
    let id = m.json(
        Some("peer"),
        &["msg", "send", "BOX", "can you run the tests?"],
    )["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let out = m.coord(&["msg", "reply", &id, "on it"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("marked message {id} read")));
    let unread = m.json(None, &["msg", "inbox"]);
    assert!(unread.as_array().unwrap().is_empty(), "{unread}");
}

#[test]
fn serve_listens_on_localhost_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let s = crate::common::Server::start_with(&dir.path().join("s.db"), "localhost:0", &[]);
    assert!(s.url.starts_with("http://127.0.0.1:"), "{}", s.url);
    let m = Machine::new("BOX");
    let out = m
        .coord(&["serve", "--listen", "nowhere:port", "--db", "x.db"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("localhost:8001"), "{}", stderr(&out));
}

#[test]
fn each_binary_helps_with_its_own_job_in_80_columns() {
    let m = Machine::new("BOX");
    let coord = stdout(&m.coord(&["--help"]).output().unwrap());
    let hook = stdout(&m.bin("coord-hook", None, &["--help"]).output().unwrap());
    for flag in ["--preview", "--format", "--timeout"] {
        assert!(!coord.contains(flag), "coord --help shows {flag}");
        assert!(hook.contains(flag), "coord-hook --help lacks {flag}");
    }
    for cmd in ["  wait ", "  install ", "  uninstall "] {
        assert!(hook.contains(cmd), "coord-hook --help lacks {cmd}");
        assert!(!coord.contains(cmd), "coord --help shows {cmd}");
    }
    assert!(hook.contains("IS the hook"), "{hook}");
    assert!(coord.contains("Examples:") && hook.contains("Examples:"));
    for text in [&coord, &hook] {
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "over 80 columns: {line:?}");
        }
    }
    // Hidden is not gone: the hook's flags and the fleet commands still work
    // on either binary.
    m.bin("coord-hook", None, &["msg", "inbox"])
        .assert()
        .success();
    m.coord(&["--preview"]).assert().success();
}

#[test]
fn a_store_copied_to_a_new_file_keeps_everything_and_twice_copies_nothing() {
    let m = Machine::new("BOX");
    m.arrive(None);
    m.arrive(Some("other"));
    for args in [
        vec!["msg", "send", "--force", "BOX/other", "one"],
        vec!["msg", "send", "ALL", "to all"],
        vec!["todo", "add", "a todo"],
        vec!["lock", "claim", "web", "deploy"],
    ] {
        let out = m.coord(&args).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let read = m.session("other", &["msg", "read", "1"]).output().unwrap();
    assert!(read.status.success());
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("copy.db");
    let copy = || {
        m.coord(&[
            "store",
            "copy",
            m.db_path().to_str().unwrap(),
            target.to_str().unwrap(),
        ])
        .output()
        .unwrap()
    };
    let out = copy();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("verified"), "{}", stdout(&out));
    let out = copy();
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.trim_start().starts_with("messages") && l.contains(" 0 copied now")),
        "{}",
        stdout(&out)
    );
    let copied = Machine::with_identity(
        "BOX",
        &serde_json::json!({"user": "howard", "machine": "BOX", "coord_db": target}),
    );
    assert_eq!(
        copied.json(Some("other"), &["msg", "inbox"]),
        m.json(Some("other"), &["msg", "inbox"])
    );
    // A FROM that is not there is named, and nothing is made.
    let out = m
        .coord(&["store", "copy", "no-such.db", target.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no-such.db"), "{}", stderr(&out));
}

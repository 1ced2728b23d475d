//! The contract over the wire: status codes, auth, limits, the CLI against a
//! real `coord serve`, and the client's tolerance of a Python-style server.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::TcpListener;

use crate::common::{Machine, Server, stderr, stdout};
use serde_json::{Value, json};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Sends a raw request; answers (status, JSON body or Null).
fn raw(method: &str, url: &str, body: Option<&str>, token: Option<&str>) -> (u16, Value) {
    let a = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let resp = match (method, body) {
        ("GET", _) | ("DELETE", _) => {
            let mut r = if method == "GET" {
                a.get(url)
            } else {
                a.delete(url)
            };
            if let Some(h) = &auth {
                r = r.header("Authorization", h);
            }
            r.call()
        }
        (_, b) => {
            let mut r = if method == "PUT" {
                a.put(url)
            } else {
                a.post(url)
            };
            if let Some(h) = &auth {
                r = r.header("Authorization", h);
            }
            r.header("Content-Type", "application/json")
                .send(b.unwrap_or("").to_string())
        }
    };
    let mut resp = resp.expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn every_endpoint_answers_with_the_contract_status() {
    let s = Server::start(&[]);
    let u = |p: &str| format!("{}/api/coord{p}", s.url);
    let (st, h) = raw("GET", &u("/health"), None, None);
    assert_eq!((st, h["status"].as_str()), (200, Some("ok")));
    assert!(h["version"].is_string());

    let m = r#"{"to_session":"B/claude-main","body":"hi","from_session":"A/claude-main",
               "created_by_user":"howard","created_by_machine":"A","unknown_field":1}"#;
    let (st, msg) = raw("POST", &u("/messages"), Some(m), None);
    assert_eq!(st, 201, "{msg}");
    let id = msg["id"].as_i64().unwrap();
    let (st, list) = raw(
        "GET",
        &u("/messages?session=B/claude-main&unread=true&limit=5"),
        None,
        None,
    );
    assert_eq!((st, list.as_array().unwrap().len()), (200, 1));
    let (st, _) = raw(
        "POST",
        &u(&format!("/messages/{id}/read")),
        Some(r#"{"session":"B/claude-main"}"#),
        None,
    );
    assert_eq!(st, 200);
    assert_eq!(
        raw(
            "POST",
            &u("/messages/424242/read"),
            Some(r#"{"session":"B/claude-main"}"#),
            None
        )
        .0,
        404
    );
    assert_eq!(
        raw(
            "POST",
            &u(&format!("/messages/{id}/read")),
            Some(r#"{"session":"C/x"}"#),
            None
        )
        .0,
        403
    );
    assert_eq!(raw("GET", &u("/messages"), None, None).0, 422);
    assert_eq!(
        raw("GET", &u("/messages?session=B/x&limit=5000"), None, None).0,
        422
    );

    let todo = r#"{"text":"t","created_by_user":"howard","created_by_machine":"A"}"#;
    let (st, t) = raw("POST", &u("/todos"), Some(todo), None);
    assert_eq!(st, 201);
    assert_eq!(
        raw(
            "GET",
            &u("/todos?status=all&include_unassigned=true&user=howard"),
            None,
            None
        )
        .0,
        200
    );
    assert_eq!(raw("GET", &u("/todos?status=maybe"), None, None).0, 422);
    let done = format!("/todos/{}/done", t["id"]);
    assert_eq!(
        raw(
            "POST",
            &u(&done),
            Some(r#"{"completed_by":"A/claude-main"}"#),
            None
        )
        .0,
        200
    );
    assert_eq!(
        raw(
            "POST",
            &u("/todos/999/done"),
            Some(r#"{"completed_by":"A/x"}"#),
            None
        )
        .0,
        404
    );

    let claim = |who: &str| {
        format!(r#"{{"project":"web","resource":"deploy","session_id":"{who}","ttl_hours":1}}"#)
    };
    let (st, l) = raw("POST", &u("/locks"), Some(&claim("A/claude-main")), None);
    assert_eq!(st, 201);
    assert_eq!(
        raw("POST", &u("/locks"), Some(&claim("A/claude-main")), None).0,
        200
    );
    let (st, conflict) = raw("POST", &u("/locks"), Some(&claim("B/claude-main")), None);
    assert_eq!(st, 409);
    assert_eq!(conflict["lock"]["session_id"], "A/claude-main");
    assert!(conflict["detail"].is_string());
    assert_eq!(
        raw(
            "GET",
            &u("/locks?project=web&session_id=A/claude-main"),
            None,
            None
        )
        .1
        .as_array()
        .unwrap()
        .len(),
        1
    );
    let del = |q: &str| u(&format!("/locks/{}?{q}", l["id"]));
    assert_eq!(
        raw("DELETE", &del("session_id=B/claude-main"), None, None).0,
        403
    );
    assert_eq!(
        raw("DELETE", &del("session_id=A/claude-main"), None, None).0,
        200
    );
    assert_eq!(
        raw("DELETE", &del("session_id=A/claude-main"), None, None).0,
        404
    );

    let (st, c) = raw(
        "PUT",
        &u("/components/web/api"),
        Some(r#"{"state":"up","updated_by":"A/x"}"#),
        None,
    );
    assert_eq!((st, c["state"].as_str()), (200, Some("up")));
    let (st, w) = raw(
        "PUT",
        &u("/workflows/release"),
        Some(r#"{"state":"done","updated_by":"A/x"}"#),
        None,
    );
    assert_eq!((st, w["name"].as_str()), (200, Some("release")));
    let (st, status) = raw("GET", &u("/status"), None, None);
    assert_eq!(st, 200);
    assert_eq!(status["components"].as_array().unwrap().len(), 1);

    // Bad input: a 4xx with a detail, never a 5xx.
    for (body, what) in [
        ("{not json", "malformed"),
        (
            r#"{"to_session":5,"body":"x","from_session":"A/x","created_by_user":"u","created_by_machine":"A"}"#,
            "wrong type",
        ),
        (r#"{"body":"x"}"#, "missing fields"),
        ("", "empty"),
    ] {
        let (st, v) = raw("POST", &u("/messages"), Some(body), None);
        assert_eq!(st, 422, "{what}");
        assert!(v["detail"].is_string(), "{what}: {v}");
    }
    let huge = format!(
        r#"{{"text":"{}","created_by_user":"u","created_by_machine":"A"}}"#,
        "x".repeat(1_100_000)
    );
    let (st, v) = raw("POST", &u("/todos"), Some(&huge), None);
    assert_eq!(st, 413);
    assert!(v["detail"].is_string());
    assert_eq!(raw("GET", &format!("{}/nope", s.url), None, None).0, 404);

    let log = s.log_text();
    assert!(log.contains("POST /api/coord/messages 201"), "{log}");
    assert!(
        !log.contains("howard"),
        "the log never carries bodies: {log}"
    );
}

#[test]
fn a_token_guards_everything_but_health_and_is_never_printed() {
    let secret = "s3cret-token-value";
    let s = Server::start(&["--token", secret]);
    let u = |p: &str| format!("{}/api/coord{p}", s.url);
    assert_eq!(raw("GET", &u("/health"), None, None).0, 200);
    let (st, v) = raw("GET", &u("/status"), None, None);
    assert_eq!(st, 401);
    assert!(v["detail"].is_string());
    assert_eq!(raw("GET", &u("/status"), None, Some("wrong")).0, 401);
    assert_eq!(raw("GET", &u("/status"), None, Some(secret)).0, 200);

    let m = Machine::remote("A", &s.url);
    let out = m.coord(&["msg", "send", "A", "hi"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));

    let out = m
        .coord(&["msg", "send", "A", "hi"])
        .env("COORD_TOKEN", secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = m
        .coord(&["whoami"])
        .env("COORD_TOKEN", secret)
        .output()
        .unwrap();
    for o in [stdout(&out), stderr(&out), s.log_text()] {
        assert!(!o.contains(secret), "token leaked: {o}");
    }
}

#[test]
fn two_machines_talk_through_one_server() {
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BRAVO", &s.url);
    b.arrive(None);
    let sent = a.json(
        None,
        &["msg", "send", "BRAVO", "build is green", "-s", "ci"],
    );
    assert_eq!(sent["to_session"], "BRAVO/claude-main");
    let inbox = b.json(None, &["msg", "inbox"]);
    assert_eq!(inbox[0]["body"], "build is green");
    assert_eq!(inbox[0]["created_by_machine"], "ALPHA");
    let id = inbox[0]["id"].to_string();
    b.json(None, &["msg", "read", &id]);
    assert!(
        b.json(None, &["msg", "inbox"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    a.json(None, &["lock", "claim", "web", "deploy"]);
    let out = b
        .coord(&["lock", "claim", "web", "deploy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("held by ALPHA/claude-main"),
        "{}",
        stderr(&out)
    );

    b.json(None, &["component", "set", "web", "api", "deployed"]);
    let st = a.json(None, &["status"]);
    assert_eq!(st["components"][0]["updated_by"], "BRAVO/claude-main");
    let who = a.json(None, &["whoami"]);
    assert_eq!(who["backend"], "http");
}

#[test]
fn twenty_claims_over_http_have_exactly_one_winner() {
    let s = Server::start(&[]);
    let m = Machine::remote("BOX", &s.url);
    crate::common::race_for_one_lock(&m, 20);
}

#[test]
fn serve_refuses_an_open_listen_without_a_token_and_a_corrupt_db() {
    let m = Machine::new("BOX");
    let out = m
        .coord(&["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--token"), "{}", stderr(&out));

    let bad = m.root().join("bad.db");
    std::fs::write(
        &bad,
        b"this is not sqlite at all, just some text that is long enough",
    )
    .unwrap();
    let out = m
        .coord(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad.db"), "{err}");
    assert!(stdout(&out).is_empty());
}

/// A stand-in for the fleet's Python server: answers each request path with
/// a canned raw HTTP response, for `n` connections.
fn python_style_server(answers: Vec<(&'static str, String)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let answer = answers
                .iter()
                .find(|(p, _)| path.starts_with(p))
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into());
            let _ = conn.write_all(answer.as_bytes());
            let _ = conn.flush();
        }
    });
    url
}

fn http(status: &str, ctype: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn the_client_reads_what_a_python_server_sends() {
    let messages = json!([{
        "id": "41", "from_session": "A/claude-main", "to_session": "ALL_SESSIONS",
        "subject": null, "body": "naive time", "created_by_user": "h", "created_by_machine": "A",
        "created_at": "2026-11-25T08:12:03.123456", "read": false, "read_at": null, "extra": [1, 2]
    }]);
    let url = python_style_server(vec![
        ("/api/coord/messages?", http("200 OK", "application/json", &messages.to_string())),
        (
            "/api/coord/todos",
            http(
                "422 Unprocessable Entity",
                "application/json",
                r#"{"detail":[{"loc":["body","text"],"msg":"field required","type":"missing"}]}"#,
            ),
        ),
        ("/api/coord/status", http("502 Bad Gateway", "text/html", "<html><body>502 Bad Gateway</body></html>")),
        (
            "/api/coord/locks",
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n[{\"id\": 1, \"proj".into(),
        ),
        ("/api/coord/components", http("200 OK", "application/json", r#"{"unexpected":"shape"}"#)),
    ]);
    let m = Machine::remote("A", &url);

    let inbox = m.json(None, &["msg", "inbox"]);
    assert_eq!(inbox[0]["id"], 41);
    assert_eq!(inbox[0]["created_at"], "2026-11-25T08:12:03.123456Z");
    let human = m.coord(&["msg", "inbox"]).output().unwrap();
    assert!(stdout(&human).contains("naive time"));

    let one_line_error = |args: &[&str], want: &[&str]| {
        let out = m.coord(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        for w in want {
            assert!(err.contains(w), "{args:?}: {err:?} lacks {w:?}");
        }
        assert!(!err.contains("<html>"), "{err}");
    };
    one_line_error(&["todo", "add", "x"], &["body.text: field required"]);
    one_line_error(
        &["status"],
        &["502", &format!("{url}/api/coord/status"), "HTML"],
    );
    one_line_error(&["lock", "list"], &["/api/coord/locks"]);
    one_line_error(
        &["component", "set", "p", "c", "up"],
        &["/api/coord/components/p/c"],
    );

    // Nothing listening: unreachable, named, one line.
    let dead_url = crate::common::dead_url();
    let m = Machine::remote("A", &dead_url);
    let out = m.coord(&["msg", "inbox"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unreachable"), "{}", stderr(&out));
    assert!(stderr(&out).contains(&dead_url), "{}", stderr(&out));
}

#[test]
fn a_stop_signal_stops_cleanly_and_idempotency_keys_survive_a_restart() {
    use coord_hook::backend::Coord;
    use coord_hook::client::HttpCoord;
    use coord_hook::model::{NewMessage, Write, Written};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keep.db");
    let w = Write::SendMessage(NewMessage {
        to_session: "B/claude-main".into(),
        body: "exactly once".into(),
        subject: None,
        from_session: "A/claude-main".into(),
        created_by_user: "h".into(),
        created_by_machine: "A".into(),
        in_reply_to: None,
    });
    let key = "7f1d2c3b-aaaa-4bbb-8ccc-ddddeeeeffff";
    let first = {
        let s = Server::start_with(&db, "127.0.0.1:0", &[]);
        let c = HttpCoord::new(&s.url, None, std::time::Duration::from_secs(10));
        let first = c.write(&w, Some(key)).unwrap();
        #[cfg(unix)]
        {
            let mut s = s;
            let status = s.terminate().expect("exited after SIGTERM");
            assert!(status.success(), "{status:?}");
            assert!(s.log_text().contains("stopped"));
        }
        // Windows: wine 8 cannot deliver console control events
        // (GenerateConsoleCtrlEvent answers ERROR_INVALID_ACCESS), so the
        // server is killed outright: the key must survive that too.
        #[cfg(not(unix))]
        s.stop();
        first
    };
    let s = Server::start_with(&db, "127.0.0.1:0", &[]);
    let c = HttpCoord::new(&s.url, None, std::time::Duration::from_secs(10));
    let again = c.write(&w, Some(key)).unwrap();
    assert_eq!(first, again);
    let Written::Message(m) = again else { panic!() };
    let inbox = c
        .messages(&coord_hook::model::MessageQuery {
            session: "B/claude-main".into(),
            unread_only: true,
            limit: None,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(inbox.iter().filter(|x| x.body == m.body).count(), 1);
}

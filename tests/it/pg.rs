//! `coord serve` on PostgreSQL (issue 22), against a real PostgreSQL that
//! `.ci/run` starts on a loopback port (`COORD_TEST_PG`: a URL whose user
//! may create databases). Each test makes a database of its own. Several
//! replicas of `coord serve` on one database are one server: a lock raced
//! through two replicas has one winner, a key replayed on another replica
//! is a replay, a write on one wakes a long-poll held on the other, and a
//! replica killed under load loses and doubles nothing. Without
//! `COORD_TEST_PG` each test says SKIPPED loudly and passes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Machine, Server, stderr};
use serde_json::{Value, json};

/// The maintenance URL, when a PostgreSQL is there to test against.
pub fn maintenance() -> Option<String> {
    std::env::var("COORD_TEST_PG")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A new, empty database; its URL.
pub fn fresh_database() -> Option<String> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let admin = maintenance()?;
    let name = format!(
        "coord_t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("COORD_TEST_PG answers");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    let (base, _) = admin.rsplit_once('/').expect("COORD_TEST_PG ends in /DB");
    Some(format!("{base}/{name}"))
}

/// A fresh database, or None after saying SKIPPED.
fn database(test: &str) -> Option<String> {
    let db = fresh_database();
    if db.is_none() {
        eprintln!(
            "SKIPPED {test}: no PostgreSQL to test against (set COORD_TEST_PG; .ci/run starts one)"
        );
    }
    db
}

fn replica(url: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("replica.log");
    let s = Server::start_arg(std::ffi::OsStr::new(url), log, "127.0.0.1:0", &[]);
    std::mem::forget(dir); // the log outlives the test for a look
    s
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

fn post(url: &str, path: &str, body: &Value, key: Option<&str>) -> (u16, Value, bool) {
    let mut r = agent()
        .post(&format!("{url}/api/coord{path}"))
        .header("Content-Type", "application/json");
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    let mut resp = r.send(body.to_string()).expect("answer");
    let replayed = resp.headers().get("Idempotency-Replayed").is_some();
    let status = resp.status().as_u16();
    let v = resp
        .body_mut()
        .read_to_string()
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (status, v, replayed)
}

fn get_json(url: &str) -> Value {
    let text = agent()
        .get(url)
        .call()
        .expect("answer")
        .body_mut()
        .read_to_string()
        .expect("body");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn message(to: &str, body: &str) -> Value {
    json!({"to_session": to, "body": body, "from_session": "A/x",
           "created_by_user": "u", "created_by_machine": "A"})
}

#[test]
fn two_replicas_are_one_server_reads_keys_and_locks() {
    let Some(db) = database("two_replicas_are_one_server_reads_keys_and_locks") else {
        return;
    };
    let (one, two) = (replica(&db), replica(&db));
    // A write on one is read on the other.
    let (st, m, _) = post(&one.url, "/messages", &message("B/y", "hello"), Some("k-1"));
    assert_eq!(st, 201, "{m}");
    let got: Value = get_json(&format!(
        "{}/api/coord/messages?session=B/y&unread=true",
        two.url
    ));
    assert_eq!(got[0]["id"], m["id"]);
    // The same key on the other replica is a replay of the same message.
    let (st, again, replayed) = post(&two.url, "/messages", &message("B/y", "hello"), Some("k-1"));
    assert_eq!(st, 201);
    assert!(replayed);
    assert_eq!(again["id"], m["id"]);
    // Twenty claims at once through both replicas: exactly one winner.
    let wins: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..20)
            .map(|i| {
                let url = if i % 2 == 0 { one.url.clone() } else { two.url.clone() };
                s.spawn(move || {
                    post(
                        &url,
                        "/locks",
                        &json!({"project": "db", "resource": "migrate", "session_id": format!("S{i}/x")}),
                        None,
                    )
                    .0
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(wins.iter().filter(|s| **s == 201).count(), 1, "{wins:?}");
    assert_eq!(wins.iter().filter(|s| **s == 409).count(), 19, "{wins:?}");
    // Twenty keyed writes at once, each sent to both replicas: each once.
    std::thread::scope(|s| {
        for i in 0..20 {
            for url in [&one.url, &two.url] {
                let url = url.clone();
                s.spawn(move || {
                    let (st, _, _) = post(
                        &url,
                        "/messages",
                        &message("C/z", &format!("m{i}")),
                        Some(&format!("race-{i}")),
                    );
                    assert_eq!(st, 201);
                });
            }
        }
    });
    let all: Value = get_json(&format!(
        "{}/api/coord/messages?session=C/z&limit=100",
        one.url
    ));
    assert_eq!(all.as_array().unwrap().len(), 20, "{all}");
}

#[test]
fn a_write_on_one_replica_wakes_a_long_poll_on_the_other() {
    let Some(db) = database("a_write_on_one_replica_wakes_a_long_poll_on_the_other") else {
        return;
    };
    let (one, two) = (replica(&db), replica(&db));
    let poll_url = format!(
        "{}/api/coord/messages?session=W/x&unread=true&wait=20",
        two.url
    );
    let poll = std::thread::spawn(move || {
        let t = Instant::now();
        let v: Value = get_json(&poll_url);
        (v, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    post(&one.url, "/messages", &message("W/x", "wake up"), None);
    let (v, _) = poll.join().unwrap();
    // Held up to 20 s: an answer with the message means the write woke it
    // (at the deadline the poll answers what it had: nothing).
    assert_eq!(v[0]["body"], "wake up", "{v}");

    // The listener's connection dropped: the catch-up and the reconnect
    // still wake a waiter.
    let mut admin = postgres::Client::connect(&db, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .unwrap();
    let poll_url = format!(
        "{}/api/coord/messages?session=W/y&unread=true&wait=20",
        two.url
    );
    let poll = std::thread::spawn(move || get_json(&poll_url));
    std::thread::sleep(Duration::from_millis(300));
    post(&one.url, "/messages", &message("W/y", "still heard"), None);
    let v = poll.join().unwrap();
    assert_eq!(v[0]["body"], "still heard", "{v}");
}

#[test]
fn a_replica_killed_under_load_loses_doubles_and_queues_nothing() {
    let Some(db) = database("a_replica_killed_under_load_loses_doubles_and_queues_nothing") else {
        return;
    };
    let mut one = Some(replica(&db));
    let two = replica(&db);
    let first = one.as_ref().unwrap().url.clone();
    let a = Machine::with_identity(
        "ALPHA",
        &json!({"user": "a", "machine": "ALPHA", "coord_api": [first, two.url]}),
    );
    let b = Machine::remote("BRAVO", &two.url);
    b.arrive(None);
    for i in 0..20 {
        if i == 7 {
            drop(one.take());
        }
        let out = a
            .coord(&["msg", "send", "BRAVO", &format!("m{i}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert!(!a.claude_dir().join("coord-queue.jsonl").exists());
    let inbox = b.json(None, &["msg", "inbox", "--limit", "100"]);
    let mut got: Vec<String> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn the_database_lost_mid_run_answers_503_and_the_writes_wait_in_the_queue() {
    let Some(db) =
        database("the_database_lost_mid_run_answers_503_and_the_writes_wait_in_the_queue")
    else {
        return;
    };
    let s = replica(&db);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BRAVO", &s.url);
    b.arrive(None);
    let name = db.rsplit_once('/').unwrap().1.to_string();
    let mut admin = postgres::Client::connect(&maintenance().unwrap(), postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
        ))
        .unwrap();
    let (st, v, _) = post(
        &s.url,
        "/messages",
        &message("BRAVO/claude-main", "lost?"),
        None,
    );
    assert_eq!(st, 503, "{v}");
    let out = a
        .coord(&["msg", "send", "BRAVO", "kept for later"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("queued"), "{}", stderr(&out));
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .unwrap();
    let synced = a.json(None, &["sync"]);
    assert_eq!(synced["delivered"], 1, "{synced}");
    let inbox = b.json(None, &["msg", "inbox"]);
    assert_eq!(inbox[0]["body"], "kept for later");
}

#[test]
fn the_schema_is_made_once_by_replicas_starting_together_and_a_bad_url_is_named() {
    let Some(db) = database("the_schema_is_made_once_by_replicas_starting_together") else {
        return;
    };
    let servers: Vec<Server> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3).map(|_| s.spawn(|| replica(&db))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut c = postgres::Client::connect(&db, postgres::NoTls).unwrap();
    let v: i32 = c
        .query_one("SELECT version FROM coord_schema", &[])
        .unwrap()
        .get(0);
    assert!(v >= 1);
    let rows = c.query("SELECT count(*) FROM coord_schema", &[]).unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    drop(servers);
    // A database that does not exist: one line, the URL without password.
    let (base, _) = db.rsplit_once('/').unwrap();
    let missing = format!("{base}/coord_no_such_db").replacen("://", "://", 1);
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("coord"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &missing])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("coord_no_such_db"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
}

/// A store with a little of everything: messages read and unread, a
/// broadcast read by one session, todos open and done, a lock, states.
fn filled_store(m: &Machine) {
    let ok = |args: &[&str], session: Option<&str>| {
        let out = m.bin("coord", session, args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    m.arrive(None);
    m.arrive(Some("other"));
    ok(&["msg", "send", "--force", "BOX/other", "first"], None);
    // A NUL cannot be an argument: the body comes on stdin.
    let out = m
        .bin("coord", None, &["msg", "send", "--force", "BOX/other", "-"])
        .write_stdin("second \u{1b}[31m and a NUL \u{0}")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    ok(&["msg", "send", "ALL", "to everyone"], None);
    ok(&["msg", "read", "1", "3"], Some("other"));
    ok(&["todo", "add", "write the docs"], None);
    ok(&["todo", "add", "ship it"], None);
    ok(&["todo", "done", "1"], None);
    ok(
        &["lock", "claim", "web", "deploy", "--note", "moving"],
        None,
    );
    ok(
        &[
            "component",
            "set",
            "web",
            "api",
            "deployed",
            "--version",
            "1.2",
        ],
        None,
    );
}

fn inbox_of(m: &Machine, session: &str) -> Vec<(i64, String, bool)> {
    let v = m.json(Some(session), &["msg", "inbox", "--all", "--limit", "100"]);
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["id"].as_i64().unwrap(),
                x["body"].as_str().unwrap().to_string(),
                x["read"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_store_copied_into_postgresql_and_back_keeps_ids_and_read_state() {
    let Some(db) = database("a_store_copied_into_postgresql_and_back_keeps_ids_and_read_state")
    else {
        return;
    };
    let m = Machine::new("BOX");
    filled_store(&m);
    let before = inbox_of(&m, "other");
    assert_eq!(before.len(), 3);
    let src = m.db_path();
    let copy = |from: &str, to: &str| {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("coord"))
            .args(["--json", "store", "copy", from, to])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = copy(src.to_str().unwrap(), &db);
    let copied = |v: &Value, t: &str| {
        v["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["table"] == t)
            .unwrap()["copied"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(copied(&first, "messages"), 3, "{first}");
    assert_eq!(copied(&first, "todos"), 2, "{first}");
    // Twice: nothing new.
    let again = copy(src.to_str().unwrap(), &db);
    assert_eq!(copied(&again, "messages"), 0, "{again}");
    // Served from PostgreSQL: the same inbox, read state and all, and new
    // ids after the copied ones.
    let s = replica(&db);
    let remote = Machine::remote("BOX", &s.url);
    assert_eq!(inbox_of(&remote, "other"), before);
    let sent = remote.json(
        None,
        &["msg", "send", "--force", "BOX/other", "after the move"],
    );
    assert_eq!(sent["id"], 4);
    let st = remote.json(None, &["status"]);
    assert_eq!(st["locks"][0]["note"], "moving");
    // And back into a new SQLite file, for a backup.
    let back = tempfile::tempdir().unwrap();
    let file = back.path().join("backup.db");
    let out = copy(&db, file.to_str().unwrap());
    assert_eq!(copied(&out, "messages"), 4, "{out}");
    let restored = Machine::with_identity(
        "BOX",
        &json!({"user": "howard", "machine": "BOX", "coord_db": file}),
    );
    let mut want = before.clone();
    want.push((4, "after the move".into(), false));
    assert_eq!(inbox_of(&restored, "other"), want);
}

#[test]
fn postgresql_over_tls_checks_its_certificate() {
    if std::env::var("COORD_TEST_PG_TLS").is_err() {
        eprintln!(
            "SKIPPED postgresql_over_tls_checks_its_certificate: the test PostgreSQL has no TLS (COORD_TEST_PG_TLS; .ci/run turns it on)"
        );
        return;
    }
    let Some(db) = database("postgresql_over_tls_checks_its_certificate") else {
        return;
    };
    let url = format!("{db}?sslmode=require");
    let ca = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(
        std::ffi::OsStr::new(&url),
        dir.path().join("tls.log"),
        "127.0.0.1:0",
        &[],
        &[("PGSSLROOTCERT", ca.to_str().unwrap())],
    );
    let (st, _, _) = post(&s.url, "/messages", &message("T/x", "encrypted"), None);
    assert_eq!(st, 201);
    let got = get_json(&format!(
        "{}/api/coord/messages?session=T/x&unread=true",
        s.url
    ));
    assert_eq!(got[0]["body"], "encrypted");
    // Its connections are encrypted.
    let name = db.rsplit_once('/').unwrap().1.to_string();
    let mut admin = postgres::Client::connect(&maintenance().unwrap(), postgres::NoTls).unwrap();
    let encrypted: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = $1 AND a.application_name = 'coord serve' AND s.ssl",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert!(encrypted >= 1);
    // Without the CA, the certificate is refused: one line that says how.
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("coord"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &url])
        .env_remove("PGSSLROOTCERT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("certificate") || err.contains("Certificate"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

//! Cost follows what is unread, not history (issue 12): a store written by
//! the first schema keeps every read state, newest-first pages with a count
//! on both backends and from a v1 server that ignores them, and the hook's
//! reads go through indexes.

use std::time::Duration;

use crate::common::{Fake, Machine, Server, http_answer, message, stderr, stdout};
use coord_hook::backend::{Coord, CoordExt};
use coord_hook::client::HttpCoord;
use coord_hook::model::*;
use coord_hook::store::LocalStore;
use serde_json::{Value, json};

const B: &str = "B/claude-main";
const C: &str = "C/claude-main";

fn q(session: &str, unread: bool) -> MessageQuery {
    MessageQuery {
        session: session.into(),
        unread_only: unread,
        limit: Some(1000),
        ..Default::default()
    }
}

fn read_map(b: &dyn Coord, session: &str) -> Vec<(i64, bool)> {
    b.messages(&q(session, false))
        .unwrap()
        .iter()
        .map(|m| (m.id, m.read))
        .collect()
}

fn unread_ids(b: &dyn Coord, session: &str) -> Vec<i64> {
    b.messages(&q(session, true))
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect()
}

/// A store of the first schema, written by `fill`.
fn v1_store(fill: impl FnOnce(&rusqlite::Connection)) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    c.execute_batch(include_str!("../fixtures/schema-v1.sql"))
        .unwrap();
    c.pragma_update(None, "user_version", 1).unwrap();
    fill(&c);
    (dir, db)
}

#[test]
fn a_lower_case_machine_keeps_its_broadcast_reads_through_the_upgrade() {
    // Every Linux default before machines were upper-cased: the reads
    // were recorded under `howard-laptop/claude-main`.
    let me = "howard-laptop/claude-main";
    let (_dir, db) = v1_store(|c| {
        for id in 1..=5i64 {
            c.execute(
                "INSERT INTO messages VALUES (?1, 'peer/x', 'ALL_SESSIONS', NULL, 'b', 'u', 'peer', ?2)",
                rusqlite::params![id, 1_700_000_000_000i64 + id],
            )
            .unwrap();
            c.execute(
                "INSERT INTO message_reads VALUES (?1, ?2, ?3)",
                rusqlite::params![id, me, 1_700_000_100_000i64 + id],
            )
            .unwrap();
        }
        c.execute_batch(
            "INSERT INTO messages VALUES (6, 'peer/x', 'howard-laptop/claude-main', NULL, 'd', 'u', 'peer', 1700000000006);
             INSERT INTO message_reads VALUES (6, 'howard-laptop/claude-main', 1700000100006);
             INSERT INTO messages VALUES (7, 'peer/x', 'howard-laptop/claude-main', NULL, 'd', 'u', 'peer', 1700000000007);
             INSERT INTO messages VALUES (8, 'peer/x', 'ALL_SESSIONS', NULL, 'b', 'u', 'peer', 1700000000008);",
        )
        .unwrap();
    });
    let s = LocalStore::open(&db).unwrap();
    // Asked as the code asks now (the machine upper-cased), and as typed.
    assert_eq!(unread_ids(&s, "HOWARD-LAPTOP/claude-main"), [7, 8]);
    assert_eq!(unread_ids(&s, me), [7, 8]);
    let c = rusqlite::Connection::open(&db).unwrap();
    let marks: Vec<String> = c
        .prepare("SELECT session FROM broadcast_marks")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(marks, ["HOWARD-LAPTOP/claude-main"]);
}

#[test]
fn a_store_written_by_the_first_schema_keeps_every_read_state() {
    let (_dir, db) = v1_store(|c| {
        let msg = |id: i64, from: &str, to: &str| {
            c.execute(
                "INSERT INTO messages (id, from_session, to_session, subject, body, created_by_user, created_by_machine, created_at) VALUES (?1, ?2, ?3, NULL, ?4, 'u', 'M', ?5)",
                rusqlite::params![id, from, to, format!("m{id}"), 1_700_000_000_000i64 + id],
            )
            .unwrap();
        };
        let read = |id: i64, session: &str, at: i64| {
            c.execute(
                "INSERT INTO message_reads (message_id, session, read_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![id, session, at],
            )
            .unwrap();
        };
        msg(1, "A/x", B);
        msg(2, "A/x", B);
        msg(3, "A/x", ALL_SESSIONS);
        msg(4, "A/x", ALL_SESSIONS);
        msg(5, B, ALL_SESSIONS);
        msg(6, "A/x", ALL_SESSIONS);
        msg(7, "A/x", C);
        read(1, B, 1_700_000_100_001);
        read(3, B, 1_700_000_100_003);
        read(6, B, 1_700_000_100_006);
        read(3, C, 1_700_000_200_003);
        read(4, C, 1_700_000_200_004);
    });
    let s = LocalStore::open(&db).unwrap();
    // B: its direct #1 read, #2 not; broadcasts #3 and #6 read, #4 not;
    // #5 is B's own broadcast, read for B now (v1.1).
    assert_eq!(
        read_map(&s, B),
        [
            (1, true),
            (2, false),
            (3, true),
            (4, false),
            (5, true),
            (6, true)
        ]
    );
    assert_eq!(unread_ids(&s, B), [2, 4]);
    assert_eq!(
        read_map(&s, C),
        [(3, true), (4, true), (5, false), (6, false), (7, false)]
    );
    assert_eq!(unread_ids(&s, C), [5, 6, 7]);
    // The read times of direct messages and of broadcasts above the mark
    // are kept exactly.
    let all = s.messages(&q(B, false)).unwrap();
    let at = |id: i64| all.iter().find(|m| m.id == id).unwrap().read_at;
    assert_eq!(at(1).map(|t| t.timestamp_millis()), Some(1_700_000_100_001));
    assert_eq!(at(6).map(|t| t.timestamp_millis()), Some(1_700_000_100_006));
    assert!(at(3).is_some());
    assert_eq!(at(2), None);
    drop(s);
    let c = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 8);

    // Reading #4 moves B's mark over #5 (own) and #6: no exceptions left.
    let s = LocalStore::open(&db).unwrap();
    s.write(
        &Write::MarkRead {
            id: 4,
            session: B.into(),
        },
        None,
    )
    .unwrap();
    assert_eq!(unread_ids(&s, B), [2]);
    let left: i64 = c
        .query_row(
            "SELECT count(*) FROM message_reads WHERE session = ?1",
            [B],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    let upto: i64 = c
        .query_row(
            "SELECT upto FROM broadcast_marks WHERE session = ?1",
            [B],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(upto, 6);
}

/// 150 messages to B; then newest-first pages with a count.
fn newest_first(b: &dyn Coord) {
    for i in 1..=150 {
        let to = if i % 10 == 0 { ALL_SESSIONS } else { B };
        b.write(&message(to, &format!("n{i}")), None).unwrap();
    }
    let page = b
        .messages_page(&MessageQuery {
            session: B.into(),
            unread_only: true,
            limit: Some(10),
            newest_first: true,
            after_id: None,
            sent: false,
        })
        .unwrap();
    let bodies: Vec<&str> = page.messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "n150", "n149", "n148", "n147", "n146", "n145", "n144", "n143", "n142", "n141"
        ]
    );
    assert_eq!(page.total, Some(150));
    // after_id: only the newer ones, oldest first by default.
    let after = b
        .messages_page(&MessageQuery {
            session: B.into(),
            unread_only: true,
            limit: Some(100),
            newest_first: false,
            after_id: Some(page.messages[2].id),
            sent: false,
        })
        .unwrap();
    assert_eq!(
        after
            .messages
            .iter()
            .map(|m| m.body.as_str())
            .collect::<Vec<_>>(),
        ["n149", "n150"]
    );
    assert_eq!(after.total, Some(2));
    // Oldest first without order, as in v1.
    let asc = b.messages(&MessageQuery {
        session: B.into(),
        unread_only: true,
        limit: Some(3),
        ..Default::default()
    });
    assert_eq!(
        asc.unwrap()
            .iter()
            .map(|m| m.body.as_str())
            .collect::<Vec<_>>(),
        ["n1", "n2", "n3"]
    );
}

#[test]
fn newest_first_with_a_count_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    newest_first(&LocalStore::open(&dir.path().join("s.db")).unwrap());
}

#[test]
fn newest_first_with_a_count_through_coord_serve() {
    let s = Server::start(&[]);
    newest_first(&HttpCoord::new(&s.url, None, Duration::from_secs(10)));
}

/// The hook and `msg inbox` with 1,500 unread: the count is exact, the
/// newest show.
fn fifteen_hundred(m: &Machine) {
    // One after another: starting many processes at once fails now and
    // then under wine (Os 1359).
    for n in 0..30 {
        m.session("sender", &["msg", "send", "BOX", &format!("batch {n}")])
            .assert()
            .success();
    }
    let (_, ctx) = m.hook_context(None);
    assert!(
        ctx.contains("UNREAD COORD MESSAGES: 30 for BOX/claude-main"),
        "{ctx}"
    );
    let out = m.coord(&["msg", "inbox", "--limit", "5"]).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("25 older unread messages not shown"),
        "{text}"
    );
}

#[test]
fn the_hook_shows_the_newest_and_the_exact_count_on_both_backends() {
    let m = Machine::new("BOX");
    fifteen_hundred(&m);
    let s = Server::start(&[]);
    let r = Machine::remote("BOX", &s.url);
    fifteen_hundred(&r);
    // Far more than a block holds: the newest shows, the count is exact.
    let c = HttpCoord::new(&s.url, None, Duration::from_secs(30));
    for i in 0..1_470 {
        c.write(&message("BOX/claude-main", &format!("bulk {i}")), None)
            .unwrap();
    }
    let (v, ctx) = r.hook_context(None);
    assert!(
        ctx.contains("UNREAD COORD MESSAGES: 1500 for BOX/claude-main"),
        "{ctx}"
    );
    assert!(ctx.contains("| bulk 1469\n"), "{ctx}");
    assert!(v["systemMessage"].as_str().unwrap().contains("1500 unread"));
    let out = r.coord(&["msg", "inbox", "--limit", "3"]).output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("bulk 1469"), "{text}");
    assert!(
        text.contains("1497 older unread messages not shown"),
        "{text}"
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

/// A v1 server: answers GET /messages oldest first up to `limit`, ignoring
/// `order` and `after_id`, and sends no count.
fn v1_server(n: i64) -> Fake {
    Fake::start(move |req| {
        let line = req.lines().next().unwrap_or("");
        if line.contains("/messages?") {
            let limit: i64 = line
                .split(['?', '&', ' '])
                .find_map(|kv| kv.strip_prefix("limit="))
                .and_then(|l| l.parse().ok())
                .unwrap_or(100);
            let msgs: Vec<Value> = (1..=n.min(limit))
                .map(|i| {
                    json!({"id": i, "from_session": "A/x", "to_session": "BOX/claude-main",
                           "subject": null, "body": format!("v1 message {i}"),
                           "created_by_user": "u", "created_by_machine": "A",
                           "created_at": format!("2026-11-25T08:{:02}:{:02}", i / 60 % 60, i % 60),
                           "read": false, "read_at": null})
                })
                .collect();
            http_answer(200, &Value::Array(msgs).to_string())
        } else {
            http_answer(200, "[]")
        }
    })
}

#[test]
fn against_a_v1_server_that_ignores_order_the_newest_still_show() {
    let fake = v1_server(150);
    let m = Machine::remote("BOX", &fake.url);
    let (_, ctx) = m.hook_context(None);
    assert!(ctx.contains("UNREAD COORD MESSAGES: 150 for"), "{ctx}");
    assert!(ctx.contains("| v1 message 150\n"), "{ctx}");
    assert!(!ctx.contains("note:"), "{ctx}");
    let out = m
        .coord(&["--json", "msg", "inbox", "--limit", "2"])
        .output()
        .unwrap();
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got[0]["id"], 149);
    assert_eq!(got[1]["id"], 150);
    assert!(stderr(&out).contains("148 older"), "{}", stderr(&out));
    // More than it will ever give: the count is marked as a floor.
    let fake = v1_server(1500);
    let m = Machine::remote("BOX", &fake.url);
    let (_, ctx) = m.hook_context(None);
    assert!(ctx.contains("UNREAD COORD MESSAGES: 1000+ for"), "{ctx}");
}

#[test]
fn a_session_new_to_the_fleet_sees_the_last_weeks_broadcasts_not_a_years() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let s = LocalStore::open(&db).unwrap();
    let send = |to: &str, body: &str| {
        s.send_message(NewMessage {
            to_session: to.into(),
            body: body.into(),
            subject: None,
            from_session: "A/x".into(),
            created_by_user: "u".into(),
            created_by_machine: "A".into(),
            in_reply_to: None,
        })
        .unwrap()
        .id
    };
    let old = send(ALL_SESSIONS, "a year ago");
    let old_direct = send(B, "an old direct one");
    let week = send(ALL_SESSIONS, "eight days ago");
    // C read the first broadcast back then: its mark is there.
    s.write(
        &Write::MarkRead {
            id: old,
            session: C.into(),
        },
        None,
    )
    .unwrap();
    let recent = send(ALL_SESSIONS, "yesterday");
    let day = 86_400_000i64;
    let c = rusqlite::Connection::open(&db).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    for (id, age) in [
        (old, 365 * day),
        (old_direct, 365 * day),
        (week, 8 * day),
        (recent, day),
    ] {
        c.execute(
            "UPDATE messages SET created_at = ?2 WHERE id = ?1",
            rusqlite::params![id, now - age],
        )
        .unwrap();
    }
    // A new session: the last week's broadcasts and every direct one.
    assert_eq!(unread_ids(&s, B), [old_direct, recent]);
    assert_eq!(s.unread_count(B).unwrap(), Some(2));
    // A session away for longer than a week, with a mark: everything since.
    assert_eq!(unread_ids(&s, C), [week, recent]);
    // Reading the one it sees sets its mark; nothing older comes back.
    s.write(
        &Write::MarkRead {
            id: recent,
            session: B.into(),
        },
        None,
    )
    .unwrap();
    assert_eq!(unread_ids(&s, B), [old_direct]);
    let after: i64 = c
        .query_row(
            "SELECT upto FROM broadcast_marks WHERE session = ?1",
            [B],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(after, recent);
}

#[test]
fn a_cached_read_is_not_compiled_again_for_new_values() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(&dir.path().join("s.db")).unwrap();
    assert_eq!(s.unread_recompiles("B/claude-main", 20).unwrap(), 0);
}

#[test]
fn the_hooks_reads_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(&dir.path().join("s.db")).unwrap();
    let plans = s
        .hook_query_plans(&coord_hook::hook::queries("B/claude-main", "howard"))
        .unwrap();
    assert!(!plans.is_empty());
    for line in &plans {
        // A full scan of a table (not of a small subquery result) is what
        // makes a read grow with history. Plans name tables by their alias
        // (`m`, `r`, `b`, `x`), so every SCAN must be of a subquery.
        if let Some(what) = line.strip_prefix("SCAN ") {
            assert!(
                what.starts_with("(subquery-") || what == "CONSTANT ROW" || what.contains("USING"),
                "a table scan: {line}\n{plans:#?}"
            );
        }
    }
    // And the unread ranges come from the indexes made for them.
    // Other users' rows are no part of this session's reads: the todos
    // come from this user's range and everyone's, never from a walk over
    // every user's pending todos (`todos_status (status=?)`).
    assert!(
        !plans
            .iter()
            .any(|l| l.ends_with("USING INDEX todos_status (status=?)")),
        "the todo read walks every user's todos:\n{plans:#?}"
    );
    for index in [
        "messages_unread",
        "messages_to",
        "messages_broadcast_age (created_at<?)",
        "todos_pending_user (status=? AND user=?)",
        "locks_holder",
    ] {
        assert!(
            plans
                .iter()
                .any(|l| l.contains(&format!("USING INDEX {index}"))
                    || l.contains(&format!("USING COVERING INDEX {index}"))),
            "{index} unused:\n{plans:#?}"
        );
    }
}

#[test]
fn a_blocked_store_makes_writes_wait_not_reads_or_health() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("busy.db");
    let s = Server::start_with(&db, "127.0.0.1:0", &[]);
    let c = HttpCoord::new(&s.url, None, Duration::from_secs(30));
    let send = |body: &str| message(B, body);
    c.write(&send("before"), None).unwrap();
    // Another process holds the store's write lock.
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let url = s.url.clone();
    let writer = std::thread::spawn(move || {
        let c = HttpCoord::new(&url, None, Duration::from_secs(30));
        c.write(&send("waited"), None)
    });
    std::thread::sleep(Duration::from_millis(300));
    // Reads and /health answer meanwhile (a short client deadline: the old
    // server made them wait behind the write for the whole busy timeout).
    let quick = HttpCoord::new(&s.url, None, Duration::from_secs(3));
    for _ in 0..5 {
        assert_eq!(quick.health().unwrap()["status"], "ok");
        let got = quick.messages(&q(B, true)).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
    }
    assert!(!writer.is_finished(), "the write did not wait for the lock");
    blocker.execute_batch("COMMIT").unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(c.messages(&q(B, true)).unwrap().len(), 2);
}

#[test]
fn unread_counts_for_many_sessions_are_each_sessions_own_count() {
    use coord_hook::backend::Coord;
    use coord_hook::model::*;
    let dir = tempfile::tempdir().unwrap();
    let s = coord_hook::store::LocalStore::open(&dir.path().join("c.db")).unwrap();
    let who = ["A/one", "B/two", "C/three", "D/never"];
    let send = |from: &str, to: &str| {
        let mut w = crate::common::message(to, "x");
        if let Write::SendMessage(m) = &mut w {
            m.from_session = from.into();
        }
        match s.write(&w, None).unwrap() {
            Written::Message(m) => m.id,
            _ => unreachable!(),
        }
    };
    let mut broadcasts = Vec::new();
    for i in 0..30 {
        let from = who[i % 3];
        let to = if i % 3 == 0 {
            ALL_SESSIONS
        } else {
            who[(i + 1) % 4]
        };
        let id = send(from, to);
        if to == ALL_SESSIONS {
            broadcasts.push(id);
        }
    }
    // Reads of every kind: direct, a broadcast below and above a mark, an
    // own broadcast.
    for (reader, id) in [
        ("B/two", broadcasts[0]),
        ("B/two", broadcasts[3]),
        ("C/three", broadcasts[5]),
        ("A/one", broadcasts[1]),
    ] {
        s.write(
            &Write::MarkRead {
                id,
                session: reader.into(),
            },
            None,
        )
        .unwrap();
    }
    let direct = s
        .messages(&MessageQuery {
            session: "B/two".into(),
            unread_only: true,
            ..Default::default()
        })
        .unwrap();
    for m in direct.iter().filter(|m| m.to_session == "B/two").take(3) {
        s.write(
            &Write::MarkRead {
                id: m.id,
                session: "B/two".into(),
            },
            None,
        )
        .unwrap();
    }
    let sessions: Vec<String> = who.iter().map(|w| w.to_string()).collect();
    let many = s.unread_counts(&sessions).unwrap();
    assert!(many.iter().all(|n| n.is_some_and(|n| n > 0)), "{many:?}");
    assert_ne!(many[0], many[1]);
    for (w, n) in who.iter().zip(many) {
        assert_eq!(n, s.unread_count(w).unwrap(), "{w}");
    }
}

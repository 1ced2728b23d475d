//! Bounded growth (issue 12): idempotency keys keep a reference, not the
//! answer; `coord serve --retain` deletes what is past keeping; the file
//! shrinks.

use std::time::Duration;

use coord_hook::backend::Coord;
use coord_hook::model::*;
use coord_hook::store::LocalStore;

fn send(s: &LocalStore, from: &str, to: &str, body: &str, key: Option<&str>) -> Message {
    match s
        .write(
            &Write::SendMessage(NewMessage {
                to_session: to.into(),
                body: body.into(),
                subject: None,
                from_session: from.into(),
                created_by_user: "u".into(),
                created_by_machine: "A".into(),
                in_reply_to: None,
            }),
            key,
        )
        .unwrap()
    {
        Written::Message(m) => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_idempotency_key_keeps_a_reference_and_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let s = LocalStore::open(&db).unwrap();
    let big = "x".repeat(500_000);
    let first = send(&s, "A/x", "B/y", &big, Some("k-1"));
    let again = send(&s, "A/x", "B/y", &big, Some("k-1"));
    assert_eq!(first, again);
    let c = rusqlite::Connection::open(&db).unwrap();
    let (stored, count): (i64, i64) = c
        .query_row(
            "SELECT sum(length(body)), count(*) FROM idempotency",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(count, 1);
    assert!(stored < 100, "the key kept {stored} bytes of answer");
    let n: i64 = c
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn retention_deletes_what_is_past_keeping_and_the_file_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let s = LocalStore::open(&db).unwrap();
    let body = "y".repeat(20_000);
    let mut ids = Vec::new();
    for i in 0..300 {
        let to = if i % 3 == 0 { ALL_SESSIONS } else { "B/y" };
        ids.push(send(&s, "A/x", to, &body, None).id);
    }
    // Half the messages read, and the first broadcast (B/y has a mark, so
    // old broadcasts above it are unread for it); everything made 100
    // days ago.
    for id in ids.iter().filter(|i| *i % 2 == 0 || **i == ids[0]) {
        let _ = s.write(
            &Write::MarkRead {
                id: *id,
                session: "B/y".into(),
            },
            None,
        );
    }
    let todo = match s
        .write(
            &Write::AddTodo(NewTodo {
                text: "old and done".into(),
                user: None,
                project: None,
                parent_id: None,
                source: None,
                auto: false,
                created_by_user: "u".into(),
                created_by_machine: "A".into(),
            }),
            None,
        )
        .unwrap()
    {
        Written::Todo(t) => t,
        other => panic!("{other:?}"),
    };
    s.write(
        &Write::CompleteTodo {
            id: todo.id,
            completed_by: "u".into(),
        },
        None,
    )
    .unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    let old = chrono::Utc::now().timestamp_millis() - 100 * 24 * 3600 * 1000;
    c.execute_batch(&format!(
        "UPDATE messages SET created_at = {old}; UPDATE todos SET completed_at = {old};"
    ))
    .unwrap();
    let unread_before = s
        .messages(&MessageQuery {
            session: "B/y".into(),
            unread_only: true,
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap()
        .len();
    let size_before = std::fs::metadata(&db).unwrap().len()
        + std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());

    let p = s.purge(90).unwrap();
    // Read direct messages and all old broadcasts go; unread direct stay.
    let direct_read = ids.iter().filter(|i| *i % 2 == 0 && *i % 3 != 1).count();
    assert!(p.messages > 0, "{p:?}");
    assert_eq!(p.todos, 1);
    let left: i64 = c
        .query_row(
            "SELECT count(*) FROM messages WHERE read_at IS NOT NULL OR to_session = 'ALL_SESSIONS'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "{direct_read}");
    let unread_after = s
        .messages(&MessageQuery {
            session: "B/y".into(),
            unread_only: true,
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert!(unread_after.iter().all(|m| m.to_session == "B/y"));
    assert!(unread_after.len() < unread_before);
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let size_after = std::fs::metadata(&db).unwrap().len();
    let free: i64 = c
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    assert_eq!(free, 0, "every freed page was given back");
    assert!(
        size_after < size_before / 2,
        "{size_before} -> {size_after}"
    );
    // Recent things are kept.
    let fresh = send(&s, "A/x", "B/y", "new", None);
    s.purge(90).unwrap();
    assert!(
        s.messages(&MessageQuery {
            session: "B/y".into(),
            unread_only: true,
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .any(|m| m.id == fresh.id)
    );
}

#[test]
fn serve_refuses_a_retention_under_a_week_and_rewrites_an_old_store_once() {
    let m = crate::common::Machine::new("BOX");
    let out = m
        .coord(&["serve", "--listen", "127.0.0.1:0", "--retain", "3"])
        .timeout(Duration::from_secs(10))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A store made without auto_vacuum is made able to shrink at start.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(include_str!("../fixtures/schema-v1.sql"))
            .unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
    }
    let s = crate::common::Server::start_with(&db, "127.0.0.1:0", &[]);
    assert!(s.log_text().contains("rewritten once"), "{}", s.log_text());
    drop(s);
    let c = rusqlite::Connection::open(&db).unwrap();
    let mode: i64 = c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, 2);
}

#[test]
fn retention_in_batches_beside_writers_loses_nothing_unread_and_leaves_nothing_old() {
    // 3,500 old messages (more than three batches): read direct ones,
    // broadcasts, and unread direct ones, which are never deleted.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let s = LocalStore::open(&db).unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    let old = chrono::Utc::now().timestamp_millis() - 100 * 24 * 3600 * 1000;
    c.execute_batch("BEGIN").unwrap();
    for i in 0..3_500i64 {
        let (to, read) = match i % 3 {
            0 => ("ALL_SESSIONS", "NULL".to_string()),
            1 => ("B/y", old.to_string()),
            _ => ("B/y", "NULL".to_string()),
        };
        c.execute(
            &format!(
                "INSERT INTO messages (from_session, to_session, body, created_by_user, created_by_machine, created_at, read_at) \
                 VALUES ('A/x', ?1, 'old', 'u', 'A', ?2, {read})"
            ),
            rusqlite::params![to, old],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    let unread_old: i64 = c
        .query_row(
            "SELECT count(*) FROM messages WHERE to_session = 'B/y' AND read_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Writers beside it, through their own connections, as coord serve's.
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            let w = LocalStore::open(&db).unwrap();
            (0..200)
                .map(|i| send(&w, "C/z", "B/y", &format!("new {i}"), None).id)
                .collect::<Vec<i64>>()
        })
    };
    let p = s.purge(90).unwrap();
    let new_ids = writer.join().unwrap();
    assert_eq!(p.messages as i64, 3_500 - unread_old, "{p:?}");
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count(
            "SELECT count(*) FROM messages WHERE body = 'old' AND (read_at IS NOT NULL OR to_session = 'ALL_SESSIONS')"
        ),
        0
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM messages WHERE body = 'old' AND read_at IS NULL AND to_session = 'B/y'"
        ),
        unread_old
    );
    assert_eq!(
        count("SELECT count(*) FROM messages WHERE from_session = 'C/z'"),
        200
    );
    assert_eq!(new_ids.len(), 200);
    // A pass ends by emptying the WAL (here one after the writers are
    // done, which finds nothing more to delete).
    assert_eq!(s.purge(90).unwrap().messages, 0);
    let wal = std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());
    assert!(wal < 1024 * 1024, "WAL left at {wal} bytes");
}

//! The stores the bench measures against: a small fresh one, and one with
//! a history (written straight into the schema).

use std::path::Path;

use coord_hook::backend::Coord;
use coord_hook::model::*;
use coord_hook::store::LocalStore;

use crate::SESSION;

/// 20 unread messages, 5 todos, 2 locks for BENCH/claude-main.
pub fn seed(db: &Path) {
    let s = LocalStore::open(db).expect("store");
    for i in 0..20 {
        s.write(
            &Write::SendMessage(NewMessage {
                to_session: if i % 5 == 0 { ALL_SESSIONS.into() } else { SESSION.into() },
                body: format!("status update {i}: the deploy of api 1.{i} went fine.\nLogs are in the usual place."),
                subject: Some(format!("update {i}")),
                from_session: "OTHER/claude-main".into(),
                created_by_user: "bench".into(),
                created_by_machine: "OTHER".into(),
                in_reply_to: None,
            }),
            None,
        )
        .expect("seed message");
    }
    for i in 0..5 {
        s.write(
            &Write::AddTodo(NewTodo {
                text: format!("todo number {i}"),
                user: if i % 2 == 0 {
                    Some("bench".into())
                } else {
                    None
                },
                project: Some("web".into()),
                parent_id: None,
                source: None,
                auto: false,
                created_by_user: "bench".into(),
                created_by_machine: "BENCH".into(),
            }),
            None,
        )
        .expect("seed todo");
    }
    for r in ["deploy", "db-migrate"] {
        s.write(
            &Write::ClaimLock(NewLock {
                project: "web".into(),
                resource: r.into(),
                session_id: SESSION.into(),
                ttl_hours: Some(2.0),
                note: None,
                paths: vec![],
            }),
            None,
        )
        .expect("seed lock");
    }
}

/// A store with history: 100,000 messages to the session that it has read,
/// 10,000 read broadcasts and 50,000 expired locks, then the usual 20
/// unread, 5 todos and 2 locks on top. Written straight into the schema
/// (in one transaction) because 110,000 writes one by one would take
/// minutes; the read state is the one the store itself keeps.
pub fn seed_history(db: &Path) {
    drop(LocalStore::open(db).expect("store"));
    let mut c = rusqlite::Connection::open(db).expect("open");
    let tx = c.transaction().expect("tx");
    let now = chrono::Utc::now().timestamp_millis();
    {
        let mut m = tx
            .prepare(
                "INSERT INTO messages (from_session, to_session, subject, body, created_by_user, \
                 created_by_machine, created_at, read_at) VALUES (?1, ?2, NULL, ?3, 'old', 'OLD', ?4, ?5)",
            )
            .expect("prepare");
        for i in 0..110_000i64 {
            let broadcast = i % 11 == 0;
            let to = if broadcast { ALL_SESSIONS } else { SESSION };
            let at = now - 86_400_000 + i;
            let read_at = (!broadcast).then_some(at + 1000);
            m.execute(rusqlite::params![
                "OLD/claude-main",
                to,
                format!("old message {i}: something that happened a while ago"),
                at,
                read_at
            ])
            .expect("insert message");
        }
        let upto: i64 = tx
            .query_row(
                "SELECT max(id) FROM messages WHERE to_session = 'ALL_SESSIONS'",
                [],
                |r| r.get(0),
            )
            .expect("max");
        // The bench session and an idle one have read every old broadcast.
        for who in [SESSION, "IDLE/claude-main"] {
            tx.execute(
                "INSERT INTO broadcast_marks (session, upto, at) VALUES (?1, ?2, ?3)",
                rusqlite::params![who, upto, now],
            )
            .expect("mark");
        }
        let mut l = tx
            .prepare(
                "INSERT INTO locks (project, resource, session_id, note, created_at, expires_at) \
                 VALUES ('old', ?1, ?2, NULL, ?3, ?4)",
            )
            .expect("prepare");
        for i in 0..50_000i64 {
            let holder = if i % 2 == 0 {
                SESSION
            } else {
                "OLD/claude-main"
            };
            l.execute(rusqlite::params![
                format!("r{i}"),
                holder,
                now - 7_200_000,
                now - 3_600_000
            ])
            .expect("insert lock");
        }
    }
    tx.commit().expect("commit");
    seed(db);
}

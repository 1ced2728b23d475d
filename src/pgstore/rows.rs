//! PostgreSQL rows into the contract's objects, and the column lists the
//! queries select (the same order as the SQLite store's).

use postgres::Row;

use crate::model::*;

/// A database row's columns into a message (`replies_to`'s text in column 9, `read_at` in 10).
pub(super) fn message_row(r: &Row) -> Message {
    let read_at: Option<i64> = r.get(10);
    let text = |b: Vec<u8>| {
        String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    };
    Message {
        id: r.get(0),
        from_session: r.get(1),
        to_session: r.get(2),
        subject: r.get::<_, Option<Vec<u8>>>(3).map(text),
        body: text(r.get(4)),
        created_by_user: r.get(5),
        created_by_machine: r.get(6),
        created_at: from_millis(r.get(7)),
        read: read_at.is_some(),
        read_at: read_at.map(from_millis),
        in_reply_to: r.get(8),
        read_by: None,
        replies_to: r
            .get::<_, Option<Vec<u8>>>(9)
            .map(|b| first_line(&String::from_utf8_lossy(&b))),
    }
}

pub(super) const MESSAGE_COLS: &str = "m.id, m.from_session, m.to_session, m.subject, m.body, \
     m.created_by_user, m.created_by_machine, m.created_at, m.in_reply_to, \
     (SELECT substring(p.body from 1 for 800) FROM messages p WHERE p.id = m.in_reply_to)";

/// When session `$1` read message `m` (see the SQLite store's `READ_AT`).
pub(super) const READ_AT: &str = "CASE WHEN m.from_session = $1 THEN m.created_at \
     WHEN m.to_session <> 'ALL_SESSIONS' THEN m.read_at \
     WHEN m.id <= COALESCE(b.upto, 0) THEN COALESCE(r.read_at, b.at) \
     ELSE r.read_at END";

pub(super) const READ_JOINS: &str = "LEFT JOIN message_reads r ON r.message_id = m.id AND r.session = $1 \
     LEFT JOIN broadcast_marks b ON b.session = $1";

pub(super) const SESSION_COLS: &str =
    "session_id, \"user\", machine, name, project, client, first_seen, last_seen, closed_at";

pub(super) fn session_row(r: &Row) -> Session {
    Session {
        session_id: r.get(0),
        user: r.get(1),
        machine: r.get(2),
        name: r.get(3),
        project: r.get(4),
        client: r.get(5),
        first_seen: from_millis(r.get(6)),
        last_seen: from_millis(r.get(7)),
        state: None,
        closed_at: None,
        active: None,
    }
    .with_state(
        r.get::<_, Option<i64>>(8).map(from_millis),
        &crate::clock::now(),
    )
}

pub(super) const TODO_COLS: &str = "id, text, \"user\", project, parent_id, source, auto, status, \
     created_by_user, created_by_machine, created_at, completed_by, completed_at";

pub(super) fn todo_row(r: &Row) -> Todo {
    let status: String = r.get(7);
    Todo {
        id: r.get(0),
        text: r.get(1),
        user: r.get(2),
        project: r.get(3),
        parent_id: r.get(4),
        source: r.get(5),
        auto: r.get(6),
        status: if status == "done" {
            TodoStatus::Done
        } else {
            TodoStatus::Pending
        },
        created_by_user: r.get(8),
        created_by_machine: r.get(9),
        created_at: from_millis(r.get(10)),
        completed_by: r.get(11),
        completed_at: r.get::<_, Option<i64>>(12).map(from_millis),
    }
}

pub(super) const LOCK_COLS: &str =
    "id, project, resource, session_id, note, created_at, expires_at, paths";

pub(super) fn lock_row(r: &Row) -> Lock {
    Lock {
        id: r.get(0),
        project: r.get(1),
        resource: r.get(2),
        session_id: r.get(3),
        note: r.get(4),
        created_at: from_millis(r.get(5)),
        expires_at: from_millis(r.get(6)),
        paths: paths_from_column(r.get(7)),
    }
}

pub(super) fn component_row(r: &Row) -> Component {
    Component {
        project: r.get(0),
        component: r.get(1),
        state: r.get(2),
        version: r.get(3),
        notes: r.get(4),
        updated_by: r.get(5),
        updated_at: from_millis(r.get(6)),
    }
}

pub(super) fn workflow_row(r: &Row) -> Workflow {
    Workflow {
        name: r.get(0),
        state: r.get(1),
        detail: r.get(2),
        updated_by: r.get(3),
        updated_at: from_millis(r.get(4)),
    }
}

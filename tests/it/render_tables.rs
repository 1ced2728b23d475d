//! Snapshots of every human table and listing, on fixed data and a fixed
//! clock so they are stable.

use chrono::{TimeZone, Utc};
use coord_hook::model::*;
use coord_hook::render::{self, Style};

fn at(h: u32, m: u32) -> Time {
    Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap()
}

fn now() -> Time {
    at(11, 12)
}

fn message(id: i64, to: &str, subject: Option<&str>, body: &str) -> Message {
    Message {
        id,
        from_session: "HOWARD-HOME/claude-main".into(),
        to_session: to.into(),
        subject: subject.map(Into::into),
        body: body.into(),
        created_by_user: "howard".into(),
        created_by_machine: "HOWARD-HOME".into(),
        created_at: at(8, 12),
        read: false,
        read_at: None,
        in_reply_to: None,
        read_by: None,
        replies_to: None,
    }
}

fn lock(id: i64, resource: &str, expires: Time) -> Lock {
    Lock {
        id,
        project: "web".into(),
        resource: resource.into(),
        session_id: "HOWARD-WORK/claude-main".into(),
        note: Some("cutting release".into()),
        created_at: at(9, 0),
        expires_at: expires,
        paths: vec![],
    }
}

#[test]
fn inbox_listing() {
    let msgs = vec![
        message(
            12,
            "ALL_SESSIONS",
            Some("deploy"),
            "api is live\n\tcheck the logs",
        ),
        message(13, "HOWARD-HOME/two", None, "evil \x1b[2J clear\u{202e}"),
    ];
    insta::assert_snapshot!(render::messages(&msgs, &now(), &Style::default()));
}

#[test]
fn todo_table() {
    let todos = vec![
        Todo {
            id: 3,
            text: "fix the flaky test\nin ci".into(),
            user: None,
            project: Some("web".into()),
            parent_id: None,
            source: None,
            auto: false,
            status: TodoStatus::Pending,
            created_by_user: "howard".into(),
            created_by_machine: "HOWARD-HOME".into(),
            created_at: at(8, 12),
            completed_by: None,
            completed_at: None,
        },
        Todo {
            id: 4,
            text: "write notes".into(),
            user: Some("alice".into()),
            project: None,
            parent_id: Some(3),
            source: Some("review".into()),
            auto: true,
            status: TodoStatus::Done,
            created_by_user: "howard".into(),
            created_by_machine: "HOWARD-HOME".into(),
            created_at: Utc.with_ymd_and_hms(2026, 11, 20, 7, 0, 0).unwrap(),
            completed_by: Some("HOWARD-HOME/claude-main".into()),
            completed_at: Some(at(10, 0)),
        },
    ];
    insta::assert_snapshot!(render::todos(&todos, &now(), &Style::default()));
}

#[test]
fn lock_table() {
    let locks = vec![
        lock(1, "deploy", at(12, 57)),
        lock(2, "db-migrate", at(11, 20)),
    ];
    insta::assert_snapshot!(render::locks(&locks, &now(), &Style::default()));
}

#[test]
fn status_listing() {
    let st = Status {
        locks: vec![lock(1, "deploy", at(12, 57))],
        components: vec![Component {
            project: "web".into(),
            component: "api".into(),
            state: "deployed".into(),
            version: Some("1.2.0".into()),
            notes: None,
            updated_by: "HOWARD-HOME/claude-main".into(),
            updated_at: at(10, 2),
        }],
        workflows: vec![],
    };
    insta::assert_snapshot!(render::status(&st, &now(), &Style::default()));
}

#[test]
fn colour_only_when_asked() {
    let plain = render::locks(
        &[lock(1, "deploy", at(12, 57))],
        &now(),
        &Style { color: false },
    );
    assert!(!plain.contains('\x1b'));
    let coloured = render::locks(
        &[lock(1, "deploy", at(12, 57))],
        &now(),
        &Style { color: true },
    );
    assert!(coloured.contains("\x1b["));
}

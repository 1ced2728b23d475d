//! One contract suite, run twice: against the embedded store directly, and
//! through the HTTP backend against a real `coord serve`. Both answer
//! through the same `Coord` trait, so the two cannot drift.

use std::time::Duration;

use coord_hook::backend::{Coord, CoordExt};
use coord_hook::client::HttpCoord;
use coord_hook::error::Error;
use coord_hook::model::*;
use coord_hook::store::LocalStore;

fn msg(from: &str, to: &str, body: &str) -> NewMessage {
    NewMessage {
        to_session: to.into(),
        body: body.into(),
        subject: None,
        from_session: from.into(),
        created_by_user: "howard".into(),
        created_by_machine: from.split('/').next().unwrap().into(),
        in_reply_to: None,
    }
}

fn todo(text: &str, user: Option<&str>, project: Option<&str>) -> NewTodo {
    NewTodo {
        text: text.into(),
        user: user.map(Into::into),
        project: project.map(Into::into),
        parent_id: None,
        source: None,
        auto: false,
        created_by_user: "howard".into(),
        created_by_machine: "A".into(),
    }
}

fn lock(session: &str, resource: &str, ttl: Option<f64>) -> NewLock {
    NewLock {
        project: "web".into(),
        resource: resource.into(),
        session_id: session.into(),
        ttl_hours: ttl,
        note: Some("why".into()),
        paths: vec![],
    }
}

fn mark_read(b: &dyn Coord, id: i64, session: &str) -> Result<Written, Error> {
    b.write(
        &Write::MarkRead {
            id,
            session: session.into(),
        },
        None,
    )
}

fn status_of<T: std::fmt::Debug>(r: Result<T, Error>) -> u16 {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.http_status(),
    }
}

fn inbox(b: &dyn Coord, session: &str, unread: bool) -> Vec<Message> {
    b.messages(&MessageQuery {
        session: session.into(),
        unread_only: unread,
        limit: None,
        ..Default::default()
    })
    .unwrap()
}

fn suite(b: &dyn Coord) {
    let (a, bb) = ("A/claude-main", "B/claude-main");

    // POST /messages → Message; GET /messages: to S or ALL_SESSIONS, oldest first.
    // The answer is the message as its sender sees it: own messages are
    // never unread for the session that sent them (v1.1).
    let m1 = b.send_message(msg(a, bb, "one")).unwrap();
    assert_eq!((m1.read, m1.to_session.as_str()), (true, bb));
    let m2 = b.send_message(msg(a, ALL_SESSIONS, "two")).unwrap();
    b.send_message(msg(bb, a, "not for b")).unwrap();
    let got = inbox(b, bb, true);
    assert_eq!(
        got.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![m1.id, m2.id]
    );
    assert_eq!(got[0].body, "one");
    let limited = b
        .messages(&MessageQuery {
            session: bb.into(),
            unread_only: false,
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(limited.len(), 1);
    assert_eq!(
        status_of(b.write(&Write::SendMessage(msg(a, bb, "")), None)),
        422
    );

    // POST /messages/{id}/read: idempotent; broadcast read state per session.
    let read = mark_read(b, m2.id, bb).unwrap();
    let Written::Message(read) = read else {
        panic!()
    };
    assert!(read.read && read.read_at.is_some());
    let again = mark_read(b, m2.id, bb).unwrap();
    let Written::Message(again) = again else {
        panic!()
    };
    assert_eq!(again.read_at, read.read_at);
    assert_eq!(inbox(b, bb, true).len(), 1);
    assert_eq!(inbox(b, bb, false).len(), 2);
    assert!(
        inbox(b, "C/claude-main", true)
            .iter()
            .any(|m| m.id == m2.id),
        "c has not read the broadcast"
    );
    assert!(
        !inbox(b, a, true).iter().any(|m| m.id == m2.id),
        "a sent the broadcast: it is read for a"
    );
    assert_eq!(status_of(mark_read(b, 999_999, bb)), 404);
    assert_eq!(status_of(mark_read(b, m1.id, a)), 403);

    // Idempotency: the same key applies once and answers the first answer.
    let w = Write::SendMessage(msg(a, "C/x", "once"));
    let first = b
        .write(&w, Some("0b3c9a1e-1111-4222-8333-944455556666"))
        .unwrap();
    let second = b
        .write(&w, Some("0b3c9a1e-1111-4222-8333-944455556666"))
        .unwrap();
    assert_eq!(first, second);
    let onces = inbox(b, "C/x", true)
        .into_iter()
        .filter(|m| m.body == "once")
        .count();
    assert_eq!(onces, 1);

    // POST /todos, GET /todos filters, POST /todos/{id}/done.
    let t1 = b
        .write(&Write::AddTodo(todo("for all", None, Some("web"))), None)
        .unwrap();
    let Written::Todo(t1) = t1 else { panic!() };
    assert_eq!(t1.status, TodoStatus::Pending);
    b.write(
        &Write::AddTodo(todo("for alice", Some("alice"), None)),
        None,
    )
    .unwrap();
    b.write(
        &Write::AddTodo(todo("for bob", Some("bob"), Some("web"))),
        None,
    )
    .unwrap();
    let q = |user: Option<&str>, un: bool, project: Option<&str>, status| TodoQuery {
        user: user.map(Into::into),
        include_unassigned: un,
        project: project.map(Into::into),
        status,
        limit: None,
        after_id: None,
    };
    assert_eq!(
        b.todos(&q(None, false, None, StatusFilter::Pending))
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        b.todos(&q(Some("alice"), false, None, StatusFilter::Pending))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        b.todos(&q(Some("alice"), true, None, StatusFilter::Pending))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        b.todos(&q(None, false, Some("web"), StatusFilter::Pending))
            .unwrap()
            .len(),
        2
    );
    let done = b
        .write(
            &Write::CompleteTodo {
                id: t1.id,
                completed_by: a.into(),
            },
            None,
        )
        .unwrap();
    let Written::Todo(done) = done else { panic!() };
    assert_eq!(
        (done.status, done.completed_by.as_deref()),
        (TodoStatus::Done, Some(a))
    );
    let twice = b
        .write(
            &Write::CompleteTodo {
                id: t1.id,
                completed_by: bb.into(),
            },
            None,
        )
        .unwrap();
    let Written::Todo(twice) = twice else {
        panic!()
    };
    assert_eq!(twice.completed_by.as_deref(), Some(a));
    assert_eq!(
        b.todos(&q(None, false, None, StatusFilter::Done))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        b.todos(&q(None, false, None, StatusFilter::All))
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        status_of(b.write(
            &Write::CompleteTodo {
                id: 999_999,
                completed_by: a.into()
            },
            None
        )),
        404
    );
    assert_eq!(
        status_of(b.write(&Write::AddTodo(todo(" ", None, None)), None)),
        422
    );

    // POST /locks: 201 new, 200 renewed, 409 with the holder; ttl bounds.
    let (l, created) = b.claim_lock(lock(a, "deploy", None)).unwrap();
    assert!(created);
    let two_h = l.expires_at - l.created_at;
    assert!((two_h.num_minutes() - 120).abs() <= 1, "{two_h}");
    let (renewed, created) = b.claim_lock(lock(a, "deploy", Some(5.0))).unwrap();
    assert!(!created);
    assert_eq!(renewed.id, l.id);
    assert!(renewed.expires_at > l.expires_at);
    match b.claim_lock(lock(bb, "deploy", None)) {
        Err(Error::Conflict {
            lock: Some(holder), ..
        }) => assert_eq!(holder.session_id, a),
        other => panic!("expected 409 with the holder, got {other:?}"),
    }
    assert_eq!(status_of(b.claim_lock(lock(a, "x", Some(0.0)))), 422);
    assert_eq!(status_of(b.claim_lock(lock(a, "x", Some(168.5)))), 422);
    b.claim_lock(lock(bb, "other", Some(168.0))).unwrap();

    // GET /locks: active only, filters.
    assert_eq!(b.locks(&LockQuery::default()).unwrap().len(), 2);
    let mine = b
        .locks(&LockQuery {
            session_id: Some(a.into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert!(
        b.locks(&LockQuery {
            project: Some("nope".into()),
            ..Default::default()
        })
        .unwrap()
        .is_empty()
    );

    // DELETE /locks/{id}: 403 not yours, force, 404 unknown.
    let rel = |id, session: &str, force| Write::ReleaseLock {
        id,
        session_id: session.into(),
        force,
    };
    assert_eq!(status_of(b.write(&rel(l.id, bb, false), None)), 403);
    b.write(&rel(l.id, bb, true), None).unwrap();
    assert_eq!(status_of(b.write(&rel(l.id, a, false), None)), 404);

    // PUT /components, PUT /workflows, GET /status.
    let comp = |state: &str| Write::SetComponent {
        project: "web app".into(),
        component: "api/v2".into(),
        update: ComponentUpdate {
            state: state.into(),
            version: Some("1.2".into()),
            notes: None,
            updated_by: a.into(),
        },
    };
    b.write(&comp("deploying"), None).unwrap();
    let Written::Component(c) = b.write(&comp("deployed"), None).unwrap() else {
        panic!()
    };
    assert_eq!(
        (c.project.as_str(), c.component.as_str(), c.state.as_str()),
        ("web app", "api/v2", "deployed")
    );
    let wf = Write::SetWorkflow {
        name: "release".into(),
        update: WorkflowUpdate {
            state: "running".into(),
            detail: Some("3/5".into()),
            updated_by: a.into(),
        },
    };
    b.write(&wf, None).unwrap();
    let st = b.status().unwrap();
    assert_eq!(st.locks.len(), 1);
    assert_eq!(st.components.len(), 1);
    assert_eq!(st.components[0].state, "deployed");
    assert_eq!(st.workflows[0].detail.as_deref(), Some("3/5"));

    // Text that looks like SQL or shell comes back verbatim.
    let odd = "'; DROP TABLE messages; -- $(rm -rf /) `x` \u{0}\u{1b}[31m 🦀";
    let m = b.send_message(msg(a, "D/x", odd)).unwrap();
    assert_eq!(m.body, odd);
    assert!(
        inbox(b, "D/x", true)
            .iter()
            .any(|x| x.id == m.id && x.body == odd)
    );
}

#[test]
fn contract_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("c.db")).unwrap();
    suite(&store);
}

#[test]
fn contract_over_http_against_coord_serve() {
    let server = crate::common::Server::start(&[]);
    let client = HttpCoord::new(&format!("{}/", server.url), None, Duration::from_secs(10));
    suite(&client);
}

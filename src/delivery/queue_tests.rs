//! The queue's own tests (kept beside it, with access to its insides).

use super::*;
use crate::delivery::entry::WrittenBy;
use crate::model::{NewMessage, Write};

#[test]
fn a_line_round_trips() {
    let e = Entry::new(
        Write::SendMessage(NewMessage {
            to_session: "B/x".into(),
            body: "hi\n\u{1b}".into(),
            subject: None,
            from_session: "A/x".into(),
            created_by_user: "u".into(),
            created_by_machine: "A".into(),
            in_reply_to: None,
        }),
        "k1".into(),
        WrittenBy {
            user: "u".into(),
            machine: "A".into(),
            session: "A/x".into(),
            api: None,
        },
    );
    let line = e.to_line();
    assert!(!line.contains('\n'));
    assert!(line.contains("\"op\":\"send_message\""));
    assert_eq!(Entry::from_line(&line).unwrap(), e);
    assert!(Entry::from_line("{\"v\":1}").is_err());
}

fn entry(key: &str) -> Entry {
    Entry::new(
        Write::MarkRead {
            id: 999_999,
            session: "A/x".into(),
        },
        key.into(),
        WrittenBy {
            user: "u".into(),
            machine: "A".into(),
            session: "A/x".into(),
            api: None,
        },
    )
}

#[test]
fn a_write_put_back_after_a_killed_drain_is_not_dropped_as_done() {
    // A drain set `k1` aside and was killed before compacting: the
    // queue still holds its line and the progress file its key.
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::new(dir.path().join("coord-queue.jsonl"));
    let e = entry("k1");
    q.append(&e).unwrap();
    q.reject(&e.to_line(), "message 999999 not found").unwrap();
    q.record("key:k1").unwrap();
    assert_eq!(q.retry_rejected().unwrap(), 1);
    // The leftovers were compacted first, so the entry put back is
    // the one that waits, and nothing names it as done.
    assert!(!q.progress_path().exists());
    let waiting: Vec<String> = q
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.unwrap().key)
        .collect();
    assert_eq!(waiting, vec!["k1".to_string()]);
    assert_eq!(std::fs::read_to_string(q.rejected_path()).unwrap(), "");
}

#[test]
fn retry_waits_for_a_running_drain() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::new(dir.path().join("coord-queue.jsonl"));
    let e = entry("k2");
    q.reject(&e.to_line(), "refused").unwrap();
    let held = q.lock_file(".drain", false).unwrap();
    assert!(held.is_some());
    assert!(q.retry_rejected().is_err());
    drop(held);
    assert_eq!(q.retry_rejected().unwrap(), 1);
}

//! A fleet of replicas (issue 22): `coord_api` as a list, tried in order;
//! a replica that cannot be reached hands its requests to the next with the
//! same idempotency key, so nothing is lost, doubled or queued while one
//! answers. Replicas here are `coord serve` processes on one SQLite file
//! (WAL lets several processes share it), the nearest thing to replicas on
//! one database that needs nothing but the binaries.

use crate::common::{Machine, Server, dead_url, stderr};
use serde_json::{Value, json};

fn fleet_machine(name: &str, urls: &[&str]) -> Machine {
    Machine::with_identity(
        name,
        &json!({"user": name.to_lowercase(), "machine": name, "coord_api": urls}),
    )
}

fn queue_len(m: &Machine) -> usize {
    std::fs::read_to_string(m.claude_dir().join("coord-queue.jsonl"))
        .map_or(0, |t| t.lines().filter(|l| !l.trim().is_empty()).count())
}

#[test]
fn a_replica_that_cannot_be_reached_hands_over_to_the_next() {
    let s = Server::start(&[]);
    let dead = dead_url();
    let a = fleet_machine("ALPHA", &[&dead, &s.url]);
    let b = fleet_machine("BRAVO", &[&s.url, &dead]);
    b.arrive(None);
    let sent = a.json(None, &["msg", "send", "BRAVO", "via the second replica"]);
    assert_eq!(sent["to_session"], "BRAVO/claude-main");
    assert_eq!(queue_len(&a), 0, "queued while a replica answered");
    let (_, ctx) = b.hook_context(None);
    assert!(ctx.contains("via the second replica"), "{ctx}");
    // A single URL stays valid beside it.
    let c = Machine::remote("CHARLIE", &s.url);
    let inbox = c.json(None, &["msg", "inbox"]);
    assert!(inbox.as_array().is_some());
}

#[test]
fn a_replica_killed_mid_way_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fleet.db");
    let mut one = Some(Server::start_with(&db, "127.0.0.1:0", &[]));
    let two = Server::start_with(&db, "127.0.0.1:0", &[]);
    let first = one.as_ref().unwrap().url.clone();
    let a = fleet_machine("ALPHA", &[&first, &two.url]);
    let b = fleet_machine("BRAVO", &[&two.url]);
    b.arrive(None);
    for i in 0..20 {
        if i == 10 {
            drop(one.take()); // the first replica dies
        }
        let out = a
            .coord(&["msg", "send", "BRAVO", &format!("message {i}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(queue_len(&a), 0, "queued while a replica answered");
    let inbox: Value = b.json(None, &["msg", "inbox", "--limit", "100"]);
    let mut bodies: Vec<String> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect();
    bodies.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("message {i}")).collect();
    want.sort();
    assert_eq!(bodies, want);
}

#[test]
fn a_queued_write_remembers_the_fleet_not_one_url() {
    let (dead1, dead2) = (dead_url(), dead_url());
    let a = fleet_machine("ALPHA", &[&dead1, &dead2]);
    let out = a
        .coord(&["msg", "send", "--force", "BRAVO/claude-main", "kept"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(a.claude_dir().join("coord-queue.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let remembered = line.to_string();
    assert!(
        remembered.contains(&dead1) && remembered.contains(&dead2),
        "{remembered}"
    );
    // The fleet gains a live replica and keeps one of the old: the same
    // fleet, so the write goes there.
    let s = Server::start(&[]);
    std::fs::write(
        a.identity_path(),
        json!({"user": "alpha", "machine": "ALPHA", "coord_api": [dead2, s.url]}).to_string(),
    )
    .unwrap();
    let synced = a.json(None, &["sync"]);
    assert_eq!(synced["delivered"], 1, "{synced}");
    let b = Machine::remote("BRAVO", &s.url);
    let inbox = b.json(None, &["msg", "inbox"]);
    assert_eq!(inbox[0]["body"], "kept");
}

#[test]
fn a_fleet_entry_that_is_not_a_url_is_named() {
    let m = Machine::with_identity(
        "ALPHA",
        &json!({"user": "a", "machine": "ALPHA", "coord_api": ["http://coord.example.internal:8001", "coord2:8001"]}),
    );
    let out = m.coord(&["status"]).output().unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("\"coord2:8001\" is not an http"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("coord_api"), "{}", stderr(&out));
}

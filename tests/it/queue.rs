//! Never lose a write: the offline queue against a real `coord serve` that
//! the tests stop and start.

use std::process::Stdio;

use crate::common::{Machine, Server, lossy_proxy, stderr, stdout};
use serde_json::Value;

/// A fleet server whose database outlives it, so a test can stop it and
/// start it again on the same port.
struct Fleet {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    addr: String,
    server: Option<Server>,
}

impl Fleet {
    /// Starts the server and a machine that talks to it.
    fn up() -> (Fleet, Machine) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("fleet.db");
        let server = Server::start_with(&db, "127.0.0.1:0", &[]);
        let m = Machine::remote("BOX", &server.url);
        let addr = server.addr();
        (
            Fleet {
                _dir: dir,
                db,
                addr,
                server: Some(server),
            },
            m,
        )
    }

    fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }

    fn restart(&mut self) {
        self.server = Some(Server::start_with(&self.db, &self.addr, &[]));
    }
}

fn queue_lines(m: &Machine) -> Vec<Value> {
    let path = m.claude_dir().join("coord-queue.jsonl");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every queue line is whole JSON"))
        .collect()
}

fn rejected_lines(m: &Machine) -> Vec<Value> {
    let path = m.claude_dir().join("coord-queue.rejected.jsonl");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs a write that should be queued: exit 0 and the stderr line.
fn offline(m: &Machine, args: &[&str]) {
    let out = m.coord(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("queued (API unreachable"), "{args:?}: {err}");
    assert!(err.contains("run coord sync"), "{err}");
    assert!(stdout(&out).is_empty());
}

fn sync(m: &Machine) -> Value {
    m.json(None, &["sync"])
}

#[test]
fn writes_made_while_the_server_is_down_arrive_exactly_once() {
    let (mut fleet, m) = Fleet::up();
    let msg = m.json(Some("other"), &["msg", "send", "BOX", "read me later"])["id"].to_string();
    let todo = m.json(None, &["todo", "add", "finish me later"])["id"].to_string();
    let lock = m.json(None, &["lock", "claim", "web", "deploy"])["id"].to_string();
    fleet.stop();

    offline(
        &m,
        &[
            "msg",
            "send",
            "fleet",
            "sent while offline",
            "-s",
            "offline",
        ],
    );
    offline(&m, &["msg", "read", &msg]);
    offline(&m, &["todo", "add", "added while offline"]);
    offline(&m, &["todo", "done", &todo]);
    offline(&m, &["lock", "release", &lock]);
    offline(&m, &["component", "set", "web", "api", "deployed"]);
    offline(&m, &["workflow", "set", "release", "paused"]);
    let lines = queue_lines(&m);
    assert_eq!(lines.len(), 7);
    assert!(
        lines
            .iter()
            .all(|l| l["key"].as_str().is_some_and(|k| k.len() == 36))
    );
    assert_eq!(lines[0]["op"], "send_message");
    assert_eq!(lines[0]["identity"]["session"], "BOX/claude-main");

    // A lock claim is never queued.
    let out = m
        .coord(&["lock", "claim", "web", "other"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing was queued"),
        "{}",
        stderr(&out)
    );
    assert_eq!(queue_lines(&m).len(), 7);
    let listed = m.json(None, &["sync", "--list"]);
    assert_eq!(listed.as_array().unwrap().len(), 7);

    // Status says what waits, also while the API is down.
    let out = m.coord(&["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("7 write(s) waiting"),
        "{}",
        stderr(&out)
    );

    // Sync while still down: nothing lost, exit 1.
    let out = m.coord(&["sync"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("7 write(s) still waiting"),
        "{}",
        stderr(&out)
    );
    assert_eq!(queue_lines(&m).len(), 7);
    assert_eq!(queue_lines(&m)[0]["attempts"], 1);

    fleet.restart();
    let out = m.coord(&["status"]).output().unwrap();
    assert!(stdout(&out).contains("QUEUE (7)"), "{}", stdout(&out));
    let r = sync(&m);
    assert_eq!(
        (
            r["delivered"].as_u64(),
            r["waiting"].as_u64(),
            r["rejected"].as_u64()
        ),
        (Some(7), Some(0), Some(0))
    );
    assert!(queue_lines(&m).is_empty());

    let all = m.json(Some("third"), &["msg", "inbox", "--all"]);
    assert_eq!(
        all.as_array()
            .unwrap()
            .iter()
            .filter(|x| x["body"] == "sent while offline")
            .count(),
        1
    );
    assert!(
        m.json(None, &["msg", "inbox"])
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["body"] != "read me later")
    );
    let todos = m.json(None, &["todo", "list", "--status", "all"]);
    assert_eq!(
        todos
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["text"] == "added while offline")
            .count(),
        1
    );
    assert!(
        todos
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["text"] == "finish me later" && t["status"] == "done")
    );
    assert!(
        m.json(None, &["lock", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let st = m.json(None, &["status"]);
    assert_eq!(st["components"][0]["state"], "deployed");
    assert_eq!(st["workflows"][0]["state"], "paused");

    // Again: nothing to deliver.
    let r = sync(&m);
    assert_eq!(r["delivered"], 0);
}

#[test]
fn an_answer_lost_after_the_commit_is_still_applied_once() {
    let server = Server::start(&[]);
    let proxy = lossy_proxy(server.addr(), 1);
    let m = Machine::remote("BOX", &proxy);
    offline(
        &m,
        &["msg", "send", "BOX/inbox", "exactly once please", "--force"],
    );
    assert_eq!(queue_lines(&m).len(), 1);
    let r = sync(&m);
    // The server applied it at the first send: the replay is not counted as
    // a new delivery.
    assert_eq!(r["delivered"], 0);
    assert_eq!(r["already_applied"], 1);
    let direct = Machine::remote("BOX", &server.url);
    let inbox = direct.json(Some("inbox"), &["msg", "inbox"]);
    assert_eq!(
        inbox
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["body"] == "exactly once please")
            .count(),
        1
    );
}

#[test]
fn sixteen_processes_queueing_at_once_leave_sixteen_whole_lines() {
    let url = crate::common::dead_url();
    let m = Machine::remote("BOX", &url);
    let body = "x".repeat(20_000);
    let children: Vec<_> = (0..16)
        .map(|i| {
            m.std_bin(
                "coord",
                None,
                &["msg", "send", "fleet", &format!("{i}:{body}")],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    let lines = queue_lines(&m);
    assert_eq!(lines.len(), 16);
    let mut seen: Vec<String> = lines
        .iter()
        .map(|l| {
            l["payload"]["body"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 16);
}

#[test]
fn a_corrupt_line_is_moved_aside_and_the_rest_delivered() {
    let (mut fleet, m) = Fleet::up();
    fleet.stop();
    for i in 0..3 {
        offline(&m, &["msg", "send", "BOX/inbox", &format!("message {i}")]);
    }
    let path = m.claude_dir().join("coord-queue.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(1, "{\"v\":1,\"key\":\"truncated-by-a-cra");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let listed = m.coord(&["sync", "--list"]).output().unwrap();
    assert!(stdout(&listed).contains("(unreadable line)"));

    fleet.restart();
    let r = sync(&m);
    assert_eq!(
        (r["delivered"].as_u64(), r["rejected"].as_u64()),
        (Some(3), Some(1))
    );
    let rejected = rejected_lines(&m);
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("unreadable queue line")
    );
    assert_eq!(rejected[0]["line"], "{\"v\":1,\"key\":\"truncated-by-a-cra");
    assert_eq!(
        m.json(Some("inbox"), &["msg", "inbox"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn a_404_on_replay_is_moved_to_the_rejected_file_with_the_reason() {
    let (mut fleet, m) = Fleet::up();
    fleet.stop();
    offline(&m, &["msg", "read", "424242"]);
    offline(&m, &["todo", "add", "still fine"]);
    fleet.restart();
    let out = m.coord(&["--json", "sync"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("coord-queue.rejected.jsonl"),
        "{}",
        stderr(&out)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["delivered"].as_u64(), r["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    let rejected = rejected_lines(&m);
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("message 424242 not found")
    );
    assert!(rejected[0]["line"].as_str().unwrap().contains("mark_read"));
    assert!(queue_lines(&m).is_empty());
}

#[test]
fn the_hook_drains_the_queue_first_and_says_so() {
    let (mut fleet, m) = Fleet::up();
    fleet.stop();
    for i in 0..3 {
        offline(&m, &["msg", "send", "BOX/inbox", &format!("queued {i}")]);
    }
    // While the API is still down the hook keeps them and says so.
    let out = m
        .bin("coord-hook", Some("inbox"), &["--timeout", "1000"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("delivered 0 queued write(s); 3 still waiting"),
        "{}",
        stdout(&out)
    );
    assert_eq!(queue_lines(&m).len(), 3);

    fleet.restart();
    let (v, ctx) = m.hook_context(Some("inbox"));
    assert!(
        ctx.contains("coord queue: delivered 3 queued write(s); 0 still waiting"),
        "{ctx}"
    );
    // Delivered before the reads: the messages are in this very block.
    assert!(ctx.contains("UNREAD COORD MESSAGES: 3"), "{ctx}");
    assert!(v["systemMessage"].as_str().unwrap().contains("delivered 3"));
    assert!(queue_lines(&m).is_empty());
}

#[test]
fn drop_discards_one_entry_after_saying_what_it_was() {
    let url = crate::common::dead_url();
    let m = Machine::remote("BOX", &url);
    offline(&m, &["msg", "send", "BOX", "keep"]);
    offline(&m, &["todo", "add", "drop me"]);
    let key = queue_lines(&m)[1]["key"].as_str().unwrap().to_string();
    let out = m.coord(&["sync", "--drop", &key[..8]]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("todo add"), "{}", stdout(&out));
    let left = queue_lines(&m);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["payload"]["body"], "keep");
}

#[test]
fn the_embedded_store_never_queues() {
    let m = Machine::new("BOX");
    m.json(None, &["msg", "send", "BOX", "local"]);
    m.json(None, &["todo", "add", "local"]);
    assert!(!m.claude_dir().join("coord-queue.jsonl").exists());
    let r = sync(&m);
    assert_eq!(r["delivered"], 0);
}

#[test]
fn the_preview_sends_nothing_from_the_queue() {
    let (mut fleet, m) = Fleet::up();
    fleet.stop();
    offline(&m, &["msg", "send", "BOX", "waiting"]);
    fleet.restart();
    let out = m.bin("coord-hook", None, &["--preview"]).output().unwrap();
    assert!(
        stdout(&out).contains("1 queued write(s) waiting"),
        "{}",
        stdout(&out)
    );
    assert_eq!(queue_lines(&m).len(), 1);
}

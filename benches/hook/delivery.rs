//! Delivery states (issue 25), on both backends: how soon what a session
//! start put into a window's context is recorded shown (its waiter reports
//! it), how soon a window whose process ended is known closed, and what
//! the bookkeeping costs the hook — against the binary before it
//! (`COORD_BENCH_BASELINE`, a `coord-hook` built from the commit before
//! delivery states) in the same run, side by side.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coord_hook::backend::{Coord, CoordExt};
use coord_hook::client::HttpCoord;
use coord_hook::model::*;
use coord_hook::store::LocalStore;

use crate::{home::*, measure::*};

/// A stand-in for a Claude Code window: a process that lives until killed.
fn window() -> Child {
    Command::new(std::env::current_exe().expect("this bench"))
        .args(["--sleep", "600"])
        .stdout(Stdio::null())
        .spawn()
        .expect("window process")
}

fn input(home: &Home, source: &str) -> Vec<u8> {
    serde_json::json!({
        "session_id": "0b5e-delivery", "cwd": home.dir,
        "hook_event_name": "SessionStart", "source": source
    })
    .to_string()
    .into_bytes()
}

fn send(b: &dyn Coord, body: &str) -> i64 {
    b.send_message(NewMessage {
        to_session: "BENCH/claude-main".into(),
        body: body.into(),
        subject: None,
        from_session: "PEER/claude-main".into(),
        created_by_user: "peer".into(),
        created_by_machine: "PEER".into(),
        in_reply_to: None,
    })
    .expect("send")
    .id
}

/// Polls `f` every 2 ms (at most `within`); how long until it held.
fn until(within: Duration, f: impl Fn() -> bool) -> Option<f64> {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return Some(start.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

struct Row {
    backend: &'static str,
    shown: Stats,
    closed: Stats,
    start_new: f64,
    start_old: Option<f64>,
}

pub fn run(tmp: &Path, runs: u64) -> String {
    let baseline = std::env::var("COORD_BENCH_BASELINE")
        .ok()
        .filter(|p| Path::new(p).is_file());
    let mut rows = Vec::new();
    for remote in [false, true] {
        let db = tmp.join(format!("delivery-{remote}.db"));
        drop(LocalStore::open(&db).expect("store"));
        let srv = remote.then(|| Server::start(&db, &tmp.join("delivery.log")));
        let identity = match &srv {
            Some(s) => serde_json::json!({"user": "bench", "machine": "BENCH", "coord_api": s.url}),
            None => serde_json::json!({"user": "bench", "machine": "BENCH", "coord_db": db}),
        };
        let home = Home::new(tmp, &format!("delivery-home-{remote}"), identity);
        let backend: Box<dyn Coord> = match &srv {
            Some(s) => Box::new(HttpCoord::new(&s.url, None, Duration::from_secs(5))),
            None => Box::new(LocalStore::open(&db).expect("store")),
        };
        let b = backend.as_ref();
        let mut win = window();
        let pid = win.id().to_string();
        let start = |source: &str| {
            let mut c = home.hook(&[]);
            c.env("CLAUDE_PID", &pid);
            time_once(&mut c, &input(&home, source))
        };
        start("startup");
        for i in 0..20 {
            send(b, &format!("unread {i}"));
        }
        // The session-start hook showing 20 messages in a registered
        // window: today's binary and the one before, alternately.
        let mut new = Vec::new();
        let mut old = Vec::new();
        for _ in 0..runs {
            new.push(start("clear"));
            if let Some(bin) = &baseline {
                let mut o = Command::new(bin);
                o.args(["--format", "json"])
                    .current_dir(&home.dir)
                    .env("HOME", &home.dir)
                    .env("CLAUDE_PID", &pid);
                crate::test_env::clear(&mut o);
                old.push(time_once(&mut o, &input(&home, "clear")));
            }
        }
        // Shown: a message arrives, a session start shows it, its waiter
        // starts beside it (as Claude Code starts both) and reports it.
        let mut shown = Vec::new();
        for i in 0..10 {
            let id = send(b, &format!("to be shown {i}"));
            start("clear");
            let t0 = Instant::now();
            let mut waiter = home.waiter(&pid).spawn().expect("waiter");
            let took = until(Duration::from_secs(10), || {
                b.delivery(id)
                    .ok()
                    .flatten()
                    .is_some_and(|d| d.recipients.iter().any(|r| r.shown_at.is_some()))
            });
            shown.push(took.map_or(10_000.0, |_| t0.elapsed().as_secs_f64() * 1000.0));
            let _ = waiter.kill();
            let _ = waiter.wait();
        }
        // Closed: the window's process ends (killed: no SessionEnd), its
        // waiter tells the fleet.
        let mut closed = Vec::new();
        for _ in 0..5 {
            let w2 = window();
            let pid2 = w2.id().to_string();
            let mut c = home.hook(&[]);
            c.env("CLAUDE_PID", &pid2);
            time_once(&mut c, &input(&home, "startup"));
            let mut waiter = home.waiter(&pid2).spawn().expect("waiter");
            std::thread::sleep(Duration::from_millis(300));
            let mut w2 = w2;
            let _ = w2.kill();
            let _ = w2.wait();
            let t0 = Instant::now();
            // The second window of the machine: the one not claude-main.
            let took = until(Duration::from_secs(20), || {
                b.sessions(None).ok().flatten().is_some_and(|all| {
                    all.iter().any(|s| {
                        s.session_id != "BENCH/claude-main" && s.state.as_deref() == Some(CLOSED)
                    })
                })
            });
            closed.push(took.map_or(20_000.0, |_| t0.elapsed().as_secs_f64() * 1000.0));
            let _ = waiter.kill();
            let _ = waiter.wait();
        }
        let _ = win.kill();
        let _ = win.wait();
        rows.push(Row {
            backend: if remote {
                "coord serve"
            } else {
                "embedded store"
            },
            shown: stats(shown),
            closed: stats(closed),
            start_new: stats(new).median,
            start_old: (!old.is_empty()).then(|| stats(old).median),
        });
    }
    let mut md = String::from("\n## Delivery states (issue 25)\n\n");
    let _ = writeln!(
        md,
        "| backend | block → recorded shown, median / max (ms) | target | process ended → known closed, median / max (ms) | target | session start, 20 shown (ms) | before delivery states (ms) | ratio |"
    );
    let _ = writeln!(md, "|---|---:|---|---:|---|---:|---:|---:|");
    for r in rows {
        let target_closed = if r.backend == "coord serve" {
            "≤ 15 s"
        } else {
            "≤ 1 s"
        };
        let (old, ratio) = match r.start_old {
            Some(o) => (format!("{o:.2}"), format!("{:.3}×", r.start_new / o)),
            None => ("not measured".into(), "-".into()),
        };
        let _ = writeln!(
            md,
            "| {} | {:.0} / {:.0} | ≤ 2,000 | {:.0} / {:.0} | {target_closed} | {:.2} | {old} | {ratio} |",
            r.backend, r.shown.median, r.shown.max, r.closed.median, r.closed.max, r.start_new
        );
    }
    let _ = writeln!(
        md,
        "\nShown is timed from the end of the session-start hook that showed a new message to the sender's store holding its `shown_at`, with the window's waiter started at that moment (Claude Code starts the block and the waiter together; the waiter reports every 400 ms, from its first look). Closed is timed from the window's process being killed (no SessionEnd: the slow path) to `GET /sessions` saying `closed`. The session-start column is the hook in a registered window showing 20 unread messages (ratio target ≤ 1.05×); the baseline is `COORD_BENCH_BASELINE` (a coord-hook built from the commit before), run alternately with today's."
    );
    md
}

//! A year of a big fleet on one box (issue 21): a store of 1,000,000
//! messages beside a fresh one, in the same run. Opt-in
//! (`COORD_BENCH_MILLION=1`): building it takes a while. The store is
//! written straight into the schema (one transaction, prepared statements),
//! then the usual 20 unread, 5 todos and 2 locks go on top through the store.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use coord_hook::backend::{Coord, CoordExt};
use coord_hook::model::*;
use coord_hook::store::LocalStore;

use crate::{COORD, SESSION};
use crate::{fixtures::*, home::*, load::*, measure::*};

/// 1,000,000 messages (a tenth broadcasts; 62% older than 90 days; every
/// direct one to one of 10,000 sessions and read, but a few), 10,001
/// sessions, 100,000 todos (5,000 pending for 1,000 other users, the rest
/// done), 100,000 expired locks.
pub fn seed_million(db: &Path) {
    drop(LocalStore::open(db).expect("store"));
    let mut c = rusqlite::Connection::open(db).expect("open");
    let tx = c.transaction().expect("tx");
    let now = chrono::Utc::now().timestamp_millis();
    let day = 86_400_000i64;
    {
        let mut m = tx
            .prepare(
                "INSERT INTO messages (from_session, to_session, subject, body, created_by_user, \
                 created_by_machine, created_at, read_at) VALUES (?1, ?2, NULL, ?3, 'u', 'M', ?4, ?5)",
            )
            .expect("prepare");
        for i in 0..1_000_000i64 {
            let broadcast = i % 10 == 0;
            let to = if broadcast {
                ALL_SESSIONS.to_string()
            } else {
                format!("M{}/s", i % 10_000)
            };
            // The oldest 62% are 100-400 days old, the rest of this year.
            let at = if i < 620_000 {
                now - 400 * day + i * (300 * day / 620_000)
            } else {
                now - 89 * day + (i - 620_000) * (88 * day / 380_000)
            };
            let read_at = (!broadcast && i % 997 != 0).then_some(at + 1000);
            m.execute(rusqlite::params![
                format!("M{}/s", (i + 1) % 10_000),
                to,
                format!("message {i}"),
                at,
                read_at
            ])
            .expect("insert message");
        }
        let mut s = tx
            .prepare(
                "INSERT INTO sessions (session_id, user, machine, name, project, client, first_seen, last_seen) \
                 VALUES (?1, 'u', ?2, 's', NULL, NULL, ?3, ?3)",
            )
            .expect("prepare");
        for i in 0..10_001i64 {
            s.execute(rusqlite::params![
                format!("M{i}/s"),
                format!("M{i}"),
                now - i * 1000
            ])
            .expect("insert session");
        }
        // Every session has read the broadcasts, the bench's own too: its
        // mark is at the newest (a new session is a row of its own below).
        tx.execute(
            "INSERT INTO broadcast_marks (session, upto, at) \
             SELECT session_id, (SELECT max(id) FROM messages WHERE to_session = 'ALL_SESSIONS'), ?1 \
             FROM sessions",
            [now],
        )
        .expect("marks");
        tx.execute(
            "INSERT INTO broadcast_marks (session, upto, at) \
             SELECT ?1, max(id), ?2 FROM messages WHERE to_session = 'ALL_SESSIONS'",
            rusqlite::params![SESSION, now],
        )
        .expect("the bench's mark");
        let mut t = tx
            .prepare(
                "INSERT INTO todos (text, user, status, created_by_user, created_by_machine, created_at, completed_at) \
                 VALUES (?1, ?2, ?3, 'u', 'M', ?4, ?5)",
            )
            .expect("prepare");
        for i in 0..100_000i64 {
            let pending = i % 20 == 0;
            t.execute(rusqlite::params![
                format!("todo {i}"),
                format!("user{}", i % 1000),
                if pending { "pending" } else { "done" },
                now - 200 * day,
                (!pending).then_some(now - 150 * day)
            ])
            .expect("insert todo");
        }
        let mut l = tx
            .prepare(
                "INSERT INTO locks (project, resource, session_id, note, created_at, expires_at) \
                 VALUES ('old', ?1, 'M1/s', NULL, ?2, ?3)",
            )
            .expect("prepare");
        for i in 0..100_000i64 {
            l.execute(rusqlite::params![format!("r{i}"), now - 2 * day, now - day])
                .expect("insert lock");
        }
    }
    tx.commit().expect("commit");
    drop(c);
    seed(db);
}

/// Median microseconds of the hook's todo read on `db`.
fn todo_read_us(db: &Path, runs: u64) -> f64 {
    let s = LocalStore::open(db).expect("store");
    let q = coord_hook::hook::queries(SESSION, "bench").1;
    let ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            s.todos(&q).expect("todos");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    stats(ms).median * 1000.0
}

/// Median microseconds of the unread read of a session new to the fleet
/// (no broadcast mark: the last week's broadcasts are unread for it).
fn new_session_read_us(db: &Path, runs: u64) -> f64 {
    let s = LocalStore::open(db).expect("store");
    let q = MessageQuery {
        session: "NEW/claude-main".into(),
        unread_only: true,
        ..Default::default()
    };
    let ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            s.messages_page(&q).expect("messages");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    stats(ms).median * 1000.0
}

/// What holding `n` long-polls on `srv` costs and how fast a broadcast
/// reaches them all.
pub struct Held {
    pub waiting: usize,
    pub returned: usize,
    /// Server RSS (KiB): before, while held, after the clients left.
    pub rss: (u64, u64, u64),
    /// A broadcast to the held polls: median and last answer (ms).
    pub reach: (f64, f64),
}

pub fn hold_polls(srv: &Server, n: usize) -> Held {
    let pid = srv.child.id();
    let start = |n: usize| {
        let mut polls = Command::new(std::env::current_exe().expect("bench binary"))
            .args(["--long-polls", &srv.url, &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("long-poll child");
        let mut said = BufReader::new(polls.stdout.take().expect("stdout"));
        let mut line = String::new();
        let _ = said.read_line(&mut line);
        (polls, said, line)
    };
    // A first round warms what every new session's read touches (the
    // store's pages of a week of broadcasts, mapped into the server): the
    // memory measured after it is what the held polls themselves cost.
    let (mut warm, _, _) = start(300);
    drop(warm.stdin.take());
    let _ = warm.wait();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let before = vm_rss_kib(pid).unwrap_or(0);
    let (mut polls, mut said, mut line) = start(n);
    let waiting = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let held = vm_rss_kib(pid).unwrap_or(0);
    let sent = unix_ms();
    let c = coord_hook::client::HttpCoord::new(&srv.url, None, std::time::Duration::from_secs(5));
    c.send_message(NewMessage {
        to_session: ALL_SESSIONS.into(),
        body: "to every held poll".into(),
        subject: None,
        from_session: "BENCH/broadcaster".into(),
        created_by_user: "bench".into(),
        created_by_machine: "BENCH".into(),
        in_reply_to: None,
    })
    .expect("broadcast");
    std::thread::sleep(std::time::Duration::from_secs(3));
    drop(polls.stdin.take());
    line.clear();
    let _ = said.read_line(&mut line);
    let f: Vec<u128> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let _ = polls.kill();
    let _ = polls.wait();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after = vm_rss_kib(pid).unwrap_or(0);
    let ms = |t: Option<&u128>| t.map_or(f64::NAN, |t| t.saturating_sub(sent) as f64);
    Held {
        waiting,
        returned: f.first().map_or(0, |r| *r as usize),
        rss: (before, held, after),
        reach: (ms(f.get(1)), ms(f.get(2))),
    }
}

/// `coord serve --retain 30` on `db`: milliseconds until it listens, and
/// the load beside its first retention pass.
fn retention_under_load(
    db: &Path,
    log: &Path,
    clients: usize,
    secs: u64,
    days: &str,
) -> (f64, Load) {
    let t = Instant::now();
    let mut child = Command::new(COORD)
        .args(["serve", "--listen", "127.0.0.1:0", "--retain", days, "--db"])
        .arg(db)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("coord serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let listened = t.elapsed().as_secs_f64() * 1000.0;
    let url = line.trim().trim_start_matches("listening on ").to_string();
    let l = load(&url, clients, secs);
    let _ = child.kill();
    let _ = child.wait();
    (listened, l)
}

/// Runs the 1M section; answers its Markdown.
pub fn run(tmp: &Path, runs: u64, clients: usize, load_secs: u64) -> String {
    eprintln!("coord-hook bench: building the 1M store");
    let fresh_db = tmp.join("m-fresh.db");
    seed(&fresh_db);
    let big_db = tmp.join("m-big.db");
    let t = Instant::now();
    seed_million(&big_db);
    let built = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&big_db).map_or(0, |m| m.len());
    let retain_db = tmp.join("m-retain.db");
    std::fs::copy(&big_db, &retain_db).expect("copy");

    eprintln!("coord-hook bench: 1M store, hooks and reads");
    let mut rows: Vec<(String, f64, f64, String)> = Vec::new();
    let identity = |db: &Path| serde_json::json!({"user": "bench", "machine": "BENCH", "coord_db": db.to_str().unwrap_or_default()});
    let fresh_local = Home::new(tmp, "m-fresh-local", identity(&fresh_db));
    let big_local = Home::new(tmp, "m-big-local", identity(&big_db));
    let a = time_many(runs, || fresh_local.hook(&[]), &fresh_local.input()).median;
    let b = time_many(runs, || big_local.hook(&[]), &big_local.input()).median;
    rows.push((
        "session-start hook, embedded store (median ms)".into(),
        a,
        b,
        "≤ 1.3×".into(),
    ));
    // Retention off for these (its pass over the old rows is measured on
    // its own below): the steady state of a store this big.
    let keep = ["--retain", "36500"];
    let fresh_srv = Server::start_with(&fresh_db, &tmp.join("m-fresh.log"), &keep, &[]);
    let big_srv = Server::start_with(&big_db, &tmp.join("m-big.log"), &keep, &[]);
    let api =
        |url: &str| serde_json::json!({"user": "bench", "machine": "BENCH", "coord_api": url});
    let fresh_remote = Home::new(tmp, "m-fresh-remote", api(&fresh_srv.url));
    let big_remote = Home::new(tmp, "m-big-remote", api(&big_srv.url));
    let a = time_many(runs, || fresh_remote.hook(&[]), &fresh_remote.input()).median;
    let b = time_many(runs, || big_remote.hook(&[]), &big_remote.input()).median;
    rows.push((
        "session-start hook → coord serve (median ms)".into(),
        a,
        b,
        "≤ 1.3×".into(),
    ));
    let a = todo_read_us(&fresh_db, runs);
    let b = todo_read_us(&big_db, runs);
    rows.push((
        "the hook's todo read (median µs)".into(),
        a,
        b,
        "≤ 1.5×".into(),
    ));
    let a = new_session_read_us(&fresh_db, runs);
    let b = new_session_read_us(&big_db, runs);
    rows.push((
        "a session new to the fleet: its unread read, a week of broadcasts (median µs)".into(),
        a,
        b,
        "(no target)".into(),
    ));

    eprintln!("coord-hook bench: 1M store under load");
    let lf = load_mix(&fresh_srv.url, clients, load_secs, Mix::Fleet);
    let lb = load_mix(&big_srv.url, clients, load_secs, Mix::Fleet);
    drop(fresh_srv);
    drop(big_srv);
    // The same with the store mapped into memory (serve does not, by
    // default: this row is why).
    let unmapped = Server::start_with(
        &big_db,
        &tmp.join("m-mapped.log"),
        &keep,
        &[("COORD_SERVE_MMAP_MB", "256")],
    );
    let lu = load_mix(&unmapped.url, clients, load_secs, Mix::Fleet);
    drop(unmapped);
    eprintln!("coord-hook bench: 1M store, 5,000 held long-polls");
    let polls_srv = Server::start_with(
        &big_db,
        &tmp.join("m-polls.log"),
        &["--max-connections", "12000", "--retain", "36500"],
        &[],
    );
    let held = hold_polls(&polls_srv, 5000);
    drop(polls_srv);
    eprintln!("coord-hook bench: 1M store, retention under load");
    // The same load on the same file with nothing old enough to delete
    // (a century kept): the tail a 2-core machine gives 32 clients anyway.
    let (_, control) = retention_under_load(
        &retain_db,
        &tmp.join("m-control.log"),
        clients,
        load_secs,
        "36500",
    );
    let (listened, lr) = retention_under_load(
        &retain_db,
        &tmp.join("m-retain.log"),
        clients,
        load_secs,
        "30",
    );
    let retained = std::fs::read_to_string(tmp.join("m-retain.log"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.contains("retention"))
        .map(str::to_string)
        .unwrap_or_else(|| "no retention line (still running when the load ended)".into());

    let mut md = String::new();
    let _ = writeln!(md, "\n## A million messages (issue 21)\n");
    let _ = writeln!(
        md,
        "A store of 1,000,000 messages (10% broadcasts, 62% older than 90 days), 10,001 sessions, 100,000 todos (5,000 pending for 1,000 other users), 100,000 expired locks: {:.0} MB, built straight into the schema in {built:.0} s. Side by side with a fresh store, same run.\n",
        size as f64 / 1e6
    );
    let _ = writeln!(md, "| case | fresh | 1M | 1M ÷ fresh | target |");
    let _ = writeln!(md, "|---|---:|---:|---:|---|");
    for (case, a, b, target) in &rows {
        let _ = writeln!(
            md,
            "| {case} | {a:.2} | {b:.2} | {:.2}× | {target} |",
            b / a
        );
    }
    let rps = |l: &Load| l.requests as f64 / l.secs;
    let _ = writeln!(
        md,
        "| coord serve, {clients} clients, a fleet's mix: 4 inbox reads, a send, a todo list, a lock claim and its release (req/s) | {:.0} | {:.0} | {:.2}× | ≥ 0.7× |",
        rps(&lf),
        rps(&lb),
        rps(&lb) / rps(&lf)
    );
    let _ = writeln!(
        md,
        "| the same, p99 ms | {:.2} | {:.2} | {:.2}× | ≤ 2× |",
        lf.lat.p99,
        lb.lat.p99,
        lb.lat.p99 / lf.lat.p99
    );
    let _ = writeln!(
        md,
        "| the same mix, the 1M store mapped into memory (`COORD_SERVE_MMAP_MB=256`): req/s, p99 ms | | {:.0}, {:.2} | {:.2}×, {:.2}× | (kept if it wins) |",
        rps(&lu),
        lu.lat.p99,
        rps(&lu) / rps(&lf),
        lu.lat.p99 / lf.lat.p99
    );
    let (b0, b1, b2) = held.rss;
    let _ = writeln!(
        md,
        "\n5,000 long-polls held on the 1M store ({} waiting, {} answered early by the broadcast): server RSS {:.1} MB before (after a first round of 300 had warmed the store's pages every new session reads), {:.1} MB while held, **{:.1} KB per poll** (target ≤ 10); {:.1} MB 2 s after the clients left. A broadcast reached them in median **{:.0} ms**, the last at **{:.0} ms** (target ≤ 1,000).",
        held.waiting,
        held.returned,
        b0 as f64 / 1024.0,
        b1 as f64 / 1024.0,
        (b1.saturating_sub(b0)) as f64 / held.waiting.max(1) as f64,
        b2 as f64 / 1024.0,
        held.reach.0,
        held.reach.1
    );
    let _ = writeln!(
        md,
        "\n`coord serve --retain 30` on a copy of the 1M store: listening after {listened:.0} ms (target ≤ 1,000); beside its first pass, {clients} clients ran {:.0} req/s with {} errors, sends p99 {:.1} ms and max {:.1} ms (target: no write over 100 ms); the same load on the same file with nothing to delete: sends p99 {:.1} ms, max {:.1} ms. Log: `{}`.",
        rps(&lr),
        lr.errors,
        lr.sends.p99,
        lr.sends.max,
        control.sends.p99,
        control.sends.max,
        retained.trim()
    );
    md
}

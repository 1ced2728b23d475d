//! `coord serve` on PostgreSQL (issue 22), side by side with `coord serve`
//! on SQLite in one run: the session-start hook, 32 clients against one
//! replica and against two, a write on one replica waking a long-poll on
//! the other, and a replica killed under load. The bench starts its own
//! throw-away PostgreSQL on a loopback port (as the `postgres` user when it
//! runs as root: initdb refuses root) and stops it after; without
//! PostgreSQL the section says SKIPPED.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{COORD, SESSION};
use crate::{fixtures::*, home::*, load::*, measure::*};

pub struct Cluster {
    root: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    pub admin: String,
}

fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: a plain libc call.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

impl Cluster {
    fn run(&self, args: &[&str]) -> bool {
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(args[0]));
            c
        } else {
            Command::new(self.bin.join(args[0]))
        };
        c.args(&args[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn start(tmp: &Path) -> Option<Cluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").is_file())?;
        let root = tmp.join("pg");
        std::fs::create_dir_all(&root).ok()?;
        let as_postgres = is_root();
        if as_postgres {
            Command::new("chown")
                .args(["postgres"])
                .arg(&root)
                .status()
                .ok()?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let c = Cluster {
            root: root.clone(),
            bin,
            as_postgres,
            admin: format!("postgres://coord@127.0.0.1:{port}/postgres"),
        };
        let data = root.join("data");
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            root.display()
        );
        let log = root.join("server.log");
        let ok = c.run(&[
            "initdb",
            "-D",
            data.to_str()?,
            "--auth=trust",
            "-U",
            "coord",
        ]) && c.run(&[
            "pg_ctl",
            "-D",
            data.to_str()?,
            "-l",
            log.to_str()?,
            "-w",
            "-o",
            &opts,
            "start",
        ]);
        ok.then_some(c)
    }

    /// A new database; its URL.
    pub fn database(&self, name: &str) -> String {
        let mut c = postgres::Client::connect(&self.admin, postgres::NoTls).expect("admin");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        format!("{}/{name}", self.admin.rsplit_once('/').expect("url").0)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.root.join("data");
        if let Some(d) = data.to_str() {
            self.run(&["pg_ctl", "-D", d, "-m", "immediate", "stop"]);
        }
    }
}

fn send(url: &str, to: &str, body: &str) {
    let _ = ureq::post(&format!("{url}/api/coord/messages"))
        .header("Content-Type", "application/json")
        .send(
            serde_json::json!({"to_session": to, "body": body, "from_session": "BENCH/other",
                "created_by_user": "bench", "created_by_machine": "BENCH"})
            .to_string(),
        );
}

/// A write through `one` → a long-poll held on `two` answered: ms each.
fn cross_wake(one: &str, two: &str, n: usize) -> Stats {
    let ms = (0..n)
        .map(|i| {
            let session = format!("WAKE/s{i}");
            // Waits for what is newer than the newest it could see (the
            // fixture's broadcasts are unread for a new session too).
            let newest = ureq::get(&format!(
                "{two}/api/coord/messages?session={session}&order=desc&limit=1"
            ))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v[0]["id"].as_i64())
            .unwrap_or(0);
            let url = format!(
                "{two}/api/coord/messages?session={session}&unread=true&after_id={newest}&wait=10"
            );
            let poll = std::thread::spawn(move || {
                let _ = ureq::get(&url)
                    .call()
                    .map(|mut r| r.body_mut().read_to_vec());
                Instant::now()
            });
            std::thread::sleep(Duration::from_millis(150));
            let t = Instant::now();
            send(one, &session, "wake");
            let back = poll.join().expect("poll");
            back.saturating_duration_since(t).as_secs_f64() * 1000.0
        })
        .collect();
    stats(ms)
}

/// 200 sends through a fleet of two replicas, the first killed after 100:
/// (lost, doubled, queued).
fn killed_under_load(cluster: &Cluster, tmp: &Path) -> (i64, i64, usize) {
    let db = cluster.database("coord_bench_kill");
    let mut one = Some(Server::start_with(
        Path::new(&db),
        &tmp.join("k1.log"),
        &[],
        &[],
    ));
    let two = Server::start_with(Path::new(&db), &tmp.join("k2.log"), &[], &[]);
    let first = one.as_ref().map(|s| s.url.clone()).unwrap_or_default();
    let home = Home::new(
        tmp,
        "pg-kill",
        serde_json::json!({"user": "bench", "machine": "BENCH", "coord_api": [first, two.url]}),
    );
    for i in 0..200 {
        if i == 100 {
            drop(one.take());
        }
        let mut c = Command::new(COORD);
        c.args(["msg", "send", "--force", "SINK/x", &format!("k{i}")])
            .current_dir(&home.dir)
            .env("HOME", &home.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::test_env::clear(&mut c);
        let _ = c.status();
    }
    let queued = std::fs::read_to_string(home.dir.join(".claude/coord-queue.jsonl"))
        .map_or(0, |t| t.lines().count());
    let mut c = postgres::Client::connect(&db, postgres::NoTls).expect("db");
    let row = c
        .query_one(
            "SELECT count(DISTINCT body), count(*) FROM messages WHERE to_session = 'SINK/x'",
            &[],
        )
        .expect("count");
    let (distinct, all): (i64, i64) = (row.get(0), row.get(1));
    (200 - distinct, all - distinct, queued)
}

/// CPU seconds (user + system) spent so far by `pids` and by the cluster's
/// backends (the postmaster's children): the work a request costs, apart
/// from how two shared cores were handed out. Linux only.
#[cfg(target_os = "linux")]
fn cpu_secs(pids: &[u32], cluster: &Cluster) -> f64 {
    let fields = |pid: &str| -> Option<Vec<String>> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        Some(rest.split_whitespace().map(String::from).collect())
    };
    // After the name: state, ppid, …, utime (12th), stime (13th).
    let ticks = |f: &[String]| -> u64 {
        f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
    };
    let postmaster = std::fs::read_to_string(cluster.root.join("data/postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string));
    let mut total: u64 = pids
        .iter()
        .filter_map(|p| fields(&p.to_string()))
        .map(|f| ticks(&f))
        .sum();
    if let (Some(pm), Ok(procs)) = (postmaster, std::fs::read_dir("/proc")) {
        for e in procs.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.bytes().all(|b| b.is_ascii_digit())
                && let Some(f) = fields(&name)
                && f.get(1) == Some(&pm)
            {
                total += ticks(&f);
            }
        }
    }
    // SAFETY: a plain libc call.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    total as f64 / hz
}

/// Rounds of the fleet-mix loads, each case in turn.
const ROUNDS: usize = 3;

/// Two loads at once, one per replica, half the clients each.
fn load_two(a: &str, b: &str, clients: usize, secs: u64) -> (Load, Load) {
    let (a, b) = (a.to_string(), b.to_string());
    let half = clients / 2;
    let other = std::thread::spawn(move || load_mix(&b, clients - half, secs, Mix::Fleet));
    let mine = load_mix(&a, half, secs, Mix::Fleet);
    (mine, other.join().expect("load"))
}

/// Runs the section; answers its Markdown.
pub fn run(tmp: &Path, runs: u64, clients: usize, secs: u64) -> String {
    let mut md = String::from("\n## coord serve on PostgreSQL (issue 22)\n\n");
    let Some(cluster) = Cluster::start(tmp) else {
        md.push_str("SKIPPED: no PostgreSQL on this machine (/usr/lib/postgresql/*/bin/initdb; apt: postgresql).\n");
        return md;
    };
    eprintln!("coord-hook bench: PostgreSQL");
    let lite_db = tmp.join("pg-side.db");
    seed(&lite_db);
    let pg_db = cluster.database("coord_bench");
    // The same fixture, moved by the command a fleet uses.
    let copied = Command::new(COORD)
        .args(["store", "copy"])
        .arg(&lite_db)
        .arg(&pg_db)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(copied, "coord store copy into the bench's PostgreSQL");
    let lite = Server::start(&lite_db, &tmp.join("pg-lite.log"));
    let pg_a = Server::start_with(Path::new(&pg_db), &tmp.join("pg-a.log"), &[], &[]);
    let pg_b = Server::start_with(Path::new(&pg_db), &tmp.join("pg-b.log"), &[], &[]);
    let api =
        |url: &str| serde_json::json!({"user": "bench", "machine": "BENCH", "coord_api": url});
    let h_lite = Home::new(tmp, "pg-h-lite", api(&lite.url));
    let h_pg = Home::new(tmp, "pg-h-pg", api(&pg_a.url));
    let hook_lite = time_many(runs, || h_lite.hook(&[]), &h_lite.input());
    let hook_pg = time_many(runs, || h_pg.hook(&[]), &h_pg.input());
    // The edit guard (issue 24) with 100 claims in the fleet, on both.
    let bare_ms = time_many(runs, bare, b"").median;
    let (mut guard_none, mut guard_ms) = (Vec::new(), Vec::new());
    for (srv, home) in [(&lite, &h_lite), (&pg_a, &h_pg)] {
        let inp = crate::guard::input(home);
        guard_none.push(time_many(runs, || home.command(&["guard"]), &inp).median);
        let c = coord_hook::client::HttpCoord::new(&srv.url, None, Duration::from_secs(5));
        crate::guard::claims(&c);
        guard_ms.push(time_many(runs, || home.command(&["guard"]), &inp).median);
    }
    // Throughput on a shared 2-core machine swings between runs by more
    // than the differences measured: the three cases take turns, ROUNDS
    // times, and each is the sum of its rounds.
    let per = (secs / 2).max(3);
    let (mut l_lite, mut l_pg, mut l_two) = (Vec::new(), Vec::new(), Vec::new());
    // CPU spent by both replicas and the backends, one replica loaded and
    // then both (seconds).
    let (mut cpu_one, mut cpu_two) = (0.0, 0.0);
    #[cfg(target_os = "linux")]
    let cpu = || cpu_secs(&[pg_a.child.id(), pg_b.child.id()], &cluster);
    #[cfg(not(target_os = "linux"))]
    let cpu = || 0.0;
    for _ in 0..ROUNDS {
        l_lite.push(load_mix(&lite.url, clients, per, Mix::Fleet));
        let c0 = cpu();
        l_pg.push(load_mix(&pg_a.url, clients, per, Mix::Fleet));
        let c1 = cpu();
        let (a, b) = load_two(&pg_a.url, &pg_b.url, clients, per);
        cpu_one += c1 - c0;
        cpu_two += cpu() - c1;
        l_two.extend([a, b]);
    }
    let wake = cross_wake(&pg_a.url, &pg_b.url, 20);
    drop((lite, pg_a, pg_b));
    let (lost, doubled, queued) = killed_under_load(&cluster, tmp);
    // Requests per second over all rounds (two loads at once: each runs
    // the round's length, so their sum is the pair's rate).
    let rps =
        |ls: &[Load]| ls.iter().map(|l| l.requests as f64 / l.secs).sum::<f64>() / ROUNDS as f64;
    let errors = |ls: &[Load]| ls.iter().map(|l| l.errors).sum::<usize>();
    let p99 = |ls: &[Load]| ls.iter().map(|l| l.lat.p99).sum::<f64>() / ls.len() as f64;
    let (l_lite, l_pg) = (&l_lite[..], &l_pg[..]);
    let two_rps = rps(&l_two);
    let two_err = errors(&l_two);
    let served = |ls: &[Load]| ls.iter().map(|l| l.requests).sum::<usize>().max(1) as f64;
    let us_one = cpu_one * 1e6 / served(l_pg);
    let us_two = cpu_two * 1e6 / served(&l_two);
    let _ = writeln!(
        md,
        "A throw-away PostgreSQL on 127.0.0.1 (fsync on, defaults but max_connections), beside `coord serve` on SQLite, same run, same fixture (`coord store copy` moved it). {SESSION} has 20 unread, 5 todos, 2 locks.\n"
    );
    let _ = writeln!(
        md,
        "| case | serve on SQLite | serve on PostgreSQL | ratio | target |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---|");
    let _ = writeln!(
        md,
        "| session-start hook (median ms) | {:.2} | {:.2} | {:.2}× | ≤ 1.5× |",
        hook_lite.median,
        hook_pg.median,
        hook_pg.median / hook_lite.median
    );
    let _ = writeln!(
        md,
        "| edit guard, nothing claimed (median ms; ÷ a bare `coord --version`, {bare_ms:.2} ms) | {:.2} ({:.2}×) | {:.2} ({:.2}×) | {:.2}× | ≤ 2× bare each |",
        guard_none[0],
        guard_none[0] / bare_ms,
        guard_none[1],
        guard_none[1] / bare_ms,
        guard_none[1] / guard_none[0]
    );
    let _ = writeln!(
        md,
        "| edit guard, 100 claims in the fleet (median ms; ÷ bare) | {:.2} ({:.2}×) | {:.2} ({:.2}×) | {:.2}× | ≤ 2.5× bare each |",
        guard_ms[0],
        guard_ms[0] / bare_ms,
        guard_ms[1],
        guard_ms[1] / bare_ms,
        guard_ms[1] / guard_ms[0]
    );
    let _ = writeln!(
        md,
        "| {clients} clients, a fleet's mix (req/s, errors; {ROUNDS} alternating rounds of {per} s) | {:.0}, {} | {:.0}, {} | {:.2}× | ≥ 0.5×, 0 errors |",
        rps(l_lite),
        errors(l_lite),
        rps(l_pg),
        errors(l_pg),
        rps(l_pg) / rps(l_lite)
    );
    let _ = writeln!(
        md,
        "| the same through two replicas, half the clients each (req/s, errors) | | {two_rps:.0}, {two_err} | {:.2}× one replica | no loss against one |",
        two_rps / rps(l_pg)
    );
    if us_one > 0.0 {
        let _ = writeln!(
            md,
            "| CPU per request, the replicas and PostgreSQL's backends together (µs; one replica loaded → both) | | {us_one:.0} → {us_two:.0} | {:.2}× | the same work |",
            us_two / us_one
        );
    }
    let _ = writeln!(
        md,
        "| p99 ms (one replica; mean of the rounds) | {:.2} | {:.2} | {:.2}× | |",
        p99(l_lite),
        p99(l_pg),
        p99(l_pg) / p99(l_lite)
    );
    let _ = writeln!(
        md,
        "\nA write through one replica → a long-poll held on the other answered, 20 times: median **{:.1} ms**, max **{:.1} ms** (target ≤ 1,000, median ≤ 100).\n\nA replica killed after 100 of 200 sends by a client listing both: **{lost} lost, {doubled} doubled, {queued} queued** (target 0, 0, 0).",
        wake.median, wake.max
    );
    md
}

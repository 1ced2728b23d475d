//! The sections of the bench, in order: the hook against each backend and
//! the history stores, the failure modes, the prompt hook and the waiter,
//! peak memory, and `coord serve` under load.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{DEADLINE_MS, HOOK, SESSION};
use crate::{fixtures::*, home::*, load::*, measure::*, report::*};

/// What the sections measured, for the report.
pub struct Results {
    pub rows: Vec<Row>,
    pub http: Stats,
    pub embedded: Stats,
    pub python: Option<Stats>,
    pub refused: Stats,
    pub blackholed: Stats,
    pub http_history: Stats,
    pub embedded_history: Stats,
    pub idle_quiet: Stats,
    pub idle_loaded: Stats,
    pub bare_quiet: Stats,
    pub bare_loaded: Stats,
    pub clients: usize,
    pub l: Load,
    pub lh: Load,
    pub lp: Load,
    pub lp_waiting: usize,
    pub lp_returned: usize,
    pub rss_http: Option<u64>,
    pub rss_local: Option<u64>,
    pub server_rss: Option<u64>,
    pub prompt_rows: Vec<(&'static str, Stats)>,
    pub wake_rows: Vec<(&'static str, Stats)>,
    pub idle_cpu: Vec<(&'static str, Option<f64>)>,
    pub version: Stats,
    pub tmp: PathBuf,
}

/// Runs every section.
pub fn all(runs: u64, load_secs: u64, clients: usize) -> Results {
    let tmp = std::env::temp_dir().join(format!("coord-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let served_db = tmp.join("served.db");
    seed(&served_db);
    let server = Server::start(&served_db, &tmp.join("serve.log"));

    let remote = Home::new(
        &tmp,
        "remote",
        serde_json::json!({"user": "bench", "machine": "BENCH", "coord_api": server.url}),
    );
    let local = Home::new(
        &tmp,
        "local",
        serde_json::json!({"user": "bench", "machine": "BENCH"}),
    );
    seed(&local.dir.join(".claude/coord.db"));

    let rows: Vec<Row> = Vec::new();
    eprintln!("coord-hook bench: {runs} runs per hook case");

    let http = time_many(runs, || remote.hook(&[]), &remote.input());
    let embedded = time_many(runs, || local.hook(&[]), &local.input());

    // The same against stores with history, in the same run.
    eprintln!("coord-hook bench: history stores (110k messages, 50k expired locks)");
    let history_db = tmp.join("history-served.db");
    seed_history(&history_db);
    let history_server = Server::start(&history_db, &tmp.join("history-serve.log"));
    let remote_history = Home::new(
        &tmp,
        "remote-history",
        serde_json::json!({"user": "bench", "machine": "BENCH", "coord_api": history_server.url}),
    );
    let local_history = Home::new(
        &tmp,
        "local-history",
        serde_json::json!({"user": "bench", "machine": "BENCH"}),
    );
    seed_history(&local_history.dir.join(".claude/coord.db"));
    let http_history = time_many(runs, || remote_history.hook(&[]), &remote_history.input());
    let embedded_history = time_many(runs, || local_history.hook(&[]), &local_history.input());

    let python = python().map(|py| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/hook_baseline.py");
        time_many(
            runs.min(200),
            || {
                let mut c = Command::new(&py);
                c.args([script, &server.url, SESSION, "bench"]);
                c
            },
            &remote.input(),
        )
    });

    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let refused_home = Home::new(
        &tmp,
        "refused",
        serde_json::json!({"user": "bench", "machine": "BENCH", "coord_api": dead_url}),
    );
    let refused = time_many(runs.min(100), || refused_home.hook(&[]), b"{}");

    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_url = format!("http://{}", hole.local_addr().unwrap());
    let hole_home = Home::new(
        &tmp,
        "blackhole",
        serde_json::json!({"user": "bench", "machine": "BENCH", "coord_api": hole_url}),
    );
    let deadline = DEADLINE_MS.to_string();
    let blackholed = time_many(20, || hole_home.hook(&["--timeout", &deadline]), b"{}");
    drop(hole);

    // --- issue 14: the prompt hook, the waiter, long-polls ---------------
    eprintln!("coord-hook bench: prompt hook, waiter");
    let me = std::process::id().to_string();
    let version = time_many(runs, bare, b"");
    let prompt_input = |h: &Home| {
        serde_json::json!({"session_id": "0b5e-bench", "cwd": h.dir,
            "hook_event_name": "UserPromptSubmit", "prompt": "go on"})
        .to_string()
        .into_bytes()
    };
    let mut prompt_rows = Vec::new();
    let mut wake_rows = Vec::new();
    let mut idle_cpu = Vec::new();
    for (label, h) in [("coord serve", &remote), ("embedded store", &local)] {
        // Register this bench process as the window (it lives throughout).
        let mut start = h.hook(&[]);
        start.env("CLAUDE_PID", &me);
        time_once(&mut start, &h.input());
        let p = time_many(
            runs,
            || {
                let mut c = h.hook(&[]);
                c.env("CLAUDE_PID", &me);
                c
            },
            &prompt_input(h),
        );
        prompt_rows.push((label, p));
        // Send -> waiter exit.
        let mut lat = Vec::new();
        for i in 0..10 {
            let mut child = h.waiter(&me).spawn().expect("waiter");
            std::thread::sleep(Duration::from_millis(300));
            let t0 = Instant::now();
            send_to(h, &format!("wake {i}"));
            // Bounded: a waiter that never wakes is a finding, not a hang.
            let until = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = child.kill();
            let _ = child.wait();
            lat.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        wake_rows.push((label, stats(lat)));
        // An idle waiter's CPU over 5 s.
        let mut child = h.waiter(&me).spawn().expect("waiter");
        std::thread::sleep(Duration::from_millis(500));
        let t0 = cpu_ticks(child.id());
        std::thread::sleep(Duration::from_secs(5));
        let t1 = cpu_ticks(child.id());
        let _ = child.kill();
        let _ = child.wait();
        idle_cpu.push((
            label,
            t0.zip(t1)
                .map(|(a, b)| (b - a) as f64 / 100.0 / 5.0 * 100.0),
        ));
    }

    let rss_http = peak_rss_kib(
        &[HOOK, "--format", "json"],
        &[("HOME", remote.dir.to_str().unwrap())],
    );
    let rss_local = peak_rss_kib(
        &[HOOK, "--format", "json"],
        &[("HOME", local.dir.to_str().unwrap())],
    );

    eprintln!("coord-hook bench: load, {clients} clients for {load_secs} s");
    let l = load(&server.url, clients, load_secs);
    let server_rss = vm_hwm_kib(server.child.id());
    // The same load while 1,000 long-polls wait (each held up to 60 s, on
    // its own session, so no write wakes them). They run in a child process
    // of their own: 1,000 client threads beside the load generator would
    // measure this process, not the server.
    eprintln!("coord-hook bench: load with 1,000 open long-polls");
    let mut polls = Command::new(std::env::current_exe().expect("bench binary"))
        .args(["--long-polls", &server.url, "1000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("long-poll child");
    let mut said = BufReader::new(polls.stdout.take().unwrap());
    let number = |said: &mut BufReader<std::process::ChildStdout>| {
        let mut line = String::new();
        let _ = said.read_line(&mut line);
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let lp_waiting = number(&mut said);
    let lp = load(&server.url, clients, load_secs);
    drop(polls.stdin.take());
    let lp_returned = number(&mut said);
    let _ = polls.kill();
    let _ = polls.wait();
    drop(server);
    eprintln!("coord-hook bench: load on the history store");
    let lh = load(&history_server.url, clients, load_secs);
    // An idle session's hook (nothing unread) against the history server,
    // unloaded and then while the load runs.
    let idle = Home::new(
        &tmp,
        "idle-history",
        serde_json::json!({"user": "idle", "machine": "IDLE", "coord_api": history_server.url}),
    );
    // The control: a bare process (`coord --version`, no network) in the
    // same two windows. The load generator shares this machine's cores, so
    // under load every process starts and runs slower, the hook's server
    // part or not.
    let idle_quiet = time_many(runs.min(100), || idle.hook(&[]), &idle.input());
    let bare_quiet = time_many(runs.min(100), bare, b"");
    let (idle_loaded, bare_loaded) = {
        let url = history_server.url.clone();
        let bg = std::thread::spawn(move || load(&url, clients, load_secs.min(5)));
        std::thread::sleep(Duration::from_millis(300));
        let s = time_many(runs.min(100), || idle.hook(&[]), &idle.input());
        let b = time_many(runs.min(100), bare, b"");
        let _ = bg.join();
        (s, b)
    };
    drop(history_server);
    Results {
        rows,
        http,
        embedded,
        python,
        refused,
        blackholed,
        http_history,
        embedded_history,
        idle_quiet,
        idle_loaded,
        bare_quiet,
        bare_loaded,
        clients,
        l,
        lh,
        lp,
        lp_waiting,
        lp_returned,
        rss_http,
        rss_local,
        server_rss,
        prompt_rows,
        wake_rows,
        idle_cpu,
        version,
        tmp,
    }
}

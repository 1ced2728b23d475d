//! The benchmark: hook wall time (against `coord serve` and on the embedded
//! store), the Python baseline, failure modes against the deadline, `coord
//! serve` under load, peak memory and binary size. Prints a table and writes
//! BENCHMARKS.md. Run with `cargo bench` (or `scripts/bench`).
//!
//! Environment: COORD_BENCH_RUNS (default 300 hook runs per case),
//! COORD_BENCH_LOAD_SECS (default 10), COORD_BENCH_CLIENTS (default 32).
//! Everything talks to servers this program starts on 127.0.0.1.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coord_hook::backend::Coord;
use coord_hook::model::*;
use coord_hook::store::LocalStore;

const HOOK: &str = env!("CARGO_BIN_EXE_coord-hook");
const COORD: &str = env!("CARGO_BIN_EXE_coord");
const SESSION: &str = "BENCH/claude-main";
const DEADLINE_MS: u64 = 500;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// --- measuring ---------------------------------------------------------------

struct Stats {
    min: f64,
    median: f64,
    p95: f64,
    p99: f64,
    max: f64,
    n: usize,
}

fn stats(mut ms: Vec<f64>) -> Stats {
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        min: ms[0],
        median: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
        max: ms[ms.len() - 1],
        n: ms.len(),
    }
}

/// Wall time of one process, from spawn to exit, stdin given, stdout dropped.
fn time_once(cmd: &mut Command, input: &[u8]) -> f64 {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let status = child.wait().expect("wait");
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    assert!(status.success(), "{cmd:?} failed");
    ms
}

fn time_many(runs: u64, mut make: impl FnMut() -> Command, input: &[u8]) -> Stats {
    // Warm the page cache and the server first.
    for _ in 0..5 {
        time_once(&mut make(), input);
    }
    stats((0..runs).map(|_| time_once(&mut make(), input)).collect())
}

/// Peak RSS in KiB of one run of `cmd`, measured in a fresh child of this
/// program so that nothing else counts (getrusage of the children).
#[cfg(target_os = "linux")]
fn peak_rss_kib(args: &[&str], envs: &[(&str, &str)]) -> Option<u64> {
    let out = Command::new(std::env::current_exe().ok()?)
        .arg("--measure-rss")
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn peak_rss_kib(_: &[&str], _: &[(&str, &str)]) -> Option<u64> {
    None
}

#[cfg(target_os = "linux")]
fn measure_rss_child(args: &[String]) {
    let status = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if status.is_ok() {
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct we own.
        if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } == 0 {
            println!("{}", usage.ru_maxrss);
        }
    }
}

/// VmHWM of a running process (Linux).
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

// --- fixtures ----------------------------------------------------------------

/// 20 unread messages, 5 todos, 2 locks for BENCH/claude-main.
fn seed(db: &Path) {
    let s = LocalStore::open(db).expect("store");
    for i in 0..20 {
        s.write(
            &Write::SendMessage(NewMessage {
                to_session: if i % 5 == 0 { ALL_SESSIONS.into() } else { SESSION.into() },
                body: format!("status update {i}: the deploy of api 1.{i} went fine.\nLogs are in the usual place."),
                subject: Some(format!("update {i}")),
                from_session: "OTHER/claude-main".into(),
                created_by_user: "bench".into(),
                created_by_machine: "OTHER".into(),
                in_reply_to: None,
            }),
            None,
        )
        .expect("seed message");
    }
    for i in 0..5 {
        s.write(
            &Write::AddTodo(NewTodo {
                text: format!("todo number {i}"),
                user: if i % 2 == 0 {
                    Some("bench".into())
                } else {
                    None
                },
                project: Some("web".into()),
                parent_id: None,
                source: None,
                auto: false,
                created_by_user: "bench".into(),
                created_by_machine: "BENCH".into(),
            }),
            None,
        )
        .expect("seed todo");
    }
    for r in ["deploy", "db-migrate"] {
        s.write(
            &Write::ClaimLock(NewLock {
                project: "web".into(),
                resource: r.into(),
                session_id: SESSION.into(),
                ttl_hours: Some(2.0),
                note: None,
            }),
            None,
        )
        .expect("seed lock");
    }
}

/// A store with history: 100,000 messages to the session that it has read,
/// 10,000 read broadcasts and 50,000 expired locks, then the usual 20
/// unread, 5 todos and 2 locks on top. Written straight into the schema
/// (in one transaction) because 110,000 writes one by one would take
/// minutes; the read state is the one the store itself keeps.
fn seed_history(db: &Path) {
    drop(LocalStore::open(db).expect("store"));
    let mut c = rusqlite::Connection::open(db).expect("open");
    let tx = c.transaction().expect("tx");
    let now = chrono::Utc::now().timestamp_millis();
    {
        let mut m = tx
            .prepare(
                "INSERT INTO messages (from_session, to_session, subject, body, created_by_user, \
                 created_by_machine, created_at, read_at) VALUES (?1, ?2, NULL, ?3, 'old', 'OLD', ?4, ?5)",
            )
            .expect("prepare");
        for i in 0..110_000i64 {
            let broadcast = i % 11 == 0;
            let to = if broadcast { ALL_SESSIONS } else { SESSION };
            let at = now - 86_400_000 + i;
            let read_at = (!broadcast).then_some(at + 1000);
            m.execute(rusqlite::params![
                "OLD/claude-main",
                to,
                format!("old message {i}: something that happened a while ago"),
                at,
                read_at
            ])
            .expect("insert message");
        }
        let upto: i64 = tx
            .query_row(
                "SELECT max(id) FROM messages WHERE to_session = 'ALL_SESSIONS'",
                [],
                |r| r.get(0),
            )
            .expect("max");
        // The bench session and an idle one have read every old broadcast.
        for who in [SESSION, "IDLE/claude-main"] {
            tx.execute(
                "INSERT INTO broadcast_marks (session, upto, at) VALUES (?1, ?2, ?3)",
                rusqlite::params![who, upto, now],
            )
            .expect("mark");
        }
        let mut l = tx
            .prepare(
                "INSERT INTO locks (project, resource, session_id, note, created_at, expires_at) \
                 VALUES ('old', ?1, ?2, NULL, ?3, ?4)",
            )
            .expect("prepare");
        for i in 0..50_000i64 {
            let holder = if i % 2 == 0 {
                SESSION
            } else {
                "OLD/claude-main"
            };
            l.execute(rusqlite::params![
                format!("r{i}"),
                holder,
                now - 7_200_000,
                now - 3_600_000
            ])
            .expect("insert lock");
        }
    }
    tx.commit().expect("commit");
    seed(db);
}

struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(root: &Path, name: &str, identity: serde_json::Value) -> Home {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join(".claude")).unwrap();
        std::fs::write(dir.join(".claude/identity.json"), identity.to_string()).unwrap();
        Home { dir }
    }
    /// `coord-hook ARGS` in this home, the caller's coord settings cleared.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HOOK);
        c.args(args)
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            .env_remove("COORD_API")
            .env_remove("COORD_DB")
            .env_remove("COORD_SESSION")
            .env_remove("COORD_IDENTITY");
        c
    }
    fn hook(&self, extra: &[&str]) -> Command {
        let mut c = self.command(&["--format", "json"]);
        c.args(extra);
        c
    }
    /// The waiter of the window whose process is `window`, interactive.
    fn waiter(&self, window: &str) -> Command {
        let mut c = self.command(&["wait"]);
        c.env("CLAUDE_PID", window)
            .env("CLAUDE_CODE_SESSION_ATTENDED", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }
    fn input(&self) -> Vec<u8> {
        serde_json::json!({
            "session_id": "0b5e-bench", "transcript_path": "/tmp/x.jsonl",
            "cwd": self.dir, "hook_event_name": "SessionStart", "source": "startup"
        })
        .to_string()
        .into_bytes()
    }
}

/// A bare process: `coord --version`, no identity, no network.
fn bare() -> Command {
    let mut c = Command::new(COORD);
    c.arg("--version");
    c
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(db: &Path, log: &Path) -> Server {
        let mut child = Command::new(COORD)
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("coord serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().trim_start_matches("listening on ").to_string();
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- load --------------------------------------------------------------------

struct Load {
    requests: usize,
    errors: usize,
    secs: f64,
    lat: Stats,
    /// The sends alone (a quarter of the requests).
    sends: Stats,
}

fn load(url: &str, clients: usize, secs: u64) -> Load {
    // Keys of their own per run: a key sent again is a replay, not a write.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let run = format!(
        "{started}-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::SeqCst)
    );
    let stop = Arc::new(AtomicBool::new(false));
    type Seen = (Vec<f64>, Vec<f64>, usize);
    let all: Arc<Mutex<Seen>> = Arc::new(Mutex::new((Vec::new(), Vec::new(), 0)));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let (stop, all, url, run) = (stop.clone(), all.clone(), url.to_string(), run.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .into();
                let inbox = format!("{url}/api/coord/messages?session={SESSION}&unread=true");
                let send = format!("{url}/api/coord/messages");
                let (mut lat, mut sends, mut errors) =
                    (Vec::with_capacity(100_000), Vec::with_capacity(30_000), 0);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    // Three inbox reads to one send.
                    let result = if i % 4 == 3 {
                        let body = format!(
                            r#"{{"to_session":"LOAD/sink","body":"load {t}-{i}","from_session":"LOAD/c{t}","created_by_user":"load","created_by_machine":"LOAD"}}"#
                        );
                        agent
                            .post(&send)
                            .header("Content-Type", "application/json")
                            .header("Idempotency-Key", &format!("load-{run}-{t}-{i}"))
                            .send(body)
                    } else {
                        agent.get(&inbox).call()
                    };
                    let ok = match result {
                        Ok(mut r) => {
                            let good = r.status().is_success();
                            good && r.body_mut().read_to_vec().is_ok()
                        }
                        Err(_) => false,
                    };
                    let ms = t0.elapsed().as_secs_f64() * 1000.0;
                    lat.push(ms);
                    if i % 4 == 3 {
                        sends.push(ms);
                    }
                    if !ok {
                        errors += 1;
                    }
                    i += 1;
                }
                let mut a = all.lock().unwrap();
                a.0.extend(lat);
                a.1.extend(sends);
                a.2 += errors;
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let secs = start.elapsed().as_secs_f64();
    let (lat, sends, errors) = std::mem::take(&mut *all.lock().unwrap());
    Load {
        requests: lat.len(),
        errors,
        secs,
        lat: stats(lat),
        sends: stats(sends),
    }
}

// --- report ------------------------------------------------------------------

struct Row {
    case: String,
    s: Stats,
    target: String,
    met: Option<bool>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    #[cfg(target_os = "linux")]
    if args.first().map(String::as_str) == Some("--measure-rss") {
        measure_rss_child(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("--long-polls") {
        long_polls(
            &args[1],
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000),
        );
        return;
    }
    if args.first().map(String::as_str) == Some("--load") {
        let Some(url) = args.get(1).filter(|u| u.starts_with("http")) else {
            eprintln!("usage: cargo bench --bench hook -- --load http://HOST:PORT [SECS]");
            std::process::exit(2);
        };
        #[cfg(unix)]
        coord_hook::server::raise_fd_limit();
        let l = load(
            url,
            32,
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(5),
        );
        println!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors; sends p50 {:.2} ms, p99 {:.2} ms",
            l.requests as f64 / l.secs,
            l.lat.median,
            l.lat.p99,
            l.errors,
            l.sends.median,
            l.sends.p99
        );
        return;
    }
    // `cargo bench -- NAME` filters; `cargo test --benches` runs with --test.
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    // 1,000 long-polls need more sockets than the default 1,024 file
    // descriptors (with the load clients and the children beside them).
    #[cfg(unix)]
    coord_hook::server::raise_fd_limit();
    let runs = env_num("COORD_BENCH_RUNS", 300);
    let load_secs = env_num("COORD_BENCH_LOAD_SECS", 10);
    let clients = env_num("COORD_BENCH_CLIENTS", 32) as usize;

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

    let mut rows: Vec<Row> = Vec::new();
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

    let ratio = python.as_ref().map(|p| p.median / http.median);
    rows.push(Row {
        case: "hook → coord serve (loopback)".into(),
        met: Some(http.median <= 5.0),
        target: "median ≤ 5 ms".into(),
        s: http,
    });
    rows.push(Row {
        case: "hook → embedded store".into(),
        met: Some(embedded.median <= 3.0),
        target: "median ≤ 3 ms".into(),
        s: embedded,
    });
    if let Some(p) = python {
        rows.push(Row {
            case: "Python urllib script → coord serve".into(),
            met: ratio.map(|r| r >= 25.0),
            target: format!("hook ≥ 25× faster (is {:.1}×)", ratio.unwrap_or(0.0)),
            s: p,
        });
    }
    rows.push(Row {
        case: "hook, API refused".into(),
        met: Some(refused.median <= 30.0),
        target: "≤ 30 ms".into(),
        s: refused,
    });
    rows.push(Row {
        case: format!("hook, API black-holed ({DEADLINE_MS} ms deadline)"),
        met: Some(blackholed.max <= DEADLINE_MS as f64 + 50.0),
        target: format!("max ≤ {} ms", DEADLINE_MS + 50),
        s: blackholed,
    });

    let h_http = http_history.median / rows[0].s.median;
    let h_local = embedded_history.median / rows[1].s.median;
    let history_rows = [
        Row {
            case: "hook → coord serve, history store".into(),
            met: Some(h_http <= 1.3),
            target: format!("≤ 1.3× the fresh store (is {h_http:.2}×)"),
            s: http_history,
        },
        Row {
            case: "hook → embedded store, history store".into(),
            met: Some(h_local <= 1.3),
            target: format!("≤ 1.3× the fresh store (is {h_local:.2}×)"),
            s: embedded_history,
        },
    ];
    let loaded_ratio = idle_loaded.median / idle_quiet.median;
    let bare_ratio = bare_loaded.median / bare_quiet.median;
    let idle_rows = [
        Row {
            case: "empty-inbox hook → history server, unloaded".into(),
            met: None,
            target: String::new(),
            s: idle_quiet,
        },
        Row {
            case: format!("empty-inbox hook → history server under {clients}-client load"),
            met: Some(loaded_ratio <= 2.0),
            target: format!("≤ 2× unloaded (is {loaded_ratio:.2}×)"),
            s: idle_loaded,
        },
        Row {
            case: "control: bare `coord --version`, unloaded".into(),
            met: None,
            target: String::new(),
            s: bare_quiet,
        },
        Row {
            case: "control: bare `coord --version` under the same load".into(),
            met: None,
            target: format!("(is {bare_ratio:.2}× unloaded)"),
            s: bare_loaded,
        },
    ];
    let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let kib = |k: Option<u64>| {
        k.map_or("n/a".to_string(), |k| {
            format!("{:.1} MB", k as f64 / 1024.0)
        })
    };
    let yes = |m: Option<bool>| match m {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    };

    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `cargo bench` (benches/hook.rs) on {}; {} cores; {}. Hook runs: process spawn to exit, \
         stdin JSON given, output discarded; data: 20 unread messages, 5 todos, 2 locks.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::OS
    );
    let _ = writeln!(
        md,
        "| case | runs | min ms | median ms | p95 ms | max ms | target | met |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|---|");
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.case,
            r.s.n,
            r.s.min,
            r.s.median,
            r.s.p95,
            r.s.max,
            r.target,
            yes(r.met)
        );
    }
    let _ = writeln!(
        md,
        "\n## History\n\nThe same hook against stores with history (100,000 read messages to the session, 10,000 \
         read broadcasts, 50,000 expired locks, and the same 20 unread, 5 todos and 2 locks on top), in the same run \
         as the fresh cases above.\n\n| case | runs | min ms | median ms | p95 ms | max ms | target | met |\n\
         |---|---:|---:|---:|---:|---:|---|---|"
    );
    for r in history_rows.iter().chain(idle_rows.iter()) {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.case,
            r.s.n,
            r.s.min,
            r.s.median,
            r.s.p95,
            r.s.max,
            r.target,
            yes(r.met)
        );
    }
    let rps = l.requests as f64 / l.secs;
    let rps_h = lh.requests as f64 / lh.secs;
    let h_ratio = rps_h / rps;
    let h_ok = h_ratio >= 0.8 && lh.lat.p99 < 50.0 && lh.errors == 0;
    let _ = writeln!(
        md,
        "\n| coord serve under load | requests/s | p50 ms | p99 ms | max ms | errors | target | met |\n|---|---:|---:|---:|---:|---:|---|---|\n\
         | fresh store | {rps:.0} | {:.2} | {:.2} | {:.2} | {} | | |\n\
         | history store | {rps_h:.0} | {:.2} | {:.2} | {:.2} | {} | ≥ 0.8× fresh (is {h_ratio:.2}×), p99 < 50 ms, 0 errors | {} |",
        l.lat.median,
        l.lat.p99,
        l.lat.max,
        l.errors,
        lh.lat.median,
        lh.lat.p99,
        lh.lat.max,
        lh.errors,
        if h_ok { "yes" } else { "NO" }
    );
    let rps_lp = lp.requests as f64 / lp.secs;
    let lp_ratio = lp.lat.p99 / l.lat.p99;
    let _ = writeln!(
        md,
        "\n| coord serve, {clients} clients | requests/s | p50 ms | p99 ms | errors | target | met |\n|---|---:|---:|---:|---:|---|---|\n\
         | no long-polls waiting | {rps:.0} | {:.2} | {:.2} | {} | | |\n\
         | 1,000 long-polls waiting ({lp_waiting} held, {lp_returned} returned early) | {rps_lp:.0} | {:.2} | {:.2} | {} | p99 ≤ 1.5× none waiting (is {lp_ratio:.2}×) | {} |",
        l.lat.median,
        l.lat.p99,
        l.errors,
        lp.lat.median,
        lp.lat.p99,
        lp.errors,
        yes(Some(
            lp_ratio <= 1.5 && lp.errors == 0 && lp_waiting == 1000 && lp_returned == 0
        ))
    );
    let load_ok = rps >= 5000.0 && l.lat.p99 <= 20.0 && l.errors == 0;
    let _ = writeln!(
        md,
        "\n## coord serve under load\n\n{clients} concurrent keep-alive clients (3 inbox reads : 1 message send), {:.1} s, \
         load generator in the same process on the same 2 cores.\n\n\
         | requests/s | p50 ms | p99 ms | max ms | errors | server peak RSS | target | met |\n|---:|---:|---:|---:|---:|---:|---|---|\n\
         | {rps:.0} | {:.2} | {:.2} | {:.2} | {} | {} | ≥ 5,000 req/s, p99 ≤ 20 ms, 0 errors | {} |",
        l.secs,
        l.lat.median,
        l.lat.p99,
        l.lat.max,
        l.errors,
        kib(server_rss),
        if load_ok { "yes" } else { "NO" }
    );
    let _ = writeln!(
        md,
        "\n## Mid-session (prompt hook and waiter)\n\n| case | runs | median ms | p95 ms | max ms | target | met |\n|---|---:|---:|---:|---:|---|---|\n\
         | `coord --version` (a bare process) | {} | {:.2} | {:.2} | {:.2} | | |",
        version.n, version.median, version.p95, version.max
    );
    for (label, p) in &prompt_rows {
        let ratio = p.median / version.median;
        let _ = writeln!(
            md,
            "| prompt hook, nothing new → {label} | {} | {:.2} | {:.2} | {:.2} | ≤ 2.5× `coord --version` (is {ratio:.2}×) | {} |",
            p.n,
            p.median,
            p.p95,
            p.max,
            yes(Some(ratio <= 2.5))
        );
    }
    for (label, w) in &wake_rows {
        let _ = writeln!(
            md,
            "| send → waiter exit → {label} | {} | {:.1} | {:.1} | {:.1} | median ≤ 1,000 ms | {} |",
            w.n,
            w.median,
            w.p95,
            w.max,
            yes(Some(w.median <= 1000.0))
        );
    }
    for (label, c) in &idle_cpu {
        let _ = writeln!(
            md,
            "| idle waiter → {label}, CPU over 5 s | | {} | | | < 1% of a core | {} |",
            c.map_or("n/a".into(), |c| format!("{c:.2}%")),
            yes(c.map(|c| c < 1.0))
        );
    }
    let rss_ok = rss_http.max(rss_local).map(|k| k <= 10 * 1024);
    let _ = writeln!(
        md,
        "\n## Memory and size\n\n| what | value | target | met |\n|---|---:|---|---|\n\
         | hook peak RSS → coord serve | {} | ≤ 10 MB | {} |\n| hook peak RSS → embedded store | {} | ≤ 10 MB | {} |\n\
         | `coord-hook` binary | {:.1} MB | | |\n| `coord` binary | {:.1} MB | | |",
        kib(rss_http),
        yes(rss_ok),
        kib(rss_local),
        yes(rss_ok),
        size(HOOK) as f64 / 1e6,
        size(COORD) as f64 / 1e6
    );
    md.push_str(&notes());

    println!("{md}");
    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
    if let Err(e) = std::fs::write(out, &md) {
        eprintln!("cannot write {out}: {e}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The long-poll child: `n` clients each waiting on a session of its own.
/// Each waits as `coord-hook wait` does: for messages newer than the newest
/// it has (a broadcast already in the store is unread for every session,
/// and would otherwise answer every long-poll at once). Prints `waiting N`
/// once all have had their first answer (or after 20 s); when its stdin
/// closes, prints `returned R`, how many long-polls came back early in between
/// (0 if they all waited), and exits.
fn long_polls(url: &str, n: usize) {
    #[cfg(unix)]
    coord_hook::server::raise_fd_limit();
    let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let returned = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for i in 0..n {
        let (url, ready, returned) = (url.to_string(), ready.clone(), returned.clone());
        let _ = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let c = coord_hook::client::HttpCoord::new(&url, None, Duration::from_secs(75));
                let mut q = MessageQuery {
                    session: format!("POLL/s{i}"),
                    unread_only: true,
                    ..Default::default()
                };
                let newest = |page: &[coord_hook::model::Message], q: &mut MessageQuery| {
                    if let Some(id) = page.iter().map(|m| m.id).max() {
                        q.after_id = Some(q.after_id.unwrap_or(0).max(id));
                    }
                };
                match c.messages(&q) {
                    Ok(page) => newest(&page, &mut q),
                    Err(_) => return,
                }
                ready.fetch_add(1, Ordering::SeqCst);
                let c = c.with_wait(60);
                loop {
                    let asked = Instant::now();
                    let r = c.messages(&q);
                    // Early: before the server's 60 s were up.
                    if asked.elapsed() < Duration::from_secs(55) {
                        returned.fetch_add(1, Ordering::SeqCst);
                    }
                    match r {
                        Ok(page) => newest(&page, &mut q),
                        Err(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
            });
    }
    let t0 = Instant::now();
    while ready.load(Ordering::SeqCst) < n && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the last ones' long-polls reach the server.
    std::thread::sleep(Duration::from_millis(500));
    let before = returned.load(Ordering::SeqCst);
    println!("waiting {}", ready.load(Ordering::SeqCst));
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    println!("returned {}", returned.load(Ordering::SeqCst) - before);
}

/// Sends one message to the bench session on `h`'s backend.
fn send_to(h: &Home, body: &str) {
    let identity: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(h.dir.join(".claude/identity.json")).unwrap(),
    )
    .unwrap();
    let w = Write::SendMessage(NewMessage {
        to_session: SESSION.into(),
        body: body.into(),
        subject: None,
        from_session: "OTHER/claude-main".into(),
        created_by_user: "bench".into(),
        created_by_machine: "OTHER".into(),
        in_reply_to: None,
    });
    match identity["coord_api"].as_str() {
        Some(url) => {
            let c = coord_hook::client::HttpCoord::new(url, None, Duration::from_secs(5));
            c.write(&w, None).expect("send");
        }
        None => {
            let s = LocalStore::open(&h.dir.join(".claude/coord.db")).expect("store");
            s.write(&w, None).expect("send");
        }
    }
}

/// User + system CPU ticks of a process (Linux; 100 per second).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The real python3 interpreter (not a version manager's shell shim, which
/// would add its own start-up to the baseline).
fn python() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.is_file().then_some(p)
}

/// What bounds the numbers; kept with the table so it travels with it.
fn notes() -> String {
    "\n## What bounds these numbers\n\n\
     - One run on one machine; run-to-run noise here is about ±0.2 ms on the hook cases. Rerun\n  \
       `cargo bench` to compare like with like.\n\
     - A hook run is mostly the kernel starting a process: on the same machine a Rust hello-world\n  \
       takes about 0.9 ms and `coord-hook --version` 1.2 ms. `perf` puts 85% of a hook run's samples\n  \
       in the kernel (exec, page faults, thread and socket set-up); see the README's Performance section.\n\
     - The Python baseline is timed with the real interpreter (`sys.executable`), not a version\n  \
       manager's shell shim, which would add ~80 ms and flatter the ratio. About 38 ms of it is\n  \
       the interpreter starting, ~20 ms importing urllib.\n\
     - The black-holed case ends ~12 ms after the deadline: ureq's read timeout on the hook's main\n  \
       thread fires that late.\n\
     - The load generator runs in the bench process, on the same two cores as the server and the\n  \
       hooks it times: under load every process starts and runs slower. The control rows (a bare\n  \
       `coord --version`, no network) measure that share in the same windows.\n"
        .to_string()
}

//! Load on `coord serve`: closed-loop clients, long-polls held open, and
//! the little helpers the sections share.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coord_hook::backend::Coord;
use coord_hook::model::*;
use coord_hook::store::LocalStore;

use crate::SESSION;
use crate::{home::*, measure::*};

pub struct Load {
    pub requests: usize,
    pub errors: usize,
    pub secs: f64,
    pub lat: Stats,
    /// The sends alone (a quarter of the requests).
    pub sends: Stats,
}

/// What the clients of [`load`] ask.
#[derive(Clone, Copy, PartialEq)]
pub enum Mix {
    /// Three inbox reads to one send.
    Inbox,
    /// A fleet's day in eight requests: four inbox reads, a send, a todo
    /// list (this user's and everyone's), a lock claim and its release.
    Fleet,
}

pub fn load(url: &str, clients: usize, secs: u64) -> Load {
    load_mix(url, clients, secs, Mix::Inbox)
}

pub fn load_mix(url: &str, clients: usize, secs: u64, mix: Mix) -> Load {
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
                let todos = format!("{url}/api/coord/todos?user=bench&include_unassigned=true");
                let locks = format!("{url}/api/coord/locks");
                // Names of this run's own: two loads at once (one per
                // replica) must not claim each other's locks.
                let holder = format!("LOAD/c{t}-{}", &run[run.len().saturating_sub(6)..]);
                let mut held: Option<i64> = None;
                let period = if mix == Mix::Fleet { 8 } else { 4 };
                let (mut lat, mut sends, mut errors) =
                    (Vec::with_capacity(100_000), Vec::with_capacity(30_000), 0);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let step = i % period;
                    let is_send = step == 3;
                    let result = if mix == Mix::Fleet && step >= 5 {
                        match step {
                            5 => agent.get(&todos).call(),
                            6 => agent
                                .post(&locks)
                                .header("Content-Type", "application/json")
                                .send(format!(
                                    r#"{{"project":"load","resource":"r-{holder}","session_id":"{holder}","ttl_hours":1}}"#
                                )),
                            _ => {
                                // Released by id: the claim's answer named it.
                                let id = held.take().unwrap_or(0);
                                agent
                                    .delete(&format!("{locks}/{id}?session_id={holder}"))
                                    .call()
                            }
                        }
                    } else if is_send {
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
                            match r.body_mut().read_to_vec() {
                                Ok(body) if good && mix == Mix::Fleet && step == 6 => {
                                    // The claim names the lock its release gives back.
                                    held = serde_json::from_slice::<serde_json::Value>(&body)
                                        .ok()
                                        .and_then(|v| v["id"].as_i64());
                                    held.is_some()
                                }
                                Ok(_) => good,
                                Err(_) => false,
                            }
                        }
                        Err(_) => false,
                    };
                    let ms = t0.elapsed().as_secs_f64() * 1000.0;
                    lat.push(ms);
                    if is_send {
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

/// The long-poll child: `n` clients each waiting on a session of its own.
/// Each waits as `coord-hook wait` does: for messages newer than the newest
/// it has (a broadcast already in the store is unread for every session,
/// and would otherwise answer every long-poll at once). Prints `waiting N`
/// once all have had their first answer (or after 20 s); when its stdin
/// closes, prints `returned R MEDIAN LAST`: how many long-polls came back
/// early in between (0 if they all waited), and the median and last of
/// those returns in Unix milliseconds; then exits.
pub fn long_polls(url: &str, n: usize) {
    #[cfg(unix)]
    coord_hook::server::raise_fd_limit();
    let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let returned = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let when: Arc<Mutex<Vec<u128>>> = Arc::default();
    for i in 0..n {
        let (url, ready, returned, when) = (
            url.to_string(),
            ready.clone(),
            returned.clone(),
            when.clone(),
        );
        let _ = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let c = coord_hook::client::HttpCoord::new(&url, None, Duration::from_secs(75));
                // The first read asks only for the newest: a session new to
                // a store with history has a week of broadcasts unread.
                let mut q = MessageQuery {
                    session: format!("POLL/s{i}"),
                    unread_only: true,
                    newest_first: true,
                    limit: Some(1),
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
                q.newest_first = false;
                q.limit = None;
                ready.fetch_add(1, Ordering::SeqCst);
                let c = c.with_wait(60);
                loop {
                    let asked = Instant::now();
                    let r = c.messages(&q);
                    // Early: before the server's 60 s were up.
                    if asked.elapsed() < Duration::from_secs(55) {
                        returned.fetch_add(1, Ordering::SeqCst);
                        when.lock().unwrap().push(unix_ms());
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
    when.lock().unwrap().clear();
    println!("waiting {}", ready.load(Ordering::SeqCst));
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    let mut t = std::mem::take(&mut *when.lock().unwrap());
    t.sort_unstable();
    println!(
        "returned {} {} {}",
        returned.load(Ordering::SeqCst) - before,
        t.get(t.len() / 2).copied().unwrap_or(0),
        t.last().copied().unwrap_or(0)
    );
}

/// Now, in Unix milliseconds (to compare times across processes).
pub fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Sends one message to the bench session on `h`'s backend.
pub fn send_to(h: &Home, body: &str) {
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
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The real python3 interpreter (not a version manager's shell shim, which
/// would add its own start-up to the baseline).
pub fn python() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.is_file().then_some(p)
}

/// What bounds the numbers; kept with the table so it travels with it.
pub fn notes() -> String {
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

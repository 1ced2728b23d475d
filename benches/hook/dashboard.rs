//! The dashboard (issue 23) on a fleet-sized store — 10,000 messages, 1,000
//! sessions, 1,000 locks: how soon `coord serve` answers the first HTML,
//! and what 20 open dashboards (each refreshing on every change, as the
//! page's script does) cost a fleet's load.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coord_hook::store::LocalStore;

use crate::{home::*, load::*, measure::*};

/// 1,000 sessions on 50 machines, 10,000 messages among them (one in ten
/// a broadcast, half read), 1,000 live locks: written straight into the
/// schema in one transaction.
fn seed(db: &Path) {
    drop(LocalStore::open(db).expect("store"));
    let mut c = rusqlite::Connection::open(db).expect("open");
    let tx = c.transaction().expect("tx");
    let now = chrono::Utc::now().timestamp_millis();
    let session = |i: i64| format!("M{}/s{i}", i % 50);
    {
        let mut s = tx
            .prepare(
                "INSERT INTO sessions (session_id, user, machine, name, project, client, first_seen, last_seen) \
                 VALUES (?1, 'u', ?2, ?3, 'web', 'bench', ?4, ?4)",
            )
            .expect("prepare");
        for i in 0..1000i64 {
            s.execute(rusqlite::params![
                session(i),
                format!("M{}", i % 50),
                format!("s{i}"),
                now - i * 60_000
            ])
            .expect("session");
        }
        let mut m = tx
            .prepare(
                "INSERT INTO messages (from_session, to_session, subject, body, created_by_user, \
                 created_by_machine, created_at, read_at) VALUES (?1, ?2, NULL, ?3, 'u', 'M', ?4, ?5)",
            )
            .expect("prepare");
        for i in 0..10_000i64 {
            let to = if i % 10 == 0 {
                "ALL_SESSIONS".to_string()
            } else {
                session((i * 7) % 1000)
            };
            let at = now - (10_000 - i) * 1000;
            let read = (i % 2 == 0 && i % 10 != 0).then_some(at + 500);
            m.execute(rusqlite::params![
                session(i % 1000),
                to,
                format!("message {i}: the deploy of web 1.{i} is done, logs in the usual place"),
                at,
                read
            ])
            .expect("message");
        }
        let mut l = tx
            .prepare(
                "INSERT INTO locks (project, resource, session_id, note, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, 'working on it', ?4, ?5)",
            )
            .expect("prepare");
        for i in 0..1000i64 {
            l.execute(rusqlite::params![
                format!("p{}", i % 20),
                format!("r{i}"),
                session(i),
                now,
                now + 2 * 3_600_000
            ])
            .expect("lock");
        }
    }
    tx.commit().expect("commit");
}

fn get(agent: &ureq::Agent, url: &str) -> bool {
    agent
        .get(url)
        .call()
        .is_ok_and(|mut r| r.body_mut().read_to_string().is_ok())
}

/// `n` dashboards: each holds `/ui/events` and fetches `/ui/main` at
/// every event, until `stop`. Answers how many refreshes they made.
fn dashboards(url: &str, n: usize, stop: Arc<AtomicBool>) -> Arc<AtomicUsize> {
    let refreshed = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let (url, stop, refreshed) = (url.to_string(), stop.clone(), refreshed.clone());
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(120)))
                .build()
                .into();
            let Ok(resp) = agent.get(&format!("{url}/ui/events")).call() else {
                return;
            };
            let main = format!("{url}/ui/main");
            let mut lines = BufReader::new(resp.into_body().into_reader()).lines();
            while let Some(Ok(line)) = lines.next() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                // As the page does: the part as of the change told of.
                if let Some(n) = line.strip_prefix("data: ")
                    && get(&agent, &format!("{main}?after={}", n.trim()))
                {
                    refreshed.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    refreshed
}

pub fn run(tmp: &Path, clients: usize, secs: u64) -> String {
    let db = tmp.join("dashboard.db");
    seed(&db);
    let srv = Server::start(&db, &tmp.join("dashboard.log"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let page = format!("{}/", srv.url);
    for _ in 0..3 {
        get(&agent, &page);
    }
    // Each GET after a write (not timed): a page read afresh, never the
    // view another page's read left.
    let c = coord_hook::client::HttpCoord::new(&srv.url, None, Duration::from_secs(5));
    let first: Vec<f64> = (0..50)
        .map(|i| {
            use coord_hook::backend::CoordExt;
            c.send_message(coord_hook::model::NewMessage {
                to_session: "M1/s1".into(),
                body: format!("between pages {i}"),
                subject: None,
                from_session: "M2/s2".into(),
                created_by_user: "u".into(),
                created_by_machine: "M2".into(),
                in_reply_to: None,
            })
            .expect("send");
            let t = Instant::now();
            assert!(get(&agent, &page), "GET /");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let first = stats(first);
    // Three rounds, none watching then 20 dashboards open, each half the
    // time: a store that grows under the load weighs on both alike.
    let stop = Arc::new(AtomicBool::new(false));
    let half = (secs / 2).max(1);
    let (mut bare, mut watched, mut refreshes) = (Vec::new(), Vec::new(), 0);
    for _ in 0..3 {
        bare.push(load_mix(&srv.url, clients, half, Mix::Fleet));
        let stop_round = Arc::new(AtomicBool::new(false));
        let refreshed = dashboards(&srv.url, 20, stop_round.clone());
        std::thread::sleep(Duration::from_millis(500));
        watched.push(load_mix(&srv.url, clients, half, Mix::Fleet));
        stop_round.store(true, Ordering::SeqCst);
        refreshes += refreshed.load(Ordering::SeqCst);
        // Let the round's dashboards see their last event and go.
        let _ = get(&agent, &format!("{}/health", srv.url));
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::SeqCst);
    let mean_p99 = |v: &[Load]| v.iter().map(|l| l.lat.p99).sum::<f64>() / v.len() as f64;
    let rps = |v: &[Load]| {
        v.iter().map(|l| l.requests).sum::<usize>() as f64 / v.iter().map(|l| l.secs).sum::<f64>()
    };
    let errors = |v: &[Load]| v.iter().map(|l| l.errors).sum::<usize>();
    let (p99_bare, p99_watched) = (mean_p99(&bare), mean_p99(&watched));
    let mut md = String::from("\n## The dashboard (issue 23)\n\n");
    let _ = writeln!(
        md,
        "`coord serve` on a store of 10,000 messages, 1,000 sessions and 1,000 live locks.\n"
    );
    let _ = writeln!(md, "| case | measured | target |");
    let _ = writeln!(md, "|---|---:|---|");
    let _ = writeln!(
        md,
        "| `GET /`, the first HTML (median / p99 of 50, ms) | {:.1} / {:.1} | ≤ 50 |",
        first.median, first.p99
    );
    let _ = writeln!(
        md,
        "| {clients} clients, a fleet's mix: p99 ms (mean of 3 rounds), none watching → 20 dashboards open | {p99_bare:.2} → {p99_watched:.2} ({:.2}×) | ≤ 1.1× |",
        p99_watched / p99_bare
    );
    let _ = writeln!(
        md,
        "| the same, req/s (errors) | {:.0} ({}) → {:.0} ({}) ({:.2}×) | 0 errors |",
        rps(&bare),
        errors(&bare),
        rps(&watched),
        errors(&watched),
        rps(&watched) / rps(&bare)
    );
    let _ = writeln!(
        md,
        "\nThe 20 dashboards hold `/ui/events` and fetch `/ui/main` at each event, as the page does: {refreshes} refreshes in 3 × {half} s. An event names the change (`data: N`) and the page asks for its part as of that change (`/ui/main?after=N`): one read and one rendering serve every page told of the same change."
    );
    md
}

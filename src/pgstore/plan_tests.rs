//! The plans PostgreSQL really runs for the server's hot reads, taken from
//! the store's own connection (auto_explain, sent back as notices): each
//! is an index range proportional to its answer, with other sessions' and
//! other users' rows present, including after the tables grew under
//! statements first planned while they were empty. Needs `COORD_TEST_PG`
//! (a URL whose user may create databases and load auto_explain); says
//! SKIPPED without it.

use std::sync::{Arc, Mutex};

use super::*;

/// The plans the store's connection ran, as auto_explain told them.
type Plans = Arc<Mutex<Vec<String>>>;

/// A store on a new database whose connection reports every plan it runs.
fn store_with_plans() -> Option<(PgStore, Plans, impl FnOnce())> {
    let Some(admin) = std::env::var("COORD_TEST_PG")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "SKIPPED pgstore plan test: no PostgreSQL (set COORD_TEST_PG; .ci/run starts one)"
        );
        return None;
    };
    let name = format!("coord_plan_{}", std::process::id());
    let mut c = postgres::Client::connect(&admin, NoTls).expect("COORD_TEST_PG answers");
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .expect("an old plan-test database dropped");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("a database for the plan test");
    let url = format!(
        "{}/{name}",
        admin.rsplit_once('/').expect("URL ends in /DB").0
    );
    let plans: Plans = Arc::default();
    let mut t = target(&url).expect("target");
    let sink = plans.clone();
    t.config
        .notice_callback(move |n| sink.lock().unwrap().push(n.message().to_string()));
    let store = PgStore {
        target: t,
        shown: redact(&url),
        client: Mutex::new(None),
        ended: Default::default(),
    };
    store.migrate().expect("migrate");
    store
        .with(|c| {
            c.client
                .batch_execute(
                    "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; \
                     SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on; \
                     SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice",
                )
                .map_err(|e| store.db(e))
        })
        .expect("auto_explain on the store's connection");
    let gone = move || {
        let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    };
    Some((store, plans, gone))
}

/// A busy fleet: a session that got 5,000 messages, 500 broadcasts (all
/// but the last 10 older than a week) that 200 sessions read, 300
/// sessions, 3,000 pending todos of other users, 1,000 live locks of
/// other sessions.
fn fill(store: &PgStore) {
    let now = now_ms();
    store
        .with(|c| {
            c.client
                .batch_execute(&format!(
                    "INSERT INTO messages (from_session, to_session, body, created_by_user, created_by_machine, created_at) \
                     SELECT 'OTHER/s' || (i % 50), 'BUSY/inbox', 'x', 'u', 'm', {now} - i FROM generate_series(1, 5000) i;
                     INSERT INTO messages (from_session, to_session, body, created_by_user, created_by_machine, created_at) \
                     SELECT 'OTHER/s' || (i % 50), 'ALL_SESSIONS', 'b', 'u', 'm', \
                     CASE WHEN i <= 490 THEN {now} - 8 * 86400000 + i ELSE {now} - 1000 + i END \
                     FROM generate_series(1, 500) i;
                     INSERT INTO message_reads (message_id, session, read_at) \
                     SELECT m.id, 'READER/r' || s, {now} FROM messages m, generate_series(1, 200) s \
                     WHERE m.to_session = 'ALL_SESSIONS' AND m.id % 5 = 0;
                     INSERT INTO sessions (session_id, \"user\", machine, name, first_seen, last_seen) \
                     SELECT 'OTHER/s' || i, 'u' || (i % 7), 'OTHER', 's' || i, {now}, {now} FROM generate_series(1, 300) i;
                     INSERT INTO todos (text, \"user\", status, created_by_user, created_by_machine, created_at) \
                     SELECT 't', 'other' || (i % 30), 'pending', 'u', 'm', {now} FROM generate_series(1, 3000) i;
                     INSERT INTO locks (project, resource, session_id, created_at, expires_at) \
                     SELECT 'p' || (i % 10), 'r' || i, 'OTHER/s' || (i % 50), {now}, {now} + 3600000 FROM generate_series(1, 1000) i;
                     ANALYZE;"
                ))
                .map_err(|e| store.db(e))
        })
        .expect("the fixture");
}

/// The reads a session start, a prompt, the guard and `coord` make.
fn hot_reads(store: &PgStore) {
    for session in ["QUIET/x", "OTHER/s1"] {
        store
            .messages_page(&MessageQuery {
                session: session.into(),
                unread_only: true,
                limit: Some(50),
                ..Default::default()
            })
            .expect("inbox");
    }
    store
        .todos(&TodoQuery {
            user: Some("me".into()),
            include_unassigned: true,
            limit: Some(100),
            ..Default::default()
        })
        .expect("todos");
    store
        .locks(&LockQuery {
            session_id: Some("QUIET/x".into()),
            ..Default::default()
        })
        .expect("my locks");
    store.claims("p-none", "src/a.rs", 600).expect("claims");
}

/// Buffers a plan touched, by its top node's line.
fn buffers(plan: &str) -> u64 {
    plan.lines()
        .find_map(|l| l.trim().strip_prefix("Buffers: shared "))
        .map_or(0, |b| {
            b.split_whitespace()
                .filter_map(|kv| kv.split_once('=').and_then(|(_, v)| v.parse::<u64>().ok()))
                .sum()
        })
}

fn check(plans: &[String], when: &str) {
    assert!(
        plans.len() >= 5,
        "{when}: auto_explain reported {} plans",
        plans.len()
    );
    for p in plans {
        assert!(
            !p.contains("Seq Scan"),
            "{when}: a scan of a whole table:\n{p}"
        );
        for l in p.lines() {
            if let Some(n) = l
                .trim()
                .strip_prefix("Rows Removed by Filter: ")
                .or_else(|| l.trim().strip_prefix("Rows Removed by Join Filter: "))
            {
                let n: u64 = n.trim().parse().unwrap_or(u64::MAX);
                assert!(n <= 60, "{when}: {n} rows of others read and dropped:\n{p}");
            }
        }
        // A few index pages and the rows answered, never a walk of the
        // 5,000 messages, 20,000 reads or 3,000 todos of others.
        assert!(
            buffers(p) <= 120,
            "{when}: {} buffers touched:\n{p}",
            buffers(p)
        );
    }
}

#[test]
fn hot_reads_are_index_ranges_with_other_sessions_data_and_after_growth() {
    let Some((store, plans, gone)) = store_with_plans() else {
        return;
    };
    // Planned first while the tables are empty (a new fleet), then the
    // fleet grows: what was planned then must still be a range now.
    hot_reads(&store);
    fill(&store);
    plans.lock().unwrap().clear();
    hot_reads(&store);
    let after_growth = plans.lock().unwrap().clone();
    drop(store);
    check(&after_growth, "planned on empty tables, run on a full one");
    gone();
}

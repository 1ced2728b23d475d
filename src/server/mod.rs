//! `coord serve`: the HTTP contract in front of the embedded store. The tokio
//! runtime is built here and only here, so the hook never pays for it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::backend::{Coord, Engine};
use crate::error::{Error, Result};
use crate::model::*;
use crate::store::LocalStore;
use crate::wire::{self, MAX_BODY_BYTES, MAX_KEY_LEN, MAX_WAIT_SECS, query, route};

/// Where `coord serve` keeps the fleet's data.
pub enum Db {
    /// A SQLite file (the default: the local store of this identity).
    Sqlite(PathBuf),
    /// A PostgreSQL URL: several replicas may serve one database.
    Postgres(String),
}

impl Db {
    /// `--db`: a `postgres://` or `postgresql://` URL, else a file path.
    pub fn from_arg(db: PathBuf) -> Db {
        match db.to_str().filter(|s| crate::pgstore::is_url(s)) {
            Some(url) => Db::Postgres(url.to_string()),
            None => Db::Sqlite(db),
        }
    }
}

/// What runs once the server listens, given its URL.
pub type OnListen = Box<dyn FnOnce(&str) + Send>;

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub db: Db,
    pub token: Option<String>,
    pub insecure: bool,
    /// `--retain DAYS`; 0 runs no retention at all.
    pub retain_days: u32,
    /// `--max-connections N` (None: the default).
    pub max_connections: Option<usize>,
    /// `--tls-cert PEM --tls-key PEM`: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Who a person using the dashboard writes as (`WEB/<user>`).
    pub ui_user: String,
    /// Called with the URL once listening (`coord ui` prints it, opens it).
    pub on_listen: Option<OnListen>,
}

/// How much of the store each of serve's connections maps into memory:
/// none. Measured on the 1M-message store (BENCHMARKS.md), 32 clients ran
/// no faster with 256 MB mapped than with SQLite's own page cache (within
/// the run-to-run noise, ±15%). `COORD_SERVE_MMAP_MB` maps that many, for
/// that measurement.
const MMAP_MB: u64 = 0;

fn mmap_bytes() -> u64 {
    std::env::var("COORD_SERVE_MMAP_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(MMAP_MB)
        * 1024
        * 1024
}

/// How often the retention pass runs while serving.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// One retention pass, logged in one line when it deleted anything.
fn purge(db: &Db, days: u32) {
    let done = match db {
        Db::Sqlite(path) => LocalStore::open(path).and_then(|s| s.purge(days)).map(Some),
        Db::Postgres(url) => crate::pgstore::PgStore::open(url).and_then(|s| s.purge(days)),
    };
    match done {
        // Another replica holds the retention lock: it runs the pass.
        Ok(None) => {}
        Ok(Some(p)) if p == crate::store::Purged::default() => {}
        Ok(Some(p)) => crate::out::note(&format!(
            "coord serve: retention ({days} days) deleted {} messages, {} done todos, {} idempotency keys, {} expired locks",
            p.messages, p.todos, p.keys, p.locks
        )),
        Err(e) => crate::out::note(&format!("coord serve: retention pass failed: {e}")),
    }
}

#[derive(Clone)]
struct AppState {
    /// The connections that write: one on SQLite (it has one writer at a
    /// time anyway), several on PostgreSQL (each write waits for its own
    /// commit to reach the disk; one connection would queue every write
    /// behind the last one's). Writes run on the blocking pool, so one that
    /// waits for a busy store never holds a worker.
    writers: Arc<Vec<Mutex<Engine>>>,
    next_writer: Arc<std::sync::atomic::AtomicUsize>,
    /// Connections that only read (WAL lets them read while a write is in
    /// progress or waiting): reads never queue behind writes.
    readers: Arc<Vec<Mutex<Engine>>>,
    next_reader: Arc<std::sync::atomic::AtomicUsize>,
    /// Reads run on the request's worker (SQLite: tens of microseconds,
    /// never waiting); false for an engine that waits on a network
    /// (PostgreSQL), whose reads go to the blocking pool.
    inline_reads: bool,
    token: Option<Arc<str>>,
    /// The address bound, for the Host check (DNS rebinding).
    listen: Arc<Mutex<Option<SocketAddr>>>,
    /// Long-polls waiting for a message, by session: a message wakes the
    /// waiters of its recipient (a broadcast, all of them). A waiter holds
    /// no store connection and no worker.
    waiters: Arc<Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>>,
    wakes: Arc<park::Wakes>,
    /// The dashboard's sign-ins and change signal.
    ui: Arc<ui::Ui>,
}

impl AppState {
    fn waiter(&self, session: &str) -> Waiting {
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        Waiting {
            notify: w.entry(session.to_string()).or_default().clone(),
            session: session.to_string(),
            waiters: self.waiters.clone(),
        }
    }

    /// Wakes the long-polls a message to `to` concerns; `row` is the
    /// message when this server wrote it (see `park::Wakes`).
    fn wake(&self, to: &str, row: Option<Arc<Message>>) {
        self.ui.changed();
        if to == ALL_SESSIONS {
            self.wakes.broadcast(row);
        } else {
            self.wakes.direct();
        }
        let w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if to == ALL_SESSIONS {
            w.values().for_each(|n| n.notify_waiters());
        } else if let Some(n) = w.get(to) {
            n.notify_waiters();
        }
    }
}

/// A long-poll's place in the waiter map; leaving it (answered, timed out
/// or cancelled) drops the session's entry when no one else waits there,
/// so the map holds only sessions being waited for.
struct Waiting {
    notify: Arc<tokio::sync::Notify>,
    session: String,
    waiters: Arc<Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        // Ours and the map's: nobody else is waiting.
        if Arc::strong_count(&self.notify) <= 2 {
            w.remove(&self.session);
        }
    }
}

/// Opens the store, binds, prints `listening on http://ADDR:PORT` and serves
/// until Ctrl-C or SIGTERM.
pub fn serve(opts: ServeOptions) -> Result<()> {
    if !opts.listen.ip().is_loopback() && opts.token.is_none() && !opts.insecure {
        return Err(Error::Usage(format!(
            "refusing to listen on {} without --token: anyone on the network could read and write; \
             give --token (or COORD_SERVE_TOKEN), or --insecure if you mean it",
            opts.listen
        )));
    }
    // A certificate that cannot serve fails here, before anything binds.
    let tls = match &opts.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    // Refuse to start on a store we cannot read, before binding.
    let (writer, readers) = match &opts.db {
        Db::Sqlite(path) => {
            let store = LocalStore::open(path)?;
            store.status()?;
            if store.ensure_incremental_vacuum()? {
                crate::out::note(&format!(
                    "coord serve: {} rewritten once so that it can shrink (auto_vacuum)",
                    path.display()
                ));
            }
            let mmap = mmap_bytes();
            store.map_into_memory(mmap)?;
            let readers = (0..READERS)
                .map(|_| {
                    let s = LocalStore::open(path)?;
                    s.map_into_memory(mmap)?;
                    Ok(Mutex::new(Box::new(s) as Engine))
                })
                .collect::<Result<Vec<_>>>()?;
            (vec![Mutex::new(Box::new(store) as Engine)], readers)
        }
        Db::Postgres(url) => {
            let store = crate::pgstore::PgStore::open(url)?;
            store.status()?;
            // Connections open when first needed.
            let readers = (0..PG_READERS)
                .map(|_| Mutex::new(Box::new(store.another()) as Engine))
                .collect();
            let mut writers: Vec<Mutex<Engine>> = (1..PG_WRITERS)
                .map(|_| Mutex::new(Box::new(store.another()) as Engine))
                .collect();
            writers.push(Mutex::new(Box::new(store) as Engine));
            (writers, readers)
        }
    };
    let state = AppState {
        writers: Arc::new(writer),
        next_writer: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        readers: Arc::new(readers),
        next_reader: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        inline_reads: matches!(opts.db, Db::Sqlite(_)),
        ui: Arc::new(ui::Ui::new(&opts.ui_user)),
        token: opts.token.map(Arc::from),
        listen: Arc::new(Mutex::new(None)),
        waiters: Arc::new(Mutex::new(std::collections::HashMap::new())),
        wakes: Arc::default(),
    };
    let max_connections = connection_bound(opts.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS));
    let io = |e: std::io::Error| Error::Usage(format!("cannot listen on {}: {e}", opts.listen));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io)?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        *state.listen.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr);
        let scheme = if tls.is_some() { "https" } else { "http" };
        crate::out::out(&format!("listening on {scheme}://{addr}\n"));
        if let Some(f) = opts.on_listen {
            f(&format!("{scheme}://{addr}"));
        }
        // Retention never holds up a start, nor a write for longer than a
        // batch: on a connection of its own, after listening, now and
        // hourly.
        // A write on another replica wakes the long-polls held here.
        if let Db::Postgres(url) = &opts.db {
            let st = state.clone();
            crate::pgstore::PgStore::listen(url, move |to| st.wake(to, None))?;
        }
        // 0: no retention (`coord ui` on a machine's own store).
        let (db, days) = (opts.db, opts.retain_days);
        if days > 0 {
            std::thread::spawn(move || {
                loop {
                    purge(&db, days);
                    std::thread::sleep(PURGE_EVERY);
                }
            });
        }
        accept_loop(listener, router(state), max_connections, tls).await;
        Ok::<(), Error>(())
    })?;
    crate::out::note("coord serve: stopped");
    Ok(())
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r.into_response(),
        }
    };
}

mod conn;
mod guard;
mod page;
mod park;
mod reply;
mod routes;
mod tls;
mod ui;

#[cfg(unix)]
pub use conn::raise_fd_limit;
use conn::*;
use guard::*;
use reply::*;
use routes::*;

/// Read connections: a few, so reads on the workers rarely meet.
const READERS: usize = 4;
/// PostgreSQL read connections. Each is a backend process of the
/// database: more of them overlap more round trips, and cost more in
/// switching between processes. Measured on 2 cores (BENCHMARKS.md):
/// three readers and three writers served 0.57× of serve-on-SQLite at 225
/// µs of CPU a request, six and six 0.51× at 292 µs. Three round trips in
/// flight per replica still answer thousands of requests a second across a
/// network.
const PG_READERS: usize = 3;
/// PostgreSQL write connections (see `AppState::writers`).
const PG_WRITERS: usize = 3;

/// Runs a read. On SQLite it runs on this worker: a read takes tens of
/// microseconds and never waits for a writer (WAL), so handing it to the
/// blocking pool would cost more in thread switches than it saves. On
/// PostgreSQL it waits on the network, so it goes to the blocking pool.
async fn with_reader<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&dyn Coord) -> Result<T> + Send + 'static,
) -> Result<T> {
    if st.inline_reads {
        return read_now(st, f);
    }
    let st = st.clone();
    tokio::task::spawn_blocking(move || read_now(&st, f))
        .await
        .unwrap_or_else(|e| Err(Error::Failed(format!("the read failed: {e}"))))
}

/// A read on a free read connection, here and now.
fn read_now<T>(st: &AppState, f: impl FnOnce(&dyn Coord) -> Result<T>) -> Result<T> {
    let n = st.readers.len();
    let start = st
        .next_reader
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for i in 0..n {
        if let Ok(guard) = st.readers[(start + i) % n].try_lock() {
            return f(guard.as_ref());
        }
    }
    let guard = st.readers[start % n]
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    f(guard.as_ref())
}

/// Runs a write on the blocking pool: it may wait for the store's lock
/// (another process, up to the busy timeout), and must not hold a worker
/// that `/health` and reads need meanwhile.
async fn with_writer<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&dyn Coord) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (writers, next) = (st.writers.clone(), st.next_writer.clone());
    tokio::task::spawn_blocking(move || {
        let n = writers.len();
        let start = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..n {
            if let Ok(guard) = writers[(start + i) % n].try_lock() {
                return f(guard.as_ref());
            }
        }
        let guard = writers[start % n].lock().unwrap_or_else(|p| p.into_inner());
        f(guard.as_ref())
    })
    .await
    .unwrap_or_else(|e| Err(Error::Failed(format!("the write failed: {e}"))))
}

#[cfg(test)]
mod waiter_tests {
    use super::*;

    #[test]
    fn the_waiter_map_keeps_only_sessions_being_waited_for() {
        let map: Arc<Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>> =
            Arc::default();
        let wait = |s: &str| {
            let mut w = map.lock().unwrap();
            Waiting {
                notify: w.entry(s.to_string()).or_default().clone(),
                session: s.to_string(),
                waiters: map.clone(),
            }
        };
        let a1 = wait("A/x");
        let a2 = wait("A/x");
        let many: Vec<Waiting> = (0..1000).map(|i| wait(&format!("S/{i}"))).collect();
        assert_eq!(map.lock().unwrap().len(), 1001);
        drop(many);
        assert_eq!(map.lock().unwrap().len(), 1);
        drop(a1);
        // A second poll of A/x still waits there.
        assert!(map.lock().unwrap().contains_key("A/x"));
        drop(a2);
        assert!(map.lock().unwrap().is_empty());
    }
}

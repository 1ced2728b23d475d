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

use crate::backend::Coord;
use crate::backend::local::{LocalStore, http_status};
use crate::error::{Error, Result};
use crate::model::*;

/// Request bodies larger than this are answered 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest idempotency key accepted.
const MAX_KEY_LEN: usize = 200;

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub token: Option<String>,
    pub insecure: bool,
    /// `--retain DAYS`.
    pub retain_days: u32,
}

/// How often the retention pass runs while serving.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// One retention pass, logged in one line when it deleted anything.
fn purge(store: &LocalStore, days: u32) {
    match store.purge(days) {
        Ok(p) if p == crate::backend::local::Purged::default() => {}
        Ok(p) => crate::out::note(&format!(
            "coord serve: retention ({days} days) deleted {} messages, {} done todos, {} idempotency keys, {} expired locks",
            p.messages, p.todos, p.keys, p.locks
        )),
        Err(e) => crate::out::note(&format!("coord serve: retention pass failed: {e}")),
    }
}

#[derive(Clone)]
struct AppState {
    /// The one connection that writes; writes run on the blocking pool, so
    /// one that waits for a busy store never holds a worker.
    writer: Arc<Mutex<LocalStore>>,
    /// Connections that only read (WAL lets them read while a write is in
    /// progress or waiting): reads never queue behind writes.
    readers: Arc<Vec<Mutex<LocalStore>>>,
    next_reader: Arc<std::sync::atomic::AtomicUsize>,
    token: Option<Arc<str>>,
    /// The address bound, for the Host check (DNS rebinding).
    listen: Arc<Mutex<Option<SocketAddr>>>,
    /// Long-polls waiting for a message, by session: a message wakes the
    /// waiters of its recipient (a broadcast, all of them). A waiter holds
    /// no store connection and no worker.
    waiters: Arc<Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>>,
}

/// The longest `wait` a long-poll may ask for, in seconds.
const MAX_WAIT_SECS: u64 = 60;

impl AppState {
    fn waiter(&self, session: &str) -> Waiting {
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        Waiting {
            notify: w.entry(session.to_string()).or_default().clone(),
            session: session.to_string(),
            waiters: self.waiters.clone(),
        }
    }

    fn wake(&self, to: &str) {
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
    // Refuse to start on a store we cannot read, before binding.
    let store = LocalStore::open(&opts.db)?;
    store.status()?;
    if store.ensure_incremental_vacuum()? {
        crate::out::note(&format!(
            "coord serve: {} rewritten once so that it can shrink (auto_vacuum)",
            opts.db.display()
        ));
    }
    purge(&store, opts.retain_days);
    let readers = (0..READERS)
        .map(|_| LocalStore::open(&opts.db).map(Mutex::new))
        .collect::<Result<Vec<_>>>()?;
    let state = AppState {
        writer: Arc::new(Mutex::new(store)),
        readers: Arc::new(readers),
        next_reader: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        token: opts.token.map(Arc::from),
        listen: Arc::new(Mutex::new(None)),
        waiters: Arc::new(Mutex::new(std::collections::HashMap::new())),
    };
    #[cfg(unix)]
    raise_fd_limit();
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
        crate::out::out(&format!("listening on http://{addr}\n"));
        let writer = state.writer.clone();
        let days = opts.retain_days;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_EVERY);
            tick.tick().await; // the first tick is now: done above
            loop {
                tick.tick().await;
                let w = writer.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    purge(&w.lock().unwrap_or_else(|p| p.into_inner()), days)
                })
                .await;
            }
        });
        accept_loop(listener, router(state)).await;
        Ok::<(), Error>(())
    })?;
    crate::out::note("coord serve: stopped");
    Ok(())
}

/// At most this many connections are open at once, and at most
/// `MAX_PER_PEER` from one address, counting every connection: idle ones,
/// held long-polls and requests whose body is still arriving. A new
/// connection over either bound is not made to wait: one of that peer (or
/// of the peer holding the most) is closed instead — the oldest idle one,
/// else the oldest held long-poll (answered empty: its waiter asks again),
/// else the oldest request still sending its body. So nothing a peer opens
/// can keep a real request out.
pub const MAX_CONNECTIONS: usize = 1024;
pub const MAX_PER_PEER: usize = 256;
/// A client must send a request's headers within this time, also on an idle
/// keep-alive connection, or the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// And its body within this time, or it is answered 408.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection asked to close may take to finish its answer.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long in-flight requests may take to finish after Ctrl-C / SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The open connections, oldest first per peer, each with the handle that
/// asks it to close.
#[derive(Default)]
struct Conns {
    next: u64,
    by_peer: std::collections::HashMap<std::net::IpAddr, std::collections::VecDeque<Conn>>,
}

/// One open connection: how to ask it to close, and its state.
struct Conn {
    id: u64,
    close: Arc<tokio::sync::Notify>,
    state: Arc<ConnState>,
}

/// What eviction asks of a connection, kept by its service as requests
/// come and go.
#[derive(Default)]
pub(crate) struct ConnState {
    /// Requests in flight (a long-poll counts while it waits).
    busy: std::sync::atomic::AtomicUsize,
    /// Milliseconds since the server started when it last finished a
    /// request (or was accepted), or when its current request started.
    idle_since: std::sync::atomic::AtomicU64,
    /// Set while a long-poll is held (the cheapest to end early).
    holding: std::sync::atomic::AtomicBool,
    /// Asked to close: a held long-poll answers at once.
    cut: std::sync::atomic::AtomicBool,
    cut_now: tokio::sync::Notify,
}

impl ConnState {
    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut_now.notify_waiters();
    }
}

/// A connection idle for less than this is never closed to make room: a
/// new one gets to send its request, a keep-alive one its next.
const MIN_IDLE_TO_EVICT: Duration = Duration::from_secs(1);

fn clock_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Counts a connection's requests in flight, so that eviction picks only
/// idle connections.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S, B> hyper::service::Service<hyper::Request<B>> for Counted<S>
where
    S: hyper::service::Service<hyper::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<S::Response, S::Error>> + Send>,
    >;

    fn call(&self, mut req: hyper::Request<B>) -> Self::Future {
        use std::sync::atomic::Ordering;
        self.state.busy.fetch_add(1, Ordering::SeqCst);
        self.state.idle_since.store(clock_ms(), Ordering::SeqCst);
        // The handlers see their connection (a long-poll ends when it is
        // asked to close).
        req.extensions_mut().insert(self.state.clone());
        let state = self.state.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            state.idle_since.store(clock_ms(), Ordering::SeqCst);
            state.busy.fetch_sub(1, Ordering::SeqCst);
            r
        })
    }
}

impl Conn {
    /// How readily this connection is closed to make room: 0 idle for a
    /// while, 1 a held long-poll, 2 a request in flight for a while (its
    /// body still arriving, or a write waiting for the store), 3 one that
    /// only just arrived and has not sent a whole request (under a flood of
    /// new connections, the oldest of them makes room for the next); None
    /// for a request that just started (it gets to finish).
    fn eviction_rank(&self) -> Option<u8> {
        use std::sync::atomic::Ordering;
        // A held long-poll has said all it will: it can go at once.
        if self.state.holding.load(Ordering::SeqCst) {
            return Some(1);
        }
        let quiet = clock_ms().saturating_sub(self.state.idle_since.load(Ordering::SeqCst))
            >= MIN_IDLE_TO_EVICT.as_millis() as u64;
        match (quiet, self.state.busy.load(Ordering::SeqCst)) {
            (true, 0) => Some(0),
            (true, _) => Some(2),
            (false, 0) => Some(3),
            (false, _) => None,
        }
    }
}

impl Conns {
    /// Registers a new connection from `peer`, asking another to close
    /// where a bound is reached. None when a bound is reached and every
    /// connection there has a request just started: then the new one is
    /// turned away (the bounds hold; a moment later there is room).
    fn open(
        &mut self,
        peer: std::net::IpAddr,
    ) -> Option<(u64, Arc<tokio::sync::Notify>, Arc<ConnState>)> {
        if self
            .by_peer
            .get(&peer)
            .is_some_and(|q| q.len() >= MAX_PER_PEER)
            && !self.evict(peer)
        {
            return None;
        }
        let total: usize = self.by_peer.values().map(|q| q.len()).sum();
        if total >= MAX_CONNECTIONS {
            let mut peers: Vec<(usize, std::net::IpAddr)> =
                self.by_peer.iter().map(|(ip, q)| (q.len(), *ip)).collect();
            peers.sort_unstable_by(|a, b| b.cmp(a));
            if !peers.into_iter().any(|(_, ip)| self.evict(ip)) {
                return None;
            }
        }
        self.next += 1;
        let close = Arc::new(tokio::sync::Notify::new());
        let state = Arc::new(ConnState::default());
        state
            .idle_since
            .store(clock_ms(), std::sync::atomic::Ordering::SeqCst);
        self.by_peer.entry(peer).or_default().push_back(Conn {
            id: self.next,
            close: close.clone(),
            state: state.clone(),
        });
        Some((self.next, close, state))
    }

    /// Closes `peer`'s most evictable connection (the oldest of the
    /// lowest rank), if it has one; answers whether it did. It leaves the
    /// count at once: its task finishes the close in the background.
    fn evict(&mut self, peer: std::net::IpAddr) -> bool {
        let Some(q) = self.by_peer.get_mut(&peer) else {
            return false;
        };
        let pick = q
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.eviction_rank().map(|r| (r, i)))
            .min();
        if let Some((_, i)) = pick
            && let Some(c) = q.remove(i)
        {
            c.state.cut();
            // Stored as a permit if the connection is not waiting yet.
            c.close.notify_one();
            if q.is_empty() {
                self.by_peer.remove(&peer);
            }
            return true;
        }
        false
    }

    fn close(&mut self, peer: std::net::IpAddr, id: u64) {
        if let Some(q) = self.by_peer.get_mut(&peer)
            && let Some(i) = q.iter().position(|c| c.id == id)
        {
            q.remove(i);
            if q.is_empty() {
                self.by_peer.remove(&peer);
            }
        }
    }
}

/// Accepts connections without ever blocking on a limit (see
/// `MAX_CONNECTIONS`), serves each with hyper's HTTP/1 (header-read timeout
/// on), and on a signal stops accepting and lets in-flight requests finish.
/// axum::serve offers neither the timeout nor the limits.
async fn accept_loop(listener: tokio::net::TcpListener, app: Router) {
    let conns = Arc::new(Mutex::new(Conns::default()));
    let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                // Out of file descriptors and the like: back off, go on.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        let _ = tcp.set_nodelay(true);
        let ip = peer.ip();
        let Some((id, close, state)) = conns.lock().unwrap_or_else(|p| p.into_inner()).open(ip)
        else {
            drop(tcp); // over a bound, with nothing to make room: turned away
            continue;
        };
        let service = Counted {
            inner: hyper_util::service::TowerToHyperService::new(app.clone()),
            state,
        };
        let conns = conns.clone();
        let live = live.clone();
        let mut stop = stop_rx.clone();
        live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {},
                _ = close.notified() => {
                    // Its answer (a long-poll's empty one) gets a moment;
                    // a body that never arrives does not.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
                },
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                },
            }
            conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .close(ip, id);
            live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while live.load(std::sync::atomic::Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Unix: as many file descriptors as the hard limit allows (up to 64k), so
/// that the connection bounds, not the default of 1,024, are what holds.
#[cfg(unix)]
pub fn raise_fd_limit() {
    // SAFETY: plain libc calls on a struct owned by this frame.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            let want = lim.rlim_max.min(65_536);
            if lim.rlim_cur < want {
                lim.rlim_cur = want;
                let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    // Windows: Ctrl-Break, the console window closing, logoff and shutdown
    // stop the server as cleanly as Ctrl-C does.
    #[cfg(windows)]
    let term = async {
        use tokio::signal::windows as w;
        async fn wait<S>(s: std::io::Result<S>, recv: impl AsyncFnOnce(S)) {
            match s {
                Ok(s) => recv(s).await,
                Err(_) => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = wait(w::ctrl_break(), async |mut s| { s.recv().await; }) => {},
            _ = wait(w::ctrl_close(), async |mut s| { s.recv().await; }) => {},
            _ = wait(w::ctrl_logoff(), async |mut s| { s.recv().await; }) => {},
            _ = wait(w::ctrl_shutdown(), async |mut s| { s.recv().await; }) => {},
        }
    };
    #[cfg(not(any(unix, windows)))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/status", get(status))
        .route("/messages", post(send_message).get(list_messages))
        .route("/messages/{id}/read", post(mark_read))
        .route("/todos", post(add_todo).get(list_todos))
        .route("/todos/{id}/done", post(complete_todo))
        .route("/locks", post(claim_lock).get(list_locks))
        .route("/locks/{id}", delete(release_lock))
        .route("/components/{project}/{component}", put(set_component))
        .route("/workflows/{name}", put(set_workflow))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{id}", put(touch_session))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth))
        .route("/health", get(health));
    Router::new()
        .nest("/api/coord", api)
        .fallback(|| async { error(404, "no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), browser_guard))
        .layer(middleware::from_fn(log))
        .with_state(state)
}

// --- middleware --------------------------------------------------------------

/// One line per request: method, path, status, milliseconds. Never a body,
/// a query or a header.
async fn log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    crate::out::note(&format!(
        "{method} {} {} {ms:.1}ms",
        crate::text::cell(&path, 200),
        resp.status().as_u16()
    ));
    resp
}

/// Keeps web pages out. A browser adds `Origin` to every cross-site
/// request (our clients never send one); a form or `fetch` without a
/// preflight can only send text/plain, form or multipart bodies; and a
/// rebound DNS name reaches a token-less loopback server with a foreign
/// `Host`. Each of these is refused before any handler runs.
async fn browser_guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if req.headers().contains_key(header::ORIGIN) {
        return error(
            403,
            "requests from web pages (with an Origin header) are refused".into(),
        );
    }
    // Every POST and PUT of the contract carries a JSON body. (A DELETE
    // carries none, and a browser cannot send one cross-site unasked.)
    let with_body = matches!(req.method().as_str(), "POST" | "PUT");
    if with_body && !is_json(req.headers()) {
        return error(
            415,
            "a write's body must be sent as Content-Type: application/json".into(),
        );
    }
    if st.token.is_none() {
        let listen = *st.listen.lock().unwrap_or_else(|p| p.into_inner());
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !host_allowed(host, listen) {
            return error(
                403,
                format!(
                    "Host {:?} is not this server's address; without --token only loopback names are served",
                    clip(host)
                ),
            );
        }
    }
    next.run(req).await
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            let t = t.trim().to_ascii_lowercase();
            t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
        })
}

/// A `Host` a token-less server answers: a loopback name or address, or the
/// address it listens on (any port: a proxy may map it).
fn host_allowed(host: &str, listen: Option<SocketAddr>) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback() || listen.is_some_and(|l| l.ip() == ip),
        Err(_) => false,
    }
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &st.token {
        // RFC 9110: the scheme name is case-insensitive.
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, t)| t.trim());
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return error(401, "missing or wrong bearer token".into());
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// --- helpers ---------------------------------------------------------------

fn error(status: u16, detail: String) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(json!({ "detail": detail }))).into_response()
}

fn error_response(e: &Error) -> Response {
    if let Error::Store { .. } = e {
        // The detail stays generic on the wire; the operator sees the cause.
        crate::out::note(&format!("coord serve: {e}"));
    }
    let code = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = json!({ "detail": e.detail() });
    if let Error::Conflict { lock: Some(l), .. } = e {
        body["lock"] = serde_json::to_value(l).unwrap_or(Value::Null);
    }
    (code, axum::Json(body)).into_response()
}

/// A request refused before it reached the store.
struct Reject(u16, String);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn ok(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (code, axum::Json(body)).into_response()
}

/// Read connections: a few, so reads on the workers rarely meet.
const READERS: usize = 4;

/// Runs a read on this worker, on a free read connection. A read takes
/// tens of microseconds and never waits for a writer (WAL), so handing it
/// to the blocking pool would cost more in thread switches than it saves.
fn with_reader<T>(st: &AppState, f: impl FnOnce(&LocalStore) -> Result<T>) -> Result<T> {
    let n = st.readers.len();
    let start = st
        .next_reader
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for i in 0..n {
        if let Ok(guard) = st.readers[(start + i) % n].try_lock() {
            return f(&guard);
        }
    }
    let guard = st.readers[start % n]
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    f(&guard)
}

/// Runs a write on the blocking pool: it may wait for the store's lock
/// (another process, up to the busy timeout), and must not hold a worker
/// that `/health` and reads need meanwhile.
async fn with_writer<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&LocalStore) -> Result<T> + Send + 'static,
) -> Result<T> {
    let writer = st.writer.clone();
    tokio::task::spawn_blocking(move || {
        let guard = writer.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    })
    .await
    .unwrap_or_else(|e| Err(Error::Failed(format!("the write failed: {e}"))))
}

async fn read_json<T: DeserializeOwned>(body: Body) -> std::result::Result<T, Reject> {
    let bytes = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        axum::body::to_bytes(body, MAX_BODY_BYTES),
    )
    .await
    .map_err(|_| {
        Reject(
            408,
            format!(
                "the request body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        )
    })?
    .map_err(|_| Reject(413, format!("request body over {MAX_BODY_BYTES} bytes")))?;
    serde_json::from_slice(&bytes).map_err(|e| Reject(422, format!("invalid JSON body: {e}")))
}

fn parse_id(s: &str) -> std::result::Result<i64, Reject> {
    s.trim()
        .parse()
        .map_err(|_| Reject(422, format!("id must be an integer, not {:?}", clip(s))))
}

fn clip(s: &str) -> String {
    crate::text::cell(s, 60)
}

/// The query string as pairs; repeated keys keep the last.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<String>) -> std::result::Result<Query, Reject> {
        let raw = raw.unwrap_or_default();
        serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
            .map(Query)
            .map_err(|e| Reject(400, format!("bad query string: {e}")))
    }
    fn get(&self, k: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }
    /// An optional integer id parameter.
    fn id(&self, k: &str) -> std::result::Result<Option<i64>, Reject> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Reject(422, format!("{k} must be an integer, not {:?}", clip(&v)))),
        }
    }

    fn flag(&self, k: &str) -> std::result::Result<bool, Reject> {
        match self
            .get(k)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("false" | "0" | "no") => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some(other) => Err(Reject(
                422,
                format!("{k} must be true or false, not {:?}", clip(other)),
            )),
        }
    }
}

fn idempotency_key(h: &HeaderMap) -> std::result::Result<Option<String>, Reject> {
    match h.get("idempotency-key") {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if !s.is_empty() && s.len() <= MAX_KEY_LEN => Ok(Some(s.to_string())),
            _ => Err(Reject(
                400,
                format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible characters"),
            )),
        },
    }
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r.into_response(),
        }
    };
}

async fn do_write(st: AppState, h: HeaderMap, w: Write) -> Response {
    let key = tri!(idempotency_key(&h));
    let wakes = match &w {
        Write::SendMessage(m) => Some(canonical_session(&m.to_session)),
        _ => None,
    };
    let state = st.clone();
    let result = with_writer(&st, move |s| {
        let a = s.apply(&w, key.as_deref())?;
        Ok((http_status(&w, &a.written), a.written.to_json(), a.replayed))
    })
    .await;
    match result {
        Ok((status, body, replayed)) => {
            if let Some(to) = wakes {
                state.wake(&to);
            }
            let mut resp = ok(status, body);
            if replayed {
                resp.headers_mut().insert(
                    crate::backend::http::REPLAYED_HEADER,
                    axum::http::HeaderValue::from_static("true"),
                );
            }
            resp
        }
        Err(e) => error_response(&e),
    }
}

async fn do_read<T: serde::Serialize>(
    st: AppState,
    f: impl FnOnce(&LocalStore) -> Result<T>,
) -> Response {
    json_response(with_reader(&st, f))
}

/// A read's answer as JSON, or its error.
fn json_response<T: serde::Serialize>(r: Result<T>) -> Response {
    match r.and_then(|v| {
        serde_json::to_vec(&v).map_err(|e| Error::Failed(format!("cannot encode the answer: {e}")))
    }) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error_response(&e),
    }
}

// --- handlers --------------------------------------------------------------

async fn health() -> Response {
    ok(
        200,
        json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }),
    )
}

async fn status(State(st): State<AppState>) -> Response {
    do_read(st, |s| s.status()).await
}

/// A write whose whole description is the JSON body.
async fn body_write<T: DeserializeOwned>(
    st: AppState,
    h: HeaderMap,
    body: Body,
    make: impl FnOnce(T) -> Write,
) -> Response {
    let b: T = tri!(read_json(body).await);
    do_write(st, h, make(b)).await
}

/// A write on `/{id}/…` with a small JSON body.
async fn id_write<T: DeserializeOwned>(
    st: AppState,
    id: String,
    h: HeaderMap,
    body: Body,
    make: impl FnOnce(i64, T) -> Write,
) -> Response {
    let id = tri!(parse_id(&id));
    let b: T = tri!(read_json(body).await);
    do_write(st, h, make(id, b)).await
}

async fn send_message(State(st): State<AppState>, h: HeaderMap, body: Body) -> Response {
    body_write(st, h, body, Write::SendMessage).await
}

async fn add_todo(State(st): State<AppState>, h: HeaderMap, body: Body) -> Response {
    body_write(st, h, body, Write::AddTodo).await
}

async fn claim_lock(State(st): State<AppState>, h: HeaderMap, body: Body) -> Response {
    body_write(st, h, body, Write::ClaimLock).await
}

#[derive(serde::Deserialize)]
struct SessionBody {
    session: String,
}

async fn mark_read(
    State(st): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    body: Body,
) -> Response {
    id_write(st, id, h, body, |id, b: SessionBody| Write::MarkRead {
        id,
        session: b.session,
    })
    .await
}

#[derive(serde::Deserialize)]
struct DoneBody {
    completed_by: String,
}

async fn complete_todo(
    State(st): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    body: Body,
) -> Response {
    id_write(st, id, h, body, |id, b: DoneBody| Write::CompleteTodo {
        id,
        completed_by: b.completed_by,
    })
    .await
}

async fn set_component(
    State(st): State<AppState>,
    Path((project, component)): Path<(String, String)>,
    h: HeaderMap,
    body: Body,
) -> Response {
    body_write(st, h, body, |update| Write::SetComponent {
        project,
        component,
        update,
    })
    .await
}

async fn touch_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    body: Body,
) -> Response {
    body_write(st, h, body, |update| Write::TouchSession {
        session_id: id,
        update,
    })
    .await
}

async fn list_sessions(State(st): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let q = tri!(Query::parse(q));
    let within = match q.get("active_within") {
        None => None,
        Some(w) => match w.trim().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return error(
                    422,
                    format!("active_within must be seconds, not {:?}", clip(&w)),
                );
            }
        },
    };
    let limit = tri!(list_limit(&q)) as usize;
    counted(with_reader(&st, move |s| {
        let mut v = s.sessions(within)?.unwrap_or_default();
        let total = v.len() as u64;
        v.truncate(limit);
        Ok((v, total))
    }))
}

async fn set_workflow(
    State(st): State<AppState>,
    Path(name): Path<String>,
    h: HeaderMap,
    body: Body,
) -> Response {
    body_write(st, h, body, |update| Write::SetWorkflow { name, update }).await
}

async fn list_messages(
    State(st): State<AppState>,
    conn: Option<axum::Extension<Arc<ConnState>>>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = tri!(Query::parse(q));
    let session = q.get("session");
    let limit = match q.get("limit") {
        None => None,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_MESSAGE_LIMIT).contains(&n) => Some(n),
            _ => {
                return error(
                    422,
                    format!("limit must be 1 to {MAX_MESSAGE_LIMIT}, not {:?}", clip(&l)),
                );
            }
        },
    };
    let newest_first = match q.get("order").map(|o| o.to_ascii_lowercase()).as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => return error(422, format!("order must be asc or desc, not {:?}", clip(o))),
    };
    let after_id = match q.get("after_id") {
        None => None,
        Some(a) => match a.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return error(
                    422,
                    format!("after_id must be an integer, not {:?}", clip(&a)),
                );
            }
        },
    };
    // v1.1: from_session lists what a session sent, instead of `session`.
    let (session, sent) = match q.get("from_session") {
        Some(from) => (from, true),
        None => match session {
            Some(s) => (s, false),
            None => {
                return error(
                    422,
                    "query parameter session (or from_session) is required".into(),
                );
            }
        },
    };
    let wait = match q.get("wait") {
        None => 0,
        Some(w) => match w.trim().parse::<u64>() {
            Ok(n) if n <= MAX_WAIT_SECS => n,
            _ => {
                return error(
                    422,
                    format!(
                        "wait must be 0 to {MAX_WAIT_SECS} seconds, not {:?}",
                        clip(&w)
                    ),
                );
            }
        },
    };
    let query = MessageQuery {
        session,
        unread_only: tri!(q.flag("unread")),
        limit,
        newest_first,
        after_id,
        sent,
    };
    // Long-poll: hold the answer until a message matches or the time is up.
    // The wake-up is armed before each read, so none slips between them.
    let holds = wait > 0 && !query.sent && (query.unread_only || query.after_id.is_some());
    let until = tokio::time::Instant::now() + Duration::from_secs(wait);
    let waiting = holds.then(|| st.waiter(&canonical_session(&query.session)));
    let conn = conn.map(|c| c.0);
    let cut = || {
        conn.as_ref()
            .is_some_and(|c| c.cut.load(std::sync::atomic::Ordering::SeqCst))
    };
    let page = loop {
        let mut woken = waiting.as_ref().map(|w| Box::pin(w.notify.notified()));
        if let Some(w) = woken.as_mut() {
            w.as_mut().enable();
        }
        let mut closing = conn.as_ref().map(|c| Box::pin(c.cut_now.notified()));
        if let Some(c) = closing.as_mut() {
            c.as_mut().enable();
        }
        let q = query.clone();
        let page = with_reader(&st, move |s| s.messages_page(&q));
        match (&page, woken) {
            (Ok(p), Some(w))
                if p.messages.is_empty() && tokio::time::Instant::now() < until && !cut() =>
            {
                if let Some(c) = &conn {
                    c.holding.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let closed = async {
                    match closing {
                        Some(c) => c.await,
                        None => std::future::pending().await,
                    }
                };
                let again = tokio::select! {
                    r = tokio::time::timeout_at(until, w) => r.is_ok(),
                    // Evicted to make room: answer what there is (nothing
                    // new); the waiter asks again.
                    _ = closed => false,
                };
                if let Some(c) = &conn {
                    c.holding.store(false, std::sync::atomic::Ordering::SeqCst);
                }
                if !again {
                    break page;
                }
            }
            _ => break page,
        }
    };
    drop(waiting);
    let total = page.as_ref().ok().and_then(|p| p.total);
    let mut resp = json_response(page.map(|p| p.messages));
    if let Some(t) = total.filter(|_| resp.status().is_success()) {
        resp.headers_mut().insert(
            crate::backend::http::TOTAL_HEADER,
            axum::http::HeaderValue::from(t),
        );
    }
    resp
}

async fn list_todos(State(st): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let q = tri!(Query::parse(q));
    let status = match q.get("status") {
        None => StatusFilter::Pending,
        Some(s) => match StatusFilter::parse(&s) {
            Some(f) => f,
            None => {
                return error(
                    422,
                    format!("status must be pending, done or all, not {:?}", clip(&s)),
                );
            }
        },
    };
    let query = TodoQuery {
        user: q.get("user"),
        include_unassigned: tri!(q.flag("include_unassigned")),
        project: q.get("project"),
        status,
        limit: Some(tri!(list_limit(&q))),
        after_id: tri!(q.id("after_id")),
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT) as usize;
    counted(with_reader(&st, move |s| {
        let v = s.todos(&query)?;
        // Counted only when there may be more than the page.
        let total = if v.len() >= limit {
            s.todo_count(&query)?
        } else {
            v.len() as u64
        };
        Ok((v, total))
    }))
}

/// `limit`: 1 to `MAX_LIST_LIMIT`, `DEFAULT_LIST_LIMIT` when not given.
fn list_limit(q: &Query) -> std::result::Result<u32, Reject> {
    match q.get("limit") {
        None => Ok(DEFAULT_LIST_LIMIT),
        Some(l) => match l.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_LIST_LIMIT).contains(&n) => Ok(n),
            _ => Err(Reject(
                422,
                format!("limit must be 1 to {MAX_LIST_LIMIT}, not {:?}", clip(&l)),
            )),
        },
    }
}

/// A list and how many matched before its limit, as `X-Total-Count`.
fn counted<T: serde::Serialize>(r: Result<(Vec<T>, u64)>) -> Response {
    match r {
        Ok((v, total)) => {
            let mut resp = json_response(Ok(v));
            if resp.status().is_success() {
                resp.headers_mut().insert(
                    crate::backend::http::TOTAL_HEADER,
                    axum::http::HeaderValue::from(total),
                );
            }
            resp
        }
        Err(e) => error_response(&e),
    }
}

async fn list_locks(State(st): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let q = tri!(Query::parse(q));
    let query = LockQuery {
        project: q.get("project"),
        session_id: q.get("session_id"),
        limit: Some(tri!(list_limit(&q))),
        after_id: tri!(q.id("after_id")),
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT) as usize;
    counted(with_reader(&st, move |s| {
        let v = s.locks(&query)?;
        let total = if v.len() >= limit {
            s.lock_count(&query)?
        } else {
            v.len() as u64
        };
        Ok((v, total))
    }))
}

async fn release_lock(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    let id = tri!(parse_id(&id));
    let q = tri!(Query::parse(q));
    let force = tri!(q.flag("force"));
    let session_id = q.get("session_id").unwrap_or_default();
    if session_id.is_empty() && !force {
        return error(
            422,
            "query parameter session_id is required (or force=true)".into(),
        );
    }
    do_write(
        st,
        h,
        Write::ReleaseLock {
            id,
            session_id,
            force,
        },
    )
    .await
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

//! Connections: accepting them, the bounds on how many are open (every
//! connection counts, held long-polls and unfinished bodies included), the
//! header and body deadlines, and stopping on a signal.

use super::*;

/// At most this many connections are open at once (`--max-connections`;
/// on Unix never more than the file descriptors allow, less a reserve for
/// the store and the log), and at most three quarters of them from one
/// address (a fleet behind one NAT or proxy is one address), counting every
/// connection: idle ones, held long-polls and requests whose body is still
/// arriving. A new connection over either bound is not made to wait: one of
/// that peer (or of the peer holding the most) is closed instead — the
/// oldest idle one, else the oldest held long-poll (answered empty: its
/// waiter asks again), else the oldest request still sending its body. So
/// nothing a peer opens can keep a real request out, nor use up the file
/// descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept for everything but connections.
#[cfg(unix)]
const FD_RESERVE: usize = 64;
/// A client must send a request's headers within this time, also on an idle
/// keep-alive connection, or the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// And its body within this time, or it is answered 408.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection asked to close may take to finish its answer.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long in-flight requests may take to finish after Ctrl-C / SIGTERM.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The open connections, oldest first per peer, each with the handle that
/// asks it to close.
pub(super) struct Conns {
    /// The bounds: in all, and from one address.
    max: usize,
    per_peer: usize,
    next: u64,
    by_peer: std::collections::HashMap<std::net::IpAddr, std::collections::VecDeque<Conn>>,
}

/// One open connection: how to ask it to close, and its state.
pub(super) struct Conn {
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
    pub(super) holding: std::sync::atomic::AtomicBool,
    /// Asked to close: a held long-poll answers at once.
    pub(super) cut: std::sync::atomic::AtomicBool,
    pub(super) cut_now: tokio::sync::Notify,
    /// A long-poll that waits may park (see `park`): not while a request
    /// that could not be parked is replayed.
    pub(super) parkable: std::sync::atomic::AtomicBool,
    /// The wait a handler handed over, and the stand-in answer to drop.
    pub(super) park: Mutex<Option<super::park::Park>>,
    pub(super) swallow: std::sync::atomic::AtomicBool,
    /// The deadline of a replayed long-poll (its wait already begun).
    pub(super) resume: Mutex<Option<super::park::Resume>>,
}

impl ConnState {
    pub(super) fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut_now.notify_waiters();
    }
}

/// A connection idle for less than this is never closed to make room: a
/// new one gets to send its request, a keep-alive one its next.
pub(super) const MIN_IDLE_TO_EVICT: Duration = Duration::from_secs(1);

pub(super) fn clock_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Counts a connection's requests in flight, so that eviction picks only
/// idle connections.
#[derive(Clone)]
pub(super) struct Counted<S> {
    inner: S,
    pub(super) state: Arc<ConnState>,
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
    pub(super) fn eviction_rank(&self) -> Option<u8> {
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
    /// No connections yet, with at most `max` of them (a quarter kept for
    /// addresses other than the busiest).
    pub(super) fn new(max: usize) -> Conns {
        let max = max.max(4);
        Conns {
            max,
            per_peer: max * 3 / 4,
            next: 0,
            by_peer: std::collections::HashMap::new(),
        }
    }

    /// Registers a new connection from `peer`, asking another to close
    /// where a bound is reached. None when a bound is reached and every
    /// connection there has a request just started: then the new one is
    /// turned away (the bounds hold; a moment later there is room).
    pub(super) fn open(
        &mut self,
        peer: std::net::IpAddr,
    ) -> Option<(u64, Arc<tokio::sync::Notify>, Arc<ConnState>)> {
        if self
            .by_peer
            .get(&peer)
            .is_some_and(|q| q.len() >= self.per_peer)
            && !self.evict(peer)
        {
            return None;
        }
        let total: usize = self.by_peer.values().map(|q| q.len()).sum();
        if total >= self.max {
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
    pub(super) fn evict(&mut self, peer: std::net::IpAddr) -> bool {
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

    pub(super) fn close(&mut self, peer: std::net::IpAddr, id: u64) {
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
pub(super) async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    max: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let conns = Arc::new(Mutex::new(Conns::new(max)));
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
        state
            .parkable
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let service = Counted {
            inner: hyper_util::service::TowerToHyperService::new(app.clone()),
            state,
        };
        let conns = conns.clone();
        let live = live.clone();
        let mut stop = stop_rx.clone();
        live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => park::serve_one(tcp, service, &close, &mut stop).await,
                // The handshake has the header-read deadline: a client that
                // opens and says nothing is dropped, like one that sends no
                // request.
                Some(tls) => {
                    // Boxed, as the TLS connection: a plain one's task
                    // stays the size of what it holds.
                    let shake = tokio::select! {
                        s = tokio::time::timeout(HEADER_READ_TIMEOUT, Box::pin(tls.accept(tcp))) => s.ok().and_then(|s| s.ok()),
                        _ = close.notified() => None,
                    };
                    if let Some(stream) = shake {
                        Box::pin(park::serve_one(
                            Box::new(stream),
                            service,
                            &close,
                            &mut stop,
                        ))
                        .await;
                    }
                }
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

/// The most connections this process can hold: `wanted`, within what the
/// file descriptors allow (raised first to the hard limit).
pub(super) fn connection_bound(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        raise_fd_limit();
        // SAFETY: plain libc call on a struct owned by this frame.
        let soft = unsafe {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            (libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0).then_some(lim.rlim_cur)
        };
        if let Some(soft) = soft {
            let fds = usize::try_from(soft).unwrap_or(usize::MAX);
            return wanted.min(fds.saturating_sub(FD_RESERVE).max(4));
        }
    }
    wanted
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

pub(super) async fn shutdown_signal() {
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

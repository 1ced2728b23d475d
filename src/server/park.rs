//! Held long-polls parked below hyper. A long-poll with nothing to answer
//! would keep hyper's connection state for its whole wait (two 8 KB
//! buffers, the request, the handler's future): some 30 KB a poll. Instead
//! the handler hands its wait to the connection and answers a stand-in
//! that never reaches the client; hyper lets go of the connection, and
//! what stays is the socket, the request's bytes and the wait. When the
//! wait ends (a message, the deadline, the connection asked to close) the
//! request is replayed into a new hyper connection on the same socket, and
//! its handler answers as if it had waited all along: one handler, one
//! answer format, every check (token, Host) run again.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::*;

/// A parked request longer than this (it never is: a GET's head) is held
/// the old way, inside hyper.
const RECORD_MAX: usize = 8 * 1024;

/// A long-poll's wait, handed from its handler to its connection.
pub(super) struct Park {
    pub(super) waiting: Waiting,
    pub(super) woken: Pin<Box<tokio::sync::futures::OwnedNotified>>,
    pub(super) until: tokio::time::Instant,
    /// What had woken the polls before its last read, and what a broadcast
    /// must be to answer it alone (see `Wakes`).
    pub(super) seen: (u64, u64),
    pub(super) wakes: Arc<Wakes>,
    pub(super) answerable: Option<Answerable>,
}

/// An unread long-poll of `session` for messages after `after`.
pub(super) struct Answerable {
    pub(super) session: String,
    pub(super) after: i64,
}

/// How a replayed long-poll goes on: the wait it began, and its answer when
/// the broadcast that woke it is all there is.
pub(super) struct Resume {
    pub(super) until: tokio::time::Instant,
    pub(super) answer: Option<Arc<Message>>,
}

/// What has woken the held polls of this server: a broadcast wakes every
/// one, and a poll that nothing but that broadcast came for since its
/// last (empty) read is answered from the broadcast's row, not a read of
/// its own. Anything else since (a direct message to anyone, another
/// broadcast, one written through another replica, whose row this server
/// has not got) and the poll reads as before.
pub(super) struct Wakes {
    direct: std::sync::atomic::AtomicU64,
    broadcasts: std::sync::atomic::AtomicU64,
    last: Mutex<Option<(u64, Arc<Message>)>>,
    /// Woken polls answer REPLAYS_AT_ONCE at a time: a broadcast to
    /// thousands of them is answered in batches, never thousands of
    /// requests in the HTTP machinery at once.
    turns: Arc<tokio::sync::Semaphore>,
}

/// How many woken long-polls are replayed at once.
const REPLAYS_AT_ONCE: usize = 256;

impl Default for Wakes {
    fn default() -> Wakes {
        Wakes {
            direct: Default::default(),
            broadcasts: Default::default(),
            last: Default::default(),
            turns: Arc::new(tokio::sync::Semaphore::new(REPLAYS_AT_ONCE)),
        }
    }
}

impl Wakes {
    /// Taken before a read: what had woken polls by then.
    pub(super) fn seen(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::SeqCst;
        let _last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        (self.direct.load(SeqCst), self.broadcasts.load(SeqCst))
    }

    pub(super) fn direct(&self) {
        self.direct
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub(super) fn broadcast(&self, row: Option<Arc<Message>>) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let n = self
            .broadcasts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        *last = row.map(|r| (n, r));
    }

    /// The one broadcast written since `seen`, when nothing else was.
    fn only_broadcast_since(&self, seen: (u64, u64)) -> Option<Arc<Message>> {
        use std::sync::atomic::Ordering::SeqCst;
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if self.direct.load(SeqCst) != seen.0 || self.broadcasts.load(SeqCst) != seen.1 + 1 {
            return None;
        }
        last.as_ref()
            .filter(|(n, _)| *n == seen.1 + 1)
            .map(|(_, m)| m.clone())
    }
}

/// A broadcast as a recipient reads it before reading it: unread.
pub(super) fn unread_for_recipient(m: &Message) -> Message {
    Message {
        read: false,
        read_at: None,
        read_by: None,
        ..m.clone()
    }
}

/// The stand-in answer of a parked request, marked so that the request log
/// leaves it out (its replay is logged).
#[derive(Clone, Copy)]
pub(super) struct Parked;

pub(super) fn parked_response() -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    r.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    r.extensions_mut().insert(Parked);
    r
}

/// Bytes to give before the socket's own: a replayed request.
pub(super) struct Prefixed<IO> {
    prefix: Vec<u8>,
    at: usize,
    io: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.at);
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

/// The connection as hyper sees it: it records the bytes of the request in
/// flight (to replay it), and drops the stand-in answer of a parked one.
pub(super) struct Tap<IO> {
    io: Prefixed<IO>,
    state: Arc<ConnState>,
    record: Vec<u8>,
    overflow: bool,
    wrote: bool,
    /// A replay's place among those answering at once, given back with
    /// its answer's first bytes.
    turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<IO> Tap<IO> {
    pub(super) fn new(io: IO, state: Arc<ConnState>) -> Tap<IO> {
        Tap {
            io: Prefixed {
                prefix: Vec::new(),
                at: 0,
                io,
            },
            state,
            record: Vec::new(),
            overflow: false,
            wrote: false,
            turn: None,
        }
    }

    fn swallowing(&self) -> bool {
        self.state.swallow.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tap<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        // A read after an answer starts the next request.
        if this.wrote {
            this.record = Vec::new();
            this.overflow = false;
            this.wrote = false;
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if this.overflow || this.record.len() + new.len() > RECORD_MAX {
            this.overflow = true;
            this.record = Vec::new();
        } else {
            this.record.extend_from_slice(new);
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tap<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.wrote = true;
        // An answer (or a stand-in: parked again) gives back the turn.
        this.turn = None;
        if this.swallowing() {
            return Poll::Ready(Ok(data.len()));
        }
        Pin::new(&mut this.io.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.wrote = true;
        this.turn = None;
        if this.swallowing() {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut this.io.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.swallowing() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io.io).poll_shutdown(cx)
    }
}

/// How a parked wait ended.
enum Ended {
    /// A message, or the deadline: answer as the wait would have.
    Answer,
    /// The connection was asked to close (room for another, or the server
    /// stops): answer now, then close.
    Closing,
    /// The client hung up: nothing to answer.
    Gone,
}

/// Serves one connection with hyper's HTTP/1 until it ends, it is evicted
/// (`close`) or the server stops; a long-poll that waits is parked here,
/// outside hyper, and replayed when its wait ends.
pub(super) async fn serve_one<IO>(
    io: IO,
    service: Counted<hyper_util::service::TowerToHyperService<Router>>,
    close: &tokio::sync::Notify,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use std::sync::atomic::Ordering;
    let state = service.state.clone();
    let mut tap = Tap::new(io, state.clone());
    let mut closing = false;
    loop {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        if closing {
            b.keep_alive(false);
        }
        // On the heap, and gone while a long-poll is parked: the task
        // keeps only what the wait needs.
        let mut conn =
            Box::new(b.serve_connection(hyper_util::rt::TokioIo::new(tap), service.clone()));
        let done = tokio::select! {
            r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => r.is_ok(),
            _ = close.notified(), if !closing => {
                // Its answer (a long-poll's empty one) gets a moment; a body
                // that never arrives does not.
                Pin::new(&mut *conn).graceful_shutdown();
                let _ = tokio::time::timeout(CLOSE_GRACE, &mut *conn).await;
                return;
            },
            // A replay after a close or a stop is already the last answer
            // (keep-alive off): it is let through, not cut before it is read.
            _ = async { let _ = stop.wait_for(|s| *s).await; }, if !closing => {
                Pin::new(&mut *conn).graceful_shutdown();
                let _ = (&mut *conn).await;
                return;
            },
        };
        let park = state.park.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (true, Some(park)) = (done, park) else {
            return; // the connection is over (hyper has closed it)
        };
        state.swallow.store(false, Ordering::SeqCst);
        let parts = conn.into_parts();
        let leftover = parts.read_buf;
        tap = parts.io.into_inner();
        drop(parts.service);
        let mut request = std::mem::take(&mut tap.record);
        if tap.overflow || !leftover.is_empty() {
            // Not one whole request in hand: replay at once, and let the
            // handler hold it inside hyper this time.
            request.extend_from_slice(&leftover);
            state.parkable.store(false, Ordering::SeqCst);
            *state.resume.lock().unwrap_or_else(|p| p.into_inner()) = Some(Resume {
                until: park.until,
                answer: None,
            });
            tap.overflow = false;
            tap.io.prefix = request;
            continue;
        }
        drop(leftover);
        state.holding.store(true, Ordering::SeqCst);
        let Park {
            waiting,
            woken,
            until,
            seen,
            wakes,
            answerable,
        } = park;
        let mut peek = [0u8; 64];
        let mut answer = None;
        let ended = tokio::select! {
            _ = woken => {
                answer = answerable.and_then(|a| {
                    wakes
                        .only_broadcast_since(seen)
                        .filter(|m| m.from_session != a.session && m.id > a.after)
                });
                Ended::Answer
            }
            _ = tokio::time::sleep_until(until) => Ended::Answer,
            _ = close.notified() => Ended::Closing,
            _ = async { let _ = stop.wait_for(|s| *s).await; } => Ended::Closing,
            r = tokio::io::AsyncReadExt::read(&mut tap.io.io, &mut peek) => match r {
                Ok(n) if n > 0 => {
                    // Said more while waiting (pipelined): answer now, the
                    // rest follows the replay.
                    request.extend_from_slice(&peek[..n]);
                    Ended::Answer
                }
                _ => Ended::Gone,
            },
        };
        state.holding.store(false, Ordering::SeqCst);
        // The replayed handler arms its own wake-up before it reads.
        drop(waiting);
        let resume = match ended {
            Ended::Gone => return,
            Ended::Answer => Resume { until, answer },
            Ended::Closing => {
                closing = true;
                Resume {
                    until: tokio::time::Instant::now(),
                    answer: None,
                }
            }
        };
        state.parkable.store(!closing, Ordering::SeqCst);
        *state.resume.lock().unwrap_or_else(|p| p.into_inner()) = Some(resume);
        tap.io.prefix = request;
        tap.turn = wakes.turns.clone().acquire_owned().await.ok();
    }
}

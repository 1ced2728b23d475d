//! Delivery: a write goes now, or waits in the offline queue and goes
//! later, exactly once — and the one rule that says which, for a fresh
//! write and for one already waiting.

mod entry;
pub mod queue;

pub use entry::{Entry, MAX_LINE_BYTES, VERSION, WrittenBy};
pub use queue::{Queue, Report};

use crate::backend::Coord;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::model::{NewLock, Write, Written};
use crate::out::note;

/// What a failed write may still become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The network, the API or a busy server will come right: a fresh
    /// write is queued, a queued one keeps waiting.
    Later,
    /// The token was refused, or the server's certificate is not trusted
    /// (both settings of this machine): a queued write keeps waiting for the person
    /// to fix it; a fresh one is refused at once, so that they see it now.
    AfterFix,
    /// The server refused the write itself: never sent again.
    Never,
}

impl Error {
    /// The retry rule, once for everyone.
    pub fn retry(&self) -> Retry {
        match self {
            Error::Unreachable { .. } | Error::Server { .. } => Retry::Later,
            Error::Rejected {
                status: 408 | 429, ..
            } => Retry::Later,
            Error::Rejected { status: 401, .. } | Error::Untrusted { .. } => Retry::AfterFix,
            _ => Retry::Never,
        }
    }
}

/// Runs a write through `backend`. Over HTTP, a write that cannot reach
/// the API (or meets a busy or failing server) is queued with its
/// idempotency key and answers `None`, after saying so on stderr; a lock
/// claim is never queued, but resent with the same key while its time
/// lasts.
pub fn write(id: &Identity, backend: &dyn Coord, w: &Write) -> Result<Option<Written>> {
    check_size(w)?;
    if !backend.is_remote() {
        return backend.write(w, None).map(Some);
    }
    let key = uuid::Uuid::new_v4().to_string();
    if let Write::ClaimLock(l) = w {
        return claim_with_retries(backend, w, &key, l).map(Some);
    }
    let err = match backend.write(w, Some(&key)) {
        Ok(v) => return Ok(Some(v)),
        Err(e) if e.retry() == Retry::Later => e,
        Err(e) => return Err(e),
    };
    let why = match &err {
        Error::Unreachable { reason, .. } => format!("API unreachable: {reason}"),
        Error::Server { status, .. } => format!("API failed with HTTP {status}"),
        other => other.to_string(),
    };
    let entry = Entry::new(
        w.clone(),
        key,
        WrittenBy {
            user: id.user.clone(),
            machine: id.machine.clone(),
            session: id.session_id(),
            // Where it was meant to go, never with a password.
            api: id.api.as_deref().map(crate::identity::strip_credentials),
        },
    );
    let queue = Queue::new(id.queue_path());
    let waiting = queue.append(&entry).map_err(|qe| {
        Error::Failed(format!(
            "the write was NOT saved: {err}, and the offline queue could not be written ({qe})"
        ))
    })?;
    let plural = if waiting == 1 { "" } else { "s" };
    note(&format!(
        "queued ({why}); {waiting} write{plural} waiting — run coord sync"
    ));
    Ok(None)
}

/// How long a lock claim keeps resending when its answer was lost.
const CLAIM_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// A claim whose answer was lost may have been applied: resend it with the
/// same key (the server then answers what it did) until it answers or the
/// budget is spent, and say so honestly if it never does.
fn claim_with_retries(backend: &dyn Coord, w: &Write, key: &str, l: &NewLock) -> Result<Written> {
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(200);
    let mut sent = 0;
    loop {
        sent += 1;
        let err = match backend.write(w, Some(key)) {
            Ok(v) => return Ok(v),
            Err(e) if e.retry() == Retry::Later => e,
            Err(e) => return Err(e),
        };
        // A refused connection sent nothing: no doubt to resolve, no point
        // in waiting for it.
        if sent == 1
            && let Error::Unreachable { url, reason } = &err
            && reason == "connection refused"
        {
            return Err(Error::Unreachable {
                url: url.clone(),
                reason: "connection refused: nothing was sent, so nothing was claimed, and nothing was queued (a lock that cannot be confirmed is no lock)".into(),
            });
        }
        if start.elapsed() + pause >= CLAIM_BUDGET {
            return Err(Error::Failed(format!(
                "cannot tell whether the claim of {p}/{r} went through: {err} (sent {sent} times with the same key); \
                 check with `coord lock list --project {p}` before trying again — a lock that cannot be confirmed is no lock, so nothing was queued",
                p = l.project,
                r = l.resource
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_secs(2));
    }
}

/// A write larger than the server takes can never be delivered: refuse it
/// at once rather than queue it, on both backends alike.
fn check_size(w: &Write) -> Result<()> {
    let max = crate::wire::MAX_BODY_BYTES;
    let len = match w {
        Write::SendMessage(m) => serde_json::to_vec(m).map_or(0, |v| v.len()),
        Write::AddTodo(t) => serde_json::to_vec(t).map_or(0, |v| v.len()),
        other => serde_json::to_vec(other).map_or(0, |v| v.len()),
    };
    if len > max {
        return Err(Error::Usage(format!(
            "this write is {len} bytes as JSON, over the coord API's limit of {max} bytes (1 MiB); shorten it (a long text can live in a file the message names)"
        )));
    }
    Ok(())
}

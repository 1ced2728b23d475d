//! The `Coord` trait — one write method taking a `Write`, and typed reads —
//! that the embedded store, `coord serve`'s store and the HTTP client all
//! implement.

use crate::error::{Error, Result};
use crate::model::*;

/// What every backend can do. Writes go through one method taking a
/// [`Write`], so the offline queue and the server's idempotency handle every
/// mutation the same way. `key` is the idempotency key; `None` lets the
/// backend choose (a fresh one over HTTP, none on the local store).
pub trait Coord {
    /// Applies a write; says whether the answer is a replay of one given
    /// before to the same idempotency key (then nothing was applied now).
    fn apply(&self, w: &Write, key: Option<&str>) -> Result<Applied>;
    fn write(&self, w: &Write, key: Option<&str>) -> Result<Written> {
        self.apply(w, key).map(|a| a.written)
    }
    /// Messages and how many matched before the limit (None when the
    /// server does not say: a v1 server).
    fn messages_page(&self, q: &MessageQuery) -> Result<Page>;
    fn messages(&self, q: &MessageQuery) -> Result<Vec<Message>> {
        self.messages_page(q).map(|p| p.messages)
    }
    fn todos(&self, q: &TodoQuery) -> Result<Vec<Todo>>;
    fn locks(&self, q: &LockQuery) -> Result<Vec<Lock>>;
    fn status(&self) -> Result<Status>;
    /// v1.1: the sessions seen (within `active_within` seconds), most
    /// recent first; None when the server does not know sessions (v1).
    fn sessions(&self, active_within: Option<u64>) -> Result<Option<Vec<Session>>>;
    /// How many todos `q` matches without its limit, where that is cheap
    /// to ask (`coord serve`'s `X-Total-Count`).
    fn todo_count(&self, _q: &TodoQuery) -> Result<Option<u64>> {
        Ok(None)
    }
    /// How many active locks `q` matches without its limit, likewise.
    fn lock_count(&self, _q: &LockQuery) -> Result<Option<u64>> {
        Ok(None)
    }
    /// How many messages `session` has unread, where that is cheap to ask.
    fn unread_count(&self, _session: &str) -> Result<Option<u64>> {
        Ok(None)
    }
    /// The same for many sessions at once, in their order (the
    /// dashboard's table).
    fn unread_counts(&self, sessions: &[String]) -> Result<Vec<Option<u64>>> {
        sessions.iter().map(|s| self.unread_count(s)).collect()
    }
    /// The newest messages of the whole fleet (to or from `session` when
    /// given), newest first, each with who has read it: what `coord
    /// serve`'s dashboard shows. None where the engine cannot say (HTTP).
    fn timeline(&self, _session: Option<&str>, _limit: u32) -> Result<Option<Vec<Message>>> {
        Ok(None)
    }
    /// v1.2: what happened to message `id` at each recipient (shown,
    /// read, replied). None where the server cannot say (before v1.2).
    fn delivery(&self, _id: i64) -> Result<Option<Delivery>> {
        Ok(None)
    }
    /// v1.2: the sessions that edited `path` of `project` in the last
    /// `within_s` seconds, newest first (empty where unknown).
    fn touches(&self, _project: &str, _path: &str, _within_s: u64) -> Result<Vec<Touch>> {
        Ok(Vec::new())
    }
    /// v1.2: the live claims of `project` (as `locks`) and who edited its
    /// `path` in the last `within_s` seconds, in one answer. None where the
    /// server cannot answer both at once (then ask `locks` and `touches`).
    fn claims(&self, project: &str, path: &str, within_s: u64) -> Result<Option<Claims>> {
        Ok(Some(Claims {
            locks: self.locks(&LockQuery::claims_of(project))?,
            touches: self.touches(project, path, within_s)?,
        }))
    }
    /// Locks that expired in the last `within_s` seconds and are still
    /// kept (the dashboard flags them), the most recent first; empty where
    /// the engine cannot say (HTTP).
    fn expired_locks(&self, _within_s: u64, _limit: u32) -> Result<Vec<Lock>> {
        Ok(Vec::new())
    }
    /// Where the data lives, for people: a file path or a URL.
    fn location(&self) -> String;
    /// True when writes go over the network and may need the queue.
    fn is_remote(&self) -> bool;
}

/// What `coord serve` keeps its data in: any engine of the `Coord` trait
/// that may move between threads. The handlers see only this.
pub type Engine = Box<dyn Coord + Send>;

/// One page of messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub messages: Vec<Message>,
    /// How many matched before the limit, when known.
    pub total: Option<u64>,
}

impl Page {
    /// Leaves out what `session` sent itself: own messages are never unread
    /// (a v1 server may still list them), nor counted.
    pub fn drop_own(&mut self, session: &str) {
        let me = crate::model::canonical_session(session);
        let before = self.messages.len();
        self.messages
            .retain(|m| crate::model::canonical_session(&m.from_session) != me);
        let own = (before - self.messages.len()) as u64;
        self.total = self.total.map(|t| t.saturating_sub(own));
    }
}

/// What a write answered, and whether the server had applied it before.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub written: Written,
    pub replayed: bool,
}

fn unexpected(w: &Write) -> Error {
    Error::Protocol {
        endpoint: w.describe(),
        msg: "the answer is not the object this write returns".into(),
    }
}

/// Typed wrappers around [`Coord::write`].
pub trait CoordExt: Coord {
    fn send_message(&self, m: NewMessage) -> Result<Message> {
        let w = Write::SendMessage(m);
        match self.write(&w, None)? {
            Written::Message(m) => Ok(m),
            _ => Err(unexpected(&w)),
        }
    }
    fn claim_lock(&self, l: NewLock) -> Result<(Lock, bool)> {
        let w = Write::ClaimLock(l);
        match self.write(&w, None)? {
            Written::Lock { lock, created } => Ok((lock, created)),
            _ => Err(unexpected(&w)),
        }
    }
}

impl<T: Coord + ?Sized> CoordExt for T {}

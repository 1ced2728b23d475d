//! The session-start reads: the three reads of the contract under one
//! deadline (with the presence refresh beside them), and the offline queue
//! drained first.

use super::*;

/// What the hook found, whole or in part.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub session: String,
    pub user: String,
    /// None: could not be loaded (a note says why).
    pub messages: Option<Vec<Message>>,
    /// How many unread there are in all (the fetch asks for the newest
    /// only); None when the server does not say and the answer was full.
    pub message_total: Option<u64>,
    pub todos: Option<Vec<Todo>>,
    pub locks: Option<Vec<Lock>>,
    /// One-line notes for the model and the person (what failed).
    pub notes: Vec<String>,
    /// A line about queued writes, when there were any.
    pub queue: Option<String>,
    /// Unread messages left out because this conversation was shown them
    /// before (a resumed conversation's history still holds them).
    pub earlier: usize,
}

impl Snapshot {
    /// How many unread messages: the exact count when the server gave one,
    /// else what arrived.
    pub fn message_count(&self) -> usize {
        let fetched = self.messages.as_ref().map_or(0, Vec::len);
        self.message_total.map_or(fetched, |t| {
            usize::try_from(t).unwrap_or(usize::MAX).max(fetched)
        })
    }

    pub(crate) fn is_quiet(&self) -> bool {
        self.notes.is_empty()
            && self.queue.is_none()
            && self.messages.as_ref().is_some_and(Vec::is_empty)
            && self.todos.as_ref().is_some_and(Vec::is_empty)
            && self.locks.as_ref().is_some_and(Vec::is_empty)
    }
}

/// The longest deadline the hook keeps: safely inside the 10 s that
/// `install` gives Claude Code, which kills a slower hook and drops all it
/// would have said.
pub const MAX_TIMEOUT_MS: u64 = 8_000;
/// The shortest, so that a typo cannot make every read fail.
pub(crate) const MIN_TIMEOUT_MS: u64 = 50;
/// The most messages the hook asks for: the newest, more than a block of
/// under 10,000 characters can show; the count says how many there are.
pub(crate) const HOOK_MESSAGE_LIMIT: u32 = 100;
/// The most todos the hook asks the embedded store for.
pub(crate) const HOOK_TODO_LIMIT: u32 = 200;
/// The most of this session's locks the hook asks for.
pub(crate) const HOOK_LOCK_LIMIT: u32 = 200;

/// The deadline in force: flag > environment > identity.json > default,
/// capped to what Claude Code waits for. The second value is the setting
/// asked for when it was capped.
pub fn timeout(flag: Option<u64>, identity: Option<&Identity>) -> (Duration, Option<u64>) {
    let ms = flag
        .or_else(|| env_var("COORD_HOOK_TIMEOUT_MS").and_then(|v| v.trim().parse().ok()))
        .or_else(|| identity.and_then(|i| i.hook_timeout_ms))
        .unwrap_or(DEFAULT_TIMEOUT_MS);
    let kept = ms.clamp(MIN_TIMEOUT_MS, MAX_TIMEOUT_MS);
    (Duration::from_millis(kept), (kept != ms).then_some(ms))
}

pub(crate) enum Part {
    Messages(Result<crate::backend::Page, Error>),
    Todos(Result<Vec<Todo>, Error>),
    Locks(Result<Vec<Lock>, Error>),
}

/// The hook's three reads for `session` of `user` (also what the store's
/// EXPLAIN test checks).
pub fn queries(session: &str, user: &str) -> (MessageQuery, TodoQuery, LockQuery) {
    (
        MessageQuery {
            session: session.to_string(),
            unread_only: true,
            limit: Some(HOOK_MESSAGE_LIMIT),
            newest_first: true,
            after_id: None,
            sent: false,
        },
        TodoQuery {
            user: Some(user.to_string()),
            include_unassigned: true,
            project: None,
            status: StatusFilter::Pending,
            limit: Some(HOOK_TODO_LIMIT),
            after_id: None,
        },
        LockQuery {
            project: None,
            session_id: Some(session.to_string()),
            limit: Some(HOOK_LOCK_LIMIT),
            after_id: None,
        },
    )
}

/// Fetches the three reads concurrently and waits for them until
/// `deadline`; whatever has not answered by then is reported as such.
/// `touch`, when given, refreshes this session's presence alongside the
/// reads, at most once a minute (over HTTP a stamp file says when it last
/// landed; the embedded store asks its own `last_seen`), waiting for it at
/// most `PRESENCE_GRACE` and never past the deadline (a v1 server's 404
/// is ignored).
pub fn fetch(id: &Identity, started: Instant, limit: Duration, touch: Option<Write>) -> Snapshot {
    let deadline = started + limit;
    let mut touched: Option<mpsc::Receiver<()>> = None;
    let mut snap = Snapshot {
        session: id.session_id(),
        user: id.user.clone(),
        ..Snapshot::default()
    };
    let (mq, tq, lq) = queries(&id.session_id(), &id.user);
    let (tx, rx) = mpsc::channel::<Part>();
    let location = match &id.api {
        Some(api) => format!("the coord API at {}", redact_url(api)),
        None => format!("the local store {}", id.db_path.display()),
    };
    let budget = if touch.is_some() {
        connect::Budget::SessionStart { deadline }
    } else {
        connect::Budget::Hook { deadline }
    };
    match connect::open(id, budget) {
        Ok(Some(connect::Backend::Api(client))) => {
            let client = Arc::new(client);
            // Every read, and the parsing of its answer, on a thread of its
            // own: this thread only waits, so the deadline holds whatever
            // an answer's size or speed.
            let spawn = |f: Box<dyn FnOnce(&HttpCoord) -> Part + Send>| {
                let (c, tx) = (client.clone(), tx.clone());
                std::thread::spawn(move || {
                    let _ = tx.send(f(&c));
                });
            };
            spawn(Box::new(move |c| Part::Messages(c.messages_page(&mq))));
            spawn(Box::new(move |c| Part::Todos(c.todos(&tq))));
            spawn(Box::new(move |c| Part::Locks(c.locks(&lq))));
            let stamp = touch.as_ref().and_then(|w| presence_stamp(id, w));
            if let Some(w) = touch.filter(|_| !stamp.as_deref().is_some_and(presence_is_fresh)) {
                let (done, rx) = mpsc::channel();
                let c = client.clone();
                std::thread::spawn(move || {
                    if c.write(&w, None).is_ok()
                        && let Some(stamp) = stamp
                    {
                        stamp_presence(&stamp);
                    }
                    let _ = done.send(());
                });
                touched = Some(rx);
            }
        }
        // SQLite answers in microseconds and its waits are bounded by the
        // busy timeout, so the local reads need no threads.
        Ok(Some(connect::Backend::Store(s))) => {
            let _ = tx.send(Part::Messages(s.messages_page(&mq)));
            let _ = tx.send(Part::Todos(s.todos(&tq)));
            let _ = tx.send(Part::Locks(s.locks(&lq)));
            // Presence: a write, after the reads; a store this user cannot
            // write just keeps no presence.
            if let Some(w) = touch {
                s.touch_if_stale(&w, crate::presence::PRESENCE_FRESH);
            }
        }
        // A preview on a machine that never used coord: nothing to report,
        // and nothing to create.
        Ok(None) => {
            let _ = tx.send(Part::Messages(Ok(crate::backend::Page {
                messages: Vec::new(),
                total: Some(0),
            })));
            let _ = tx.send(Part::Todos(Ok(Vec::new())));
            let _ = tx.send(Part::Locks(Ok(Vec::new())));
        }
        Err(e) => {
            let msg = e.to_string();
            let again = || Error::Failed(msg.clone());
            let _ = tx.send(Part::Messages(Err(e)));
            let _ = tx.send(Part::Todos(Err(again())));
            let _ = tx.send(Part::Locks(Err(again())));
        }
    }
    drop(tx);

    let mut failures: Vec<(&str, String)> = Vec::new();
    let mut got = 0;
    while got < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(part) => {
                got += 1;
                match part {
                    Part::Messages(Ok(mut p)) => {
                        p.drop_own(&snap.session);
                        snap.message_total = p.total;
                        snap.messages = Some(p.messages);
                    }
                    Part::Todos(Ok(v)) => snap.todos = Some(v),
                    Part::Locks(Ok(v)) => snap.locks = Some(v),
                    Part::Messages(Err(e)) => failures.push(("messages", reason(&e))),
                    Part::Todos(Err(e)) => failures.push(("todos", reason(&e))),
                    Part::Locks(Err(e)) => failures.push(("locks", reason(&e))),
                }
            }
            Err(_) => break,
        }
    }
    // The presence refresh ran alongside the reads and has usually landed
    // with them. If not, it gets a moment more, inside the deadline: a
    // process that exits mid-request leaves the session unknown to the
    // fleet, and then messages to it are refused as to nobody.
    if let Some(done) = touched {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = done.recv_timeout(left.min(PRESENCE_GRACE));
    }
    let ms = limit.as_millis();
    // A client-side timeout is the deadline speaking: say it one way.
    for (_, why) in failures.iter_mut() {
        if why.starts_with("timed out") {
            *why = format!("no answer within the {ms} ms deadline");
        }
    }
    for (what, loaded) in [
        ("messages", snap.messages.is_some()),
        ("todos", snap.todos.is_some()),
        ("locks", snap.locks.is_some()),
    ] {
        if !loaded && !failures.iter().any(|(w, _)| *w == what) {
            failures.push((what, format!("no answer within the {ms} ms deadline")));
        }
    }
    let order = |w: &str| ["messages", "todos", "locks"].iter().position(|x| *x == w);
    failures.sort_by_key(|(w, _)| order(w));
    // One line per distinct cause, naming what it kept from loading.
    let mut causes: Vec<(String, Vec<&str>)> = Vec::new();
    for (what, why) in failures {
        match causes.iter_mut().find(|(w, _)| *w == why) {
            Some((_, list)) => list.push(what),
            None => causes.push((why, vec![what])),
        }
    }
    for (why, what) in causes {
        snap.notes.push(format!(
            "coord: {} not loaded from {location}: {why}. The session goes on without them.",
            what.join(", ")
        ));
    }
    snap
}

/// Share of the deadline the queue drain may use before the reads.
pub(crate) const DRAIN_SHARE: u32 = 40;
/// The largest queue file the hook reads; `coord sync` handles bigger ones.
pub(crate) const MAX_HOOK_QUEUE_BYTES: u64 = 4 * 1024 * 1024;

/// Delivers queued writes first, within part of the deadline, and answers
/// the line that reports it (None when there was nothing queued).
pub(crate) fn drain_queue(id: &Identity, started: Instant, limit: Duration) -> Option<String> {
    let api = id.api.as_ref()?;
    let queue = Queue::new(id.queue_path());
    if !queue.path().exists() {
        return None;
    }
    // Reading and parsing a queue this big would not fit the deadline.
    let bytes = queue.bytes();
    if bytes > MAX_HOOK_QUEUE_BYTES {
        return Some(format!(
            "coord queue: {} MB of queued writes wait, more than the hook delivers — run `coord sync`",
            bytes.div_ceil(1024 * 1024)
        ));
    }
    let budget = limit * DRAIN_SHARE / 100;
    let client = HttpCoord::for_identity(id, api, budget);
    match queue.drain(&client, Some(api), Some(started + budget), false) {
        Ok(r) if r.delivered + r.already + r.waiting + r.rejected == 0 => None,
        Ok(r) => {
            let mut line = format!(
                "coord queue: delivered {} queued write(s); {} still waiting",
                r.delivered + r.already,
                r.waiting
            );
            if r.elsewhere > 0 {
                line.push_str(&format!(" ({} written for another coord API)", r.elsewhere));
            }
            if r.rejected > 0 {
                line.push_str(&format!(
                    "; {} refused by the server (see {})",
                    r.rejected,
                    queue.rejected_path().display()
                ));
            }
            if r.waiting > 0 {
                line.push_str(" — run `coord sync` later");
            }
            Some(line)
        }
        Err(e) => Some(format!("coord queue: not delivered: {e}")),
    }
}

/// The preview's line about the queue: it says what waits and sends nothing.
pub(crate) fn waiting_line(id: &Identity) -> Option<String> {
    let n = Queue::new(id.queue_path()).len().ok()?;
    (n > 0).then(|| {
        format!("coord queue: {n} queued write(s) waiting; the hook would deliver them first (a preview sends nothing)")
    })
}

/// A failure in one line, without repeating the URL the note already names.
pub(crate) fn reason(e: &Error) -> String {
    let text = match e {
        Error::Unreachable { reason, .. } => reason.clone(),
        Error::Server { status, detail, .. } => format!("HTTP {status}: {detail}"),
        Error::Protocol { msg, .. } => format!("unexpected answer: {msg}"),
        other => other.to_string(),
    };
    crate::text::cell(&text, 300)
}

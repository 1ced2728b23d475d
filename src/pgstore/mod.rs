//! The PostgreSQL store (`coord serve --db postgres://…`): every object of
//! the contract in one database that several `coord serve` replicas share.
//! The same business rules as the SQLite store (read state per session,
//! lock exclusivity, idempotency), written so that they hold across
//! processes: a lock or an idempotency key is decided by a unique index,
//! never by a read followed by a write.
//!
//! The driver is `postgres`, the blocking face of tokio-postgres: the
//! storage trait is synchronous and `coord serve` already runs store calls
//! on its blocking pool, so each engine is one connection it owns, and the
//! server's engines are the pool.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use postgres::{Client, Config, NoTls, Row};

use crate::backend::{Applied, Coord, Page};
use crate::error::{Error, Result};
use crate::model::*;

mod conn;
mod delivery;
#[cfg(test)]
mod plan_tests;
mod read;
mod rows;
mod schema;
mod tls;
mod write;

pub use conn::{Conn, Run, Tx};
use rows::*;
use schema::RETENTION_LOCK;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long idempotency keys are remembered (as the SQLite store).
const IDEMPOTENCY_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
/// The channel a new message is announced on (its payload: the recipient).
pub const CHANNEL: &str = "coord_messages";

/// Whether `db` names a PostgreSQL database rather than a SQLite file.
pub fn is_url(db: &str) -> bool {
    let lower = db.trim().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// Where a connection goes and how: plain, or TLS when the URL says
/// `sslmode=require`.
#[derive(Clone)]
pub struct Target {
    config: Config,
    tls: Option<tls::Rustls>,
}

impl Target {
    pub fn connect(&self) -> std::result::Result<Client, postgres::Error> {
        match &self.tls {
            Some(t) => self.config.connect(t.clone()),
            None => self.config.connect(NoTls),
        }
    }
}

/// One connection to the database, reopened when it was lost.
pub struct PgStore {
    target: Target,
    /// The URL without its password, for every message.
    shown: String,
    client: Mutex<Option<Conn>>,
    /// The last error was the database ending the connection (see `write`).
    ended: std::sync::atomic::AtomicBool,
}

/// What the database (or the socket) said, in one line: the driver's own
/// text for a server error is only "db error".
fn said(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{}{tail}", &authority[at + 1..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The connection settings of `url`, with the standard `PG*` variables
/// filling what it leaves out (as libpq does).
pub fn target(url: &str) -> Result<Target> {
    let shown = redact(url);
    let mut c: Config = url.parse().map_err(|e| {
        Error::Usage(format!(
            "--db {shown}: not a PostgreSQL URL ({e}); write postgres://USER[:PASSWORD]@HOST[:PORT]/DB"
        ))
    })?;
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if c.get_hosts().is_empty() {
        c.host(&var("PGHOST").unwrap_or_else(|| "localhost".into()));
    }
    if c.get_ports().is_empty()
        && let Some(p) = var("PGPORT").and_then(|p| p.parse::<u16>().ok())
    {
        c.port(p);
    }
    if c.get_user().is_none() {
        match var("PGUSER") {
            Some(u) => {
                c.user(&u);
            }
            None => {
                return Err(Error::Usage(format!(
                    "--db {shown}: no user; write postgres://USER@HOST/DB or set PGUSER"
                )));
            }
        }
    }
    if c.get_password().is_none()
        && let Some(p) = var("PGPASSWORD")
    {
        c.password(&p);
    }
    if c.get_dbname().is_none()
        && let Some(d) = var("PGDATABASE")
    {
        c.dbname(&d);
    }
    // TLS when the URL asks for it, the certificate always checked; the
    // default (prefer) connects plainly.
    let tls = match c.get_ssl_mode() {
        postgres::config::SslMode::Require => Some(tls::Rustls::new()?),
        _ => {
            c.ssl_mode(postgres::config::SslMode::Disable);
            None
        }
    };
    c.connect_timeout(CONNECT_TIMEOUT);
    c.application_name("coord serve");
    // Every statement is prepared once per connection and written as index
    // ranges, so its one generic plan serves every call: planning the
    // inbox read afresh for its values cost more than running it. That
    // plan is made once, maybe while the tables are still small, so it
    // must not be a scan of a whole table that later grows: scans are
    // priced out (every read here has its index), and migration 4 keeps
    // the estimates from taking one session's rows for most of a table.
    let given = c.get_options().map(|o| format!("{o} ")).unwrap_or_default();
    c.options(&format!(
        "{given}-c plan_cache_mode=force_generic_plan -c enable_seqscan=off"
    ));
    Ok(Target { config: c, tls })
}

impl PgStore {
    /// Connects and migrates the schema forward; fails with a line naming
    /// the URL (never its password) when the database cannot be reached.
    pub fn open(url: &str) -> Result<PgStore> {
        let store = PgStore {
            target: target(url)?,
            shown: redact(url),
            client: Mutex::new(None),
            ended: Default::default(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Another connection to the same database, opened when first used
    /// (the schema is already there: `open` made it).
    pub fn another(&self) -> PgStore {
        PgStore {
            target: self.target.clone(),
            shown: self.shown.clone(),
            client: Mutex::new(None),
            ended: Default::default(),
        }
    }

    /// The connection, opened again when it was closed.
    fn conn(&self) -> Result<MutexGuard<'_, Option<Conn>>> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|c| c.client.is_closed()) {
            *guard = Some(Conn::new(self.target.connect().map_err(|e| self.down(&e))?));
        }
        Ok(guard)
    }

    /// Runs `f` on the connection; a connection that broke under it is
    /// dropped, so the next call opens a new one.
    fn with<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut guard = self.conn()?;
        let client = guard.as_mut().expect("connected above");
        let r = f(client);
        if client.client.is_closed() {
            *guard = None;
        }
        r
    }

    /// A read: a connection found broken (the database restarted, the
    /// backend was terminated) is replaced and the read asked once more.
    fn read<T>(&self, f: impl Fn(&mut Conn) -> Result<T>) -> Result<T> {
        match self.with(&f) {
            Err(Error::Unavailable(_)) => self.with(&f),
            r => r,
        }
    }

    /// A write. A connection the database ended while it sat idle (a
    /// terminated backend, a restart) answers its first statement with
    /// that ending (57P01-57P03), not having run it: the write is asked
    /// once more on a new connection rather than answered 503.
    fn write<T>(&self, f: impl Fn(&mut Conn) -> Result<T>) -> Result<T> {
        self.ended.store(false, std::sync::atomic::Ordering::SeqCst);
        match self.with(&f) {
            Err(Error::Unavailable(_))
                if self.ended.swap(false, std::sync::atomic::Ordering::SeqCst) =>
            {
                self.with(&f)
            }
            r => r,
        }
    }

    /// A transaction on the connection.
    fn tx<T>(&self, f: impl Fn(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.write(|c| {
            let tx = c.client.transaction().map_err(|e| self.db(e))?;
            let mut tx = Tx {
                tx,
                cache: &mut c.cache,
            };
            let out = f(&mut tx)?;
            tx.tx.commit().map_err(|e| self.db(e))?;
            Ok(out)
        })
    }

    /// The database could not be reached: the server answers 503 and the
    /// clients' writes wait in their queues (or go to another replica).
    fn down(&self, e: &postgres::Error) -> Error {
        let said = said(e);
        let hint = if said.contains("certificate") {
            "; set PGSSLROOTCERT to the PEM certificate of the CA that signed PostgreSQL's"
        } else {
            ""
        };
        Error::Unavailable(format!(
            "PostgreSQL at {} cannot be reached: {}{hint}",
            self.shown,
            crate::text::cell(&said, 200)
        ))
    }

    /// A database error: a lost connection is `down`, anything else a
    /// store error (a 500 that names nothing internal over the wire).
    fn db(&self, e: postgres::Error) -> Error {
        // No SQL state (the socket), a closed connection, or a state of
        // the classes "connection exception", "insufficient resources"
        // and "operator intervention" (a shutdown, a terminated backend).
        let gone = e
            .code()
            .is_none_or(|c| ["08", "53", "57"].iter().any(|k| c.code().starts_with(k)));
        if e.code()
            .is_some_and(|c| ["57P01", "57P02", "57P03"].contains(&c.code()))
        {
            self.ended.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if gone || e.is_closed() {
            return self.down(&e);
        }
        if e.code()
            .is_some_and(|c| c.code() == "22021" || c.code() == "22P05")
        {
            return Error::invalid(
                "a text field holds a NUL character, which the PostgreSQL store cannot keep (a message's subject and body can)",
            );
        }
        Error::Store {
            path: self.shown.clone().into(),
            msg: crate::text::cell(&said(&e), 300),
        }
    }

    fn migrate(&self) -> Result<()> {
        self.with(|c| {
            let mut tx = c.client.transaction().map_err(|e| self.db(e))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::MIGRATION_LOCK])
                .map_err(|e| self.db(e))?;
            tx.batch_execute("CREATE TABLE IF NOT EXISTS coord_schema (version INTEGER NOT NULL)")
                .map_err(|e| self.db(e))?;
            let v: Option<i32> = tx
                .query_opt("SELECT version FROM coord_schema", &[])
                .map_err(|e| self.db(e))?
                .map(|r| r.get(0));
            let mut v = match v {
                Some(v) => v,
                None => {
                    tx.execute("INSERT INTO coord_schema (version) VALUES (0)", &[])
                        .map_err(|e| self.db(e))?;
                    0
                }
            };
            if v > schema::SCHEMA_VERSION {
                return Err(Error::Store {
                    path: self.shown.clone().into(),
                    msg: format!(
                        "schema version {v} is newer than this coord-hook understands ({}); upgrade coord-hook",
                        schema::SCHEMA_VERSION
                    ),
                });
            }
            while v < schema::SCHEMA_VERSION {
                tx.batch_execute(schema::MIGRATIONS[v as usize])
                    .map_err(|e| self.db(e))?;
                v += 1;
                tx.execute("UPDATE coord_schema SET version = $1", &[&v])
                    .map_err(|e| self.db(e))?;
            }
            tx.commit().map_err(|e| self.db(e))
        })
    }

    /// Waits for announced messages on its own connection: calls `wake`
    /// with each recipient, as the notifications come and, every second, for
    /// any message written since that it was not told of (a notification
    /// lost with a dropped connection). Runs until the process ends;
    /// reconnects on its own.
    pub fn listen(url: &str, wake: impl Fn(&str) + Send + 'static) -> Result<()> {
        let target = target(url)?;
        let shown = redact(url);
        std::thread::Builder::new()
            .name("coord-listen".into())
            .spawn(move || read::listen_forever(&target, &shown, &wake))
            .map(|_| ())
            .map_err(|e| Error::Failed(format!("cannot start the listener: {e}")))
    }
}

impl Coord for PgStore {
    fn apply(&self, w: &Write, key: Option<&str>) -> Result<Applied> {
        let now = now_ms();
        // A keyed send claims its key in its own statement: one round trip.
        if let (Write::SendMessage(m), Some(key)) = (w, key) {
            if let Err((field, why)) = w.check_addresses() {
                return Err(Error::invalid(format!("{field}: {why}")));
            }
            let lapsed = now - IDEMPOTENCY_WINDOW_MS;
            if let Some(m) = self.write(|c| self.send(c, m, Some((key, lapsed)), now))? {
                return Ok(Applied {
                    written: Written::Message(m),
                    replayed: false,
                });
            }
            return self.tx(|tx| {
                Ok(Applied {
                    written: self.replay(tx, w, key)?,
                    replayed: true,
                })
            });
        }
        // Without a key, a write whose statements each stand on their own
        // (one statement, or a claim whose every step a unique index
        // decides) runs without BEGIN and COMMIT: two round trips fewer.
        if key.is_none() && !matches!(w, Write::MarkRead { .. } | Write::AddTodo(_)) {
            return self.write(|c| {
                Ok(Applied {
                    written: self.apply_in(c, w, now)?,
                    replayed: false,
                })
            });
        }
        self.tx(|tx| {
            if let Some(key) = key {
                // The key is claimed first: a unique index decides, across
                // replicas, which request applies the write; the others
                // wait for it and answer what it made.
                let claimed = tx
                    .query_opt(
                        "INSERT INTO idempotency (key, status, body, created_at, op) \
                         VALUES ($1, 0, '', $2, $3) \
                         ON CONFLICT (key) DO UPDATE SET status = 0, body = '', \
                         created_at = excluded.created_at, op = excluded.op, ref = NULL \
                         WHERE idempotency.created_at <= $4 RETURNING key",
                        &[&key, &now, &w.op_name(), &(now - IDEMPOTENCY_WINDOW_MS)],
                    )
                    .map_err(|e| self.db(e))?;
                if claimed.is_none() {
                    return Ok(Applied {
                        written: self.replay(tx, w, key)?,
                        replayed: true,
                    });
                }
            }
            let out = self.apply_in(tx, w, now)?;
            if let Some(key) = key {
                let status = i32::from(crate::wire::status_for(w, &out));
                let (body, reference) = match &out {
                    Written::Message(m) => (String::new(), Some(m.id)),
                    Written::Todo(t) => (String::new(), Some(t.id)),
                    other => (other.to_json().to_string(), None),
                };
                tx.execute(
                    "UPDATE idempotency SET status = $2, body = $3, ref = $4 WHERE key = $1",
                    &[&key, &status, &body, &reference],
                )
                .map_err(|e| self.db(e))?;
            }
            Ok(Applied {
                written: out,
                replayed: false,
            })
        })
    }

    fn messages_page(&self, q: &MessageQuery) -> Result<Page> {
        self.read(|c| self.messages_in(c, q))
    }

    fn todos(&self, q: &TodoQuery) -> Result<Vec<Todo>> {
        self.read(|c| self.todos_in(c, q, false)).map(|(v, _)| v)
    }

    fn locks(&self, q: &LockQuery) -> Result<Vec<Lock>> {
        self.read(|c| self.locks_in(c, q, false)).map(|(v, _)| v)
    }

    fn todo_count(&self, q: &TodoQuery) -> Result<Option<u64>> {
        self.read(|c| self.todos_in(c, q, true)).map(|(_, n)| n)
    }

    fn lock_count(&self, q: &LockQuery) -> Result<Option<u64>> {
        self.read(|c| self.locks_in(c, q, true)).map(|(_, n)| n)
    }

    fn status(&self) -> Result<Status> {
        let locks = self.locks(&LockQuery::default())?;
        self.read(|c| {
            let components = c
                .query(
                    "SELECT project, component, state, version, notes, updated_by, updated_at \
                     FROM components ORDER BY project, component",
                    &[],
                )
                .map_err(|e| self.db(e))?
                .iter()
                .map(component_row)
                .collect();
            let workflows = c
                .query(
                    "SELECT name, state, detail, updated_by, updated_at FROM workflows ORDER BY name",
                    &[],
                )
                .map_err(|e| self.db(e))?
                .iter()
                .map(workflow_row)
                .collect();
            Ok(Status {
                locks: locks.clone(),
                components,
                workflows,
            })
        })
    }

    fn sessions(&self, active_within: Option<u64>) -> Result<Option<Vec<Session>>> {
        let since = active_within.map_or(i64::MIN, |s| {
            now_ms()
                - i64::try_from(s)
                    .unwrap_or(i64::MAX / 1000)
                    .saturating_mul(1000)
        });
        self.read(|c| {
            Ok(Some(
                c.query(
                    &format!(
                        "SELECT {SESSION_COLS} FROM sessions WHERE last_seen >= $1 ORDER BY last_seen DESC"
                    ),
                    &[&since],
                )
                .map_err(|e| self.db(e))?
                .iter()
                .map(session_row)
                .collect(),
            ))
        })
    }

    fn unread_count(&self, session: &str) -> Result<Option<u64>> {
        let page = self.messages_page(&MessageQuery {
            session: session.into(),
            unread_only: true,
            limit: Some(1),
            ..Default::default()
        })?;
        Ok(page.total)
    }

    fn timeline(&self, session: Option<&str>, limit: u32) -> Result<Option<Vec<Message>>> {
        self.read(|c| self.timeline_in(c, session, limit)).map(Some)
    }

    fn expired_locks(&self, within_s: u64, limit: u32) -> Result<Vec<Lock>> {
        self.read(|c| self.expired_locks_in(c, within_s, limit))
    }

    fn delivery(&self, id: i64) -> Result<Option<Delivery>> {
        self.read(|c| self.delivery_in(c, id)).map(Some)
    }

    fn touches(&self, project: &str, path: &str, within_s: u64) -> Result<Vec<Touch>> {
        self.read(|c| self.touches_in(c, project, path, within_s))
    }

    fn location(&self) -> String {
        self.shown.clone()
    }

    fn is_remote(&self) -> bool {
        false
    }
}

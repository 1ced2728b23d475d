//! The embedded store: one SQLite file shared by every session of a machine,
//! and the store behind `coord serve`. All business rules of the contract
//! (read state per session, lock exclusivity, idempotency) live here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};

use super::{Applied, Coord, Page};
use crate::error::{Error, Result};
use crate::model::*;

/// Bump when the schema changes, and add a step to `MIGRATIONS`.
const SCHEMA_VERSION: i64 = 5;

/// Step N brings a database from user_version N to N+1.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    from_session TEXT NOT NULL,
    to_session TEXT NOT NULL,
    subject TEXT,
    body TEXT NOT NULL,
    created_by_user TEXT NOT NULL,
    created_by_machine TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX messages_to ON messages (to_session, id);
CREATE TABLE message_reads (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    session TEXT NOT NULL,
    read_at INTEGER NOT NULL,
    PRIMARY KEY (message_id, session)
) WITHOUT ROWID;
CREATE TABLE todos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    user TEXT,
    project TEXT,
    parent_id INTEGER,
    source TEXT,
    auto INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    created_by_user TEXT NOT NULL,
    created_by_machine TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    completed_by TEXT,
    completed_at INTEGER
);
CREATE INDEX todos_status ON todos (status, id);
CREATE TABLE locks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    resource TEXT NOT NULL,
    session_id TEXT NOT NULL,
    note TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (project, resource)
);
CREATE TABLE components (
    project TEXT NOT NULL,
    component TEXT NOT NULL,
    state TEXT NOT NULL,
    version TEXT,
    notes TEXT,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project, component)
);
CREATE TABLE workflows (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    detail TEXT,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX idempotency_age ON idempotency (created_at);
"#,
    r#"
ALTER TABLE idempotency ADD COLUMN op TEXT;
"#,
    r#"
-- Unread is cheap: a direct message carries its recipient's read state,
-- indexed on what is unread; a broadcast is read by a session when its id
-- is at or below the session's mark, or when it is one of the few
-- exceptions above the mark in message_reads.
ALTER TABLE messages ADD COLUMN read_at INTEGER;
UPDATE messages SET read_at = (
    SELECT r.read_at FROM message_reads r
    WHERE r.message_id = messages.id AND r.session = messages.to_session)
WHERE to_session <> 'ALL_SESSIONS';
DELETE FROM message_reads
WHERE message_id IN (SELECT id FROM messages WHERE to_session <> 'ALL_SESSIONS');
CREATE INDEX messages_unread ON messages (to_session, id) WHERE read_at IS NULL;
CREATE INDEX messages_from ON messages (from_session, id);
CREATE INDEX message_reads_session ON message_reads (session, message_id);
CREATE TABLE broadcast_marks (
    session TEXT PRIMARY KEY,
    upto INTEGER NOT NULL,
    at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO broadcast_marks (session, upto, at)
SELECT s.session,
       COALESCE(
           (SELECT min(m.id) FROM messages m
            WHERE m.to_session = 'ALL_SESSIONS' AND m.from_session <> s.session
              AND NOT EXISTS (SELECT 1 FROM message_reads r
                              WHERE r.message_id = m.id AND r.session = s.session)) - 1,
           (SELECT max(id) FROM messages WHERE to_session = 'ALL_SESSIONS')),
       s.at
FROM (SELECT session, max(read_at) AS at FROM message_reads GROUP BY session) s;
DELETE FROM message_reads
WHERE message_id <= (SELECT b.upto FROM broadcast_marks b WHERE b.session = message_reads.session);
-- Locks and todos: indexes the reads use.
CREATE INDEX locks_holder ON locks (session_id, expires_at);
CREATE INDEX locks_expiry ON locks (expires_at);
CREATE INDEX todos_pending_user ON todos (status, user, id);
-- Idempotency keys keep a reference to what they made, not the answer.
ALTER TABLE idempotency ADD COLUMN ref INTEGER;
"#,
    r#"
-- v1.1: replies, and the sessions the fleet has seen. Machine names are
-- upper-case from now on (session ids compare case-insensitively there).
ALTER TABLE messages ADD COLUMN in_reply_to INTEGER;
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    machine TEXT NOT NULL,
    name TEXT NOT NULL,
    project TEXT,
    client TEXT,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_seen ON sessions (last_seen);
UPDATE messages SET to_session = upper(substr(to_session, 1, instr(to_session, '/') - 1)) || substr(to_session, instr(to_session, '/'))
WHERE instr(to_session, '/') > 0;
UPDATE messages SET from_session = upper(substr(from_session, 1, instr(from_session, '/') - 1)) || substr(from_session, instr(from_session, '/'))
WHERE instr(from_session, '/') > 0;
UPDATE locks SET session_id = upper(substr(session_id, 1, instr(session_id, '/') - 1)) || substr(session_id, instr(session_id, '/'))
WHERE instr(session_id, '/') > 0;
"#,
    r#"
-- Every stored address in the one canonical form the code writes
-- (coord_canonical_session is model::canonical_session, registered for the
-- migration): step 4 missed the read records, so a session of a
-- lower-case machine saw broadcasts it had read as unread again. Two
-- spellings of one session collapse into one row.
UPDATE OR REPLACE message_reads SET session = coord_canonical_session(session);
UPDATE OR REPLACE broadcast_marks SET session = coord_canonical_session(session);
UPDATE OR REPLACE sessions SET session_id = coord_canonical_session(session_id),
    machine = coord_canonical_session(machine);
UPDATE messages SET to_session = coord_canonical_session(to_session)
WHERE to_session <> coord_canonical_session(to_session);
UPDATE messages SET from_session = coord_canonical_session(from_session)
WHERE from_session <> coord_canonical_session(from_session);
UPDATE locks SET session_id = coord_canonical_session(session_id)
WHERE session_id <> coord_canonical_session(session_id);
"#,
];

/// How long a writer waits for another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long idempotency keys are remembered: a week, so that a queue that
/// waited over a weekend (or a drain killed half-way) is still applied once.
const IDEMPOTENCY_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
pub const DEFAULT_TTL_HOURS: f64 = 2.0;
pub const MAX_TTL_HOURS: f64 = 168.0;

pub struct LocalStore {
    conn: Connection,
    path: PathBuf,
    /// How long to wait for another process's lock.
    busy: Duration,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl LocalStore {
    /// Opens (creating if needed) and migrates the store at `path`.
    pub fn open(path: &Path) -> Result<LocalStore> {
        Self::open_with_timeout(path, BUSY_TIMEOUT)
    }

    /// The same, never waiting longer than `busy` for another process (the
    /// hook passes what is left of its deadline).
    pub fn open_with_timeout(path: &Path, busy: Duration) -> Result<LocalStore> {
        if path.is_dir() {
            return Err(Error::Store {
                path: path.into(),
                msg: "is a directory, not a database file (set COORD_DB to a file path)".into(),
            });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Store {
                path: path.into(),
                msg: format!("cannot create folder {}: {e}", dir.display()),
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| store_err(path, e))?;
        stable_plans(&conn);
        let store = LocalStore {
            conn,
            path: path.to_path_buf(),
            busy,
        };
        store.retry_busy(|| store.init())?;
        store.check_version()?;
        Ok(store)
    }

    /// For the hook, which only reads: the store as `open_with_timeout`
    /// opens it, or, when it cannot be written (a read-only file or folder,
    /// another user's store), read-only — and if even the WAL's shared
    /// memory cannot be made, as an immutable snapshot.
    pub fn open_for_reading(path: &Path, busy: Duration) -> Result<LocalStore> {
        let probe = |s: &LocalStore| {
            s.db(s
                .conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                }))
        };
        // SQLite opens a file it cannot write read-only without a word; the
        // first read then fails on the WAL's shared memory.
        let first = match Self::open_with_timeout(path, busy) {
            Ok(s) => match probe(&s) {
                Ok(_) => return Ok(s),
                Err(e) => e,
            },
            Err(e) => e,
        };
        if !path.is_file() {
            return Err(first);
        }
        let ro = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let try_open = |target: &str| -> Result<LocalStore> {
            let conn = Connection::open_with_flags(target, ro).map_err(|e| store_err(path, e))?;
            stable_plans(&conn);
            let store = LocalStore {
                conn,
                path: path.to_path_buf(),
                busy,
            };
            store.db(store.conn.busy_timeout(busy))?;
            store.check_version()?;
            probe(&store)?;
            Ok(store)
        };
        let uri = |extra: &str| {
            let p = path
                .to_string_lossy()
                .replace('%', "%25")
                .replace('?', "%3f")
                .replace('#', "%23");
            let p = p.replace('\\', "/");
            let lead = if p.starts_with('/') { "" } else { "/" };
            format!("file:{lead}{p}?mode=ro{extra}")
        };
        try_open(&uri(""))
            .or_else(|_| try_open(&uri("&immutable=1")))
            .map_err(|_| first)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(self.busy)?;
        // Reading the schema first turns "not a database" into an error here.
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == 0 {
            // First, before WAL and before any table: lets the file shrink
            // (see `purge`).
            self.conn
                .execute_batch("PRAGMA auto_vacuum = INCREMENTAL")?;
        }
        if version < SCHEMA_VERSION {
            self.conn
                .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        }
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        if version < SCHEMA_VERSION {
            self.conn.create_scalar_function(
                "coord_canonical_session",
                1,
                rusqlite::functions::FunctionFlags::SQLITE_UTF8
                    | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
                |ctx| Ok(canonical_session(&ctx.get::<String>(0)?)),
            )?;
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            // Another process may have migrated while we waited for the lock.
            let mut v: i64 = tx.row("PRAGMA user_version", [], |r| r.get(0))?;
            while v < SCHEMA_VERSION {
                tx.execute_batch(MIGRATIONS[v as usize])?;
                v += 1;
                tx.pragma_update(None, "user_version", v)?;
            }
            tx.commit()?;
        }
        Ok(())
    }

    /// Checks the schema is one this build understands.
    fn check_version(&self) -> Result<()> {
        let v: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| store_err(&self.path, e))?;
        if v > SCHEMA_VERSION {
            return Err(Error::Store {
                path: self.path.clone(),
                msg: format!(
                    "schema version {v} is newer than this coord-hook understands ({SCHEMA_VERSION}); upgrade coord-hook"
                ),
            });
        }
        Ok(())
    }

    /// SQLite may answer BUSY where the busy handler does not apply (journal
    /// mode changes on a fresh file); retry those within the busy timeout.
    fn retry_busy<T>(&self, mut f: impl FnMut() -> rusqlite::Result<T>) -> Result<T> {
        let start = Instant::now();
        loop {
            match f() {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) && start.elapsed() < self.busy =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => return other.map_err(|e| store_err(&self.path, e)),
            }
        }
    }

    fn tx(&self) -> Result<Transaction<'_>> {
        self.retry_busy(|| Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate))
    }

    fn db<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|e| store_err(&self.path, e))
    }
}

fn store_err(path: &Path, e: rusqlite::Error) -> Error {
    let msg = match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
            "is not a coord database (corrupt, or another kind of file)".to_string()
        }
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseCorrupt => {
            "is corrupt (database disk image is malformed); move it aside or restore a backup"
                .to_string()
        }
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::CannotOpen => {
            "cannot be opened (check the path and its permissions)".to_string()
        }
        other => other.to_string(),
    };
    Error::Store {
        path: path.into(),
        msg,
    }
}

// --- queries ---------------------------------------------------------------

/// The todos query with only the filters asked for written out, so that
/// SQLite can use its indexes (`?N IS NULL OR …` keeps it from any).
fn todos_sql(q: &TodoQuery) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut conds = Vec::new();
    let mut params: Vec<V> = Vec::new();
    let mut param = |v: V| {
        params.push(v);
        format!("?{}", params.len())
    };
    if q.status != StatusFilter::All {
        conds.push(format!(
            "status = {}",
            param(V::Text(q.status.as_str().into()))
        ));
    }
    if let Some(u) = &q.user {
        let p = param(V::Text(u.clone()));
        conds.push(if q.include_unassigned {
            format!("(user = {p} OR user IS NULL)")
        } else {
            format!("user = {p}")
        });
    }
    if let Some(pr) = &q.project {
        conds.push(format!("project = {}", param(V::Text(pr.clone()))));
    }
    if let Some(a) = q.after_id {
        conds.push(format!("id > {}", param(V::Integer(a))));
    }
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    // LIMIT -1 is SQLite's "no limit".
    let limit = param(V::Integer(q.limit.map_or(-1, i64::from)));
    (
        format!("SELECT {TODO_COLS} FROM todos {filter} ORDER BY id LIMIT {limit}"),
        params,
    )
}

/// The active locks, with only the filters asked for written out.
fn locks_sql(q: &LockQuery, now: i64) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut params: Vec<V> = vec![V::Integer(now)];
    let mut conds = vec!["expires_at > ?1".to_string()];
    if let Some(s) = &q.session_id {
        params.push(V::Text(canonical_session(s)));
        conds.push(format!("session_id = ?{}", params.len()));
    }
    if let Some(p) = &q.project {
        params.push(V::Text(p.clone()));
        conds.push(format!("project = ?{}", params.len()));
    }
    if let Some(a) = q.after_id {
        params.push(V::Integer(a));
        conds.push(format!("id > ?{}", params.len()));
    }
    params.push(V::Integer(q.limit.map_or(-1, i64::from)));
    (
        format!(
            "SELECT {LOCK_COLS} FROM locks WHERE {} ORDER BY id LIMIT ?{}",
            conds.join(" AND "),
            params.len()
        ),
        params,
    )
}

impl LocalStore {
    /// How many todos match `q` without its limit (for `X-Total-Count`).
    pub fn todo_count(&self, q: &TodoQuery) -> Result<u64> {
        let (sql, params) = todos_sql(&TodoQuery {
            limit: None,
            ..q.clone()
        });
        let sql = sql.replacen(&format!("SELECT {TODO_COLS} "), "SELECT count(*) ", 1);
        let refs: Vec<&dyn rusqlite::ToSql> = params.iter().map(|p| p as _).collect();
        let n: i64 = self
            .conn
            .row(&sql, refs.as_slice(), |r| r.get(0))
            .map_err(|e| store_err(&self.path, e))?;
        Ok(n.max(0) as u64)
    }

    /// How many active locks match `q` without its limit.
    pub fn lock_count(&self, q: &LockQuery) -> Result<u64> {
        let (sql, params) = locks_sql(
            &LockQuery {
                limit: None,
                ..q.clone()
            },
            now_ms(),
        );
        let sql = sql.replacen(&format!("SELECT {LOCK_COLS} "), "SELECT count(*) ", 1);
        let refs: Vec<&dyn rusqlite::ToSql> = params.iter().map(|p| p as _).collect();
        let n: i64 = self
            .conn
            .row(&sql, refs.as_slice(), |r| r.get(0))
            .map_err(|e| store_err(&self.path, e))?;
        Ok(n.max(0) as u64)
    }

    /// Writes presence `w` unless this session was seen within the last
    /// minute (a read first: far cheaper than a write). Failures are
    /// ignored: a store this user cannot write keeps no presence.
    pub fn touch_if_stale(&self, w: &Write) {
        if let Write::TouchSession { session_id, .. } = w {
            let seen: Option<i64> = self
                .conn
                .row(
                    "SELECT last_seen FROM sessions WHERE session_id = ?1",
                    [canonical_session(session_id)],
                    |r| r.get(0),
                )
                .ok();
            if seen.is_some_and(|t| now_ms() - t < PRESENCE_FRESH.as_millis() as i64) {
                return;
            }
        }
        let _ = self.write(w, None);
    }

    /// What `session` sent, each with who has read it.
    fn sent(&self, session: &str, limit: u32, newest_first: bool) -> Result<Page> {
        let dir = if newest_first { "DESC" } else { "ASC" };
        let mut messages = self.collect(
            &format!(
                "SELECT {MESSAGE_COLS}, m.created_at FROM messages m WHERE m.from_session = ?1 \
                 ORDER BY m.id {dir} LIMIT ?2"
            ),
            &[&session, &limit],
            message_row,
        )?;
        for m in &mut messages {
            let readers: Vec<String> = if m.to_session == ALL_SESSIONS {
                self.collect(
                    "SELECT session FROM broadcast_marks WHERE upto >= ?1 AND session <> ?2 \
                     UNION SELECT session FROM message_reads WHERE message_id = ?1 AND session <> ?2 \
                     ORDER BY 1",
                    &[&m.id, &session],
                    |r| r.get(0),
                )?
            } else {
                self.collect(
                    "SELECT to_session FROM messages WHERE id = ?1 AND read_at IS NOT NULL",
                    &[&m.id],
                    |r| r.get(0),
                )?
            };
            m.read_by = Some(readers);
        }
        let total: i64 = self.retry_busy(|| {
            self.conn.row(
                "SELECT count(*) FROM messages WHERE from_session = ?1",
                [session],
                |r| r.get(0),
            )
        })?;
        Ok(Page {
            messages,
            total: Some(total.max(0) as u64),
        })
    }

    /// `EXPLAIN QUERY PLAN` of the hook's three reads for `session` and
    /// `user`, one line per step (for the tests that keep them indexed).
    pub fn hook_query_plans(&self, session: &str, user: &str) -> Result<Vec<String>> {
        use rusqlite::types::Value as V;
        let mut out = Vec::new();
        let mut explain = |sql: &str, params: Vec<V>| -> Result<()> {
            let refs: Vec<&dyn rusqlite::ToSql> = params.iter().map(|p| p as _).collect();
            let rows = self.collect(&format!("EXPLAIN QUERY PLAN {sql}"), &refs, |r| {
                r.get::<_, String>(3)
            })?;
            out.extend(rows);
            Ok(())
        };
        let (mq, tq, lq) = crate::hook::queries(session, user);
        let (todos, tp) = todos_sql(&tq);
        explain(&todos, tp)?;
        let (locks, lp) = locks_sql(&lq, now_ms());
        explain(&locks, lp)?;
        let (msgs, count) = messages_sql(mq.unread_only, mq.newest_first);
        let limit = i64::from(mq.limit.unwrap_or(DEFAULT_MESSAGE_LIMIT));
        let p = vec![V::Text(session.into()), V::Integer(0), V::Integer(limit)];
        explain(&msgs, p.clone())?;
        explain(&count, p[..2].to_vec())?;
        Ok(out)
    }

    /// How many times SQLite re-compiled the cached unread query while it
    /// ran `n` times with a different limit each time (for the test that
    /// keeps it 0: a re-compile per run cost most of a read).
    #[doc(hidden)]
    pub fn unread_recompiles(&self, session: &str, n: u32) -> Result<i32> {
        let (sql, _) = messages_sql(true, true);
        for limit in 1..=n {
            self.collect(&sql, &[&session, &0, &limit], message_row)?;
        }
        let st = self.db(self.conn.prepare_cached(&sql))?;
        Ok(st.get_status(rusqlite::StatementStatus::RePrepare))
    }
}

/// Statements through the connection's cache: the writes and their
/// answers run the same few statements over and over, and compiling one
/// costs more than running it.
trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P: rusqlite::Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
    fn row<T, P: rusqlite::Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// One query plan per statement, whatever values are bound. Without this,
/// SQLite notes that a `LIMIT ?` (or a `?` it could compare with
/// statistics) might plan better knowing the value, and re-compiles a
/// cached statement every time that parameter is bound again: under load
/// that was four in ten of `coord serve`'s CPU cycles. Our queries are
/// written so that their indexes apply whatever the values.
fn stable_plans(conn: &Connection) {
    let _ = conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    );
    // Room for every statement a write or a read runs (the default is 16).
    conn.set_prepared_statement_cache_capacity(64);
}

/// The messages query (and its count) for session `?1`, ids above `?2`,
/// at most `?3`.
fn messages_sql(unread_only: bool, newest_first: bool) -> (String, String) {
    let dir = if newest_first { "DESC" } else { "ASC" };
    // Two index ranges, each already in id order and cut to the limit,
    // then merged: never a scan of the history. Unread direct messages
    // come from the partial index on unread rows; unread broadcasts are
    // those above the session's mark that are not exceptions.
    // One lower bound per range (`after_id`, or the session's mark when it
    // is higher), so that the index range starts there.
    let (direct, broadcast) = if unread_only {
        (
            "m.to_session = ?1 AND m.read_at IS NULL AND m.from_session <> ?1 AND m.id > ?2",
            "m.to_session = 'ALL_SESSIONS' AND m.from_session <> ?1 \
             AND m.id > max(?2, COALESCE((SELECT upto FROM broadcast_marks WHERE session = ?1), 0)) \
             AND NOT EXISTS (SELECT 1 FROM message_reads x WHERE x.message_id = m.id AND x.session = ?1)",
        )
    } else {
        (
            "m.to_session = ?1 AND m.id > ?2",
            "m.to_session = 'ALL_SESSIONS' AND m.id > ?2",
        )
    };
    let part = |filter: &str| {
        format!(
            "SELECT id FROM (SELECT m.id FROM messages m WHERE {filter} \
             ORDER BY m.id {dir} LIMIT ?3)"
        )
    };
    let sql = format!(
        "SELECT {MESSAGE_COLS}, {READ_AT} FROM messages m {READ_JOINS} \
         WHERE m.id IN ({} UNION ALL {}) ORDER BY m.id {dir} LIMIT ?3",
        part(direct),
        part(broadcast)
    );
    let count = format!(
        "SELECT (SELECT count(*) FROM messages m WHERE {direct}) \
              + (SELECT count(*) FROM messages m WHERE {broadcast})"
    );
    (sql, count)
}

// --- row mapping -----------------------------------------------------------

const MESSAGE_COLS: &str = "m.id, m.from_session, m.to_session, m.subject, m.body, \
     m.created_by_user, m.created_by_machine, m.created_at, m.in_reply_to";

/// When the session `?1` read message `m`, as one SQL expression over `m`,
/// the broadcast exception `r` and the mark `b` (both joined on `?1`): an
/// own message is read when it was sent; a direct one carries its read
/// state; a broadcast at or below the mark was read by the time the mark
/// moved (its own row, when still there, says exactly when).
const READ_AT: &str = "CASE WHEN m.from_session = ?1 THEN m.created_at \
     WHEN m.to_session <> 'ALL_SESSIONS' THEN m.read_at \
     WHEN m.id <= COALESCE(b.upto, 0) THEN COALESCE(r.read_at, b.at) \
     ELSE r.read_at END";

/// The joins `READ_AT` needs, for session `?1`.
const READ_JOINS: &str = "LEFT JOIN message_reads r ON r.message_id = m.id AND r.session = ?1 \
     LEFT JOIN broadcast_marks b ON b.session = ?1";

fn message_row(r: &Row) -> rusqlite::Result<Message> {
    let read_at: Option<i64> = r.get(9)?;
    Ok(Message {
        id: r.get(0)?,
        from_session: r.get(1)?,
        to_session: r.get(2)?,
        subject: r.get(3)?,
        body: r.get(4)?,
        created_by_user: r.get(5)?,
        created_by_machine: r.get(6)?,
        created_at: from_millis(r.get(7)?),
        read: read_at.is_some(),
        read_at: read_at.map(from_millis),
        in_reply_to: r.get(8)?,
        read_by: None,
    })
}

const SESSION_COLS: &str =
    "session_id, user, machine, name, project, client, first_seen, last_seen";

fn session_row(r: &Row) -> rusqlite::Result<Session> {
    Ok(Session {
        session_id: r.get(0)?,
        user: r.get(1)?,
        machine: r.get(2)?,
        name: r.get(3)?,
        project: r.get(4)?,
        client: r.get(5)?,
        first_seen: from_millis(r.get(6)?),
        last_seen: from_millis(r.get(7)?),
    })
}

const TODO_COLS: &str = "id, text, user, project, parent_id, source, auto, status, \
     created_by_user, created_by_machine, created_at, completed_by, completed_at";

fn todo_row(r: &Row) -> rusqlite::Result<Todo> {
    let status: String = r.get(7)?;
    Ok(Todo {
        id: r.get(0)?,
        text: r.get(1)?,
        user: r.get(2)?,
        project: r.get(3)?,
        parent_id: r.get(4)?,
        source: r.get(5)?,
        auto: r.get(6)?,
        status: if status == "done" {
            TodoStatus::Done
        } else {
            TodoStatus::Pending
        },
        created_by_user: r.get(8)?,
        created_by_machine: r.get(9)?,
        created_at: from_millis(r.get(10)?),
        completed_by: r.get(11)?,
        completed_at: r.get::<_, Option<i64>>(12)?.map(from_millis),
    })
}

const LOCK_COLS: &str = "id, project, resource, session_id, note, created_at, expires_at";

fn lock_row(r: &Row) -> rusqlite::Result<Lock> {
    Ok(Lock {
        id: r.get(0)?,
        project: r.get(1)?,
        resource: r.get(2)?,
        session_id: r.get(3)?,
        note: r.get(4)?,
        created_at: from_millis(r.get(5)?),
        expires_at: from_millis(r.get(6)?),
    })
}

fn component_row(r: &Row) -> rusqlite::Result<Component> {
    Ok(Component {
        project: r.get(0)?,
        component: r.get(1)?,
        state: r.get(2)?,
        version: r.get(3)?,
        notes: r.get(4)?,
        updated_by: r.get(5)?,
        updated_at: from_millis(r.get(6)?),
    })
}

fn workflow_row(r: &Row) -> rusqlite::Result<Workflow> {
    Ok(Workflow {
        name: r.get(0)?,
        state: r.get(1)?,
        detail: r.get(2)?,
        updated_by: r.get(3)?,
        updated_at: from_millis(r.get(4)?),
    })
}

fn required(field: &str, v: &str) -> Result<()> {
    if v.trim().is_empty() {
        Err(Error::invalid(format!("{field} must not be empty")))
    } else {
        Ok(())
    }
}

// --- the operations, each inside the caller's transaction ------------------

impl LocalStore {
    fn apply(&self, tx: &Connection, w: &Write, now: i64) -> Result<Written> {
        if let Err((field, why)) = w.check_addresses() {
            return Err(Error::invalid(format!("{field}: {why}")));
        }
        match w {
            Write::SendMessage(m) => {
                required("to_session", &m.to_session)?;
                required("body", &m.body)?;
                required("from_session", &m.from_session)?;
                let (from, to) = (
                    canonical_session(&m.from_session),
                    canonical_session(&m.to_session),
                );
                self.db(tx.exec(
                    "INSERT INTO messages (from_session, to_session, subject, body, \
                     created_by_user, created_by_machine, created_at, in_reply_to) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                    params![
                        from,
                        to,
                        m.subject,
                        m.body,
                        m.created_by_user,
                        m.created_by_machine,
                        now,
                        m.in_reply_to
                    ],
                ))?;
                let id = tx.last_insert_rowid();
                self.message(tx, id, &from).map(Written::Message)
            }
            Write::TouchSession { session_id, update } => {
                required("session_id", session_id)?;
                required("user", &update.user)?;
                let id = canonical_session(session_id);
                let (machine, name) = id.split_once('/').ok_or_else(|| {
                    Error::invalid(format!("session_id {id:?} is not MACHINE/NAME"))
                })?;
                self.db(tx.exec(
                    "INSERT INTO sessions (session_id, user, machine, name, project, client, first_seen, last_seen) \
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?7) \
                     ON CONFLICT (session_id) DO UPDATE SET user = excluded.user, \
                     project = COALESCE(excluded.project, project), client = COALESCE(excluded.client, client), \
                     last_seen = excluded.last_seen",
                    params![id, update.user, machine, name, update.project, update.client, now],
                ))?;
                self.db(tx.row(
                    &format!("SELECT {SESSION_COLS} FROM sessions WHERE session_id = ?1"),
                    [&id],
                    session_row,
                ))
                .map(Written::Session)
            }
            Write::MarkRead { id, session } => {
                required("session", session)?;
                let session = &canonical_session(session);
                let to: Option<String> = self.db(tx
                    .row("SELECT to_session FROM messages WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .optional())?;
                let to = to.ok_or_else(|| Error::not_found(format!("message {id}")))?;
                if to != *session && to != ALL_SESSIONS {
                    return Err(Error::forbidden(format!(
                        "message {id} is addressed to {to}, not {session}"
                    )));
                }
                if to == *session {
                    self.db(tx.exec(
                        "UPDATE messages SET read_at = ?2 WHERE id = ?1 AND read_at IS NULL",
                        params![id, now],
                    ))?;
                } else {
                    self.read_broadcast(tx, *id, session, now)?;
                }
                self.message(tx, *id, session).map(Written::Message)
            }
            Write::AddTodo(t) => {
                required("text", &t.text)?;
                if let Some(p) = t.parent_id {
                    let exists: bool = self.db(tx.row(
                        "SELECT EXISTS (SELECT 1 FROM todos WHERE id = ?1)",
                        [p],
                        |r| r.get(0),
                    ))?;
                    if !exists {
                        return Err(Error::invalid(format!("parent todo {p} does not exist")));
                    }
                }
                self.db(tx.exec(
                    "INSERT INTO todos (text, user, project, parent_id, source, auto, status, \
                     created_by_user, created_by_machine, created_at) \
                     VALUES (?1,?2,?3,?4,?5,?6,'pending',?7,?8,?9)",
                    params![
                        t.text,
                        t.user,
                        t.project,
                        t.parent_id,
                        t.source,
                        t.auto,
                        t.created_by_user,
                        t.created_by_machine,
                        now
                    ],
                ))?;
                self.todo(tx, tx.last_insert_rowid()).map(Written::Todo)
            }
            Write::CompleteTodo { id, completed_by } => {
                required("completed_by", completed_by)?;
                // Completing twice keeps the first completion: idempotent.
                self.db(tx.exec(
                    "UPDATE todos SET status = 'done', completed_by = ?2, completed_at = ?3 \
                     WHERE id = ?1 AND status <> 'done'",
                    params![id, completed_by, now],
                ))?;
                self.todo(tx, *id).map(Written::Todo)
            }
            Write::ClaimLock(l) => self.claim(tx, l, now),
            Write::ReleaseLock {
                id,
                session_id,
                force,
            } => {
                let lock = self
                    .db(tx
                        .row(
                            &format!(
                                "SELECT {LOCK_COLS} FROM locks WHERE id = ?1 AND expires_at > ?2"
                            ),
                            params![id, now],
                            lock_row,
                        )
                        .optional())?
                    .ok_or_else(|| Error::not_found(format!("lock {id} (or it expired)")))?;
                let session_id = &canonical_session(session_id);
                if lock.session_id != *session_id && !force {
                    return Err(Error::forbidden(format!(
                        "lock {id} is held by {}, not {session_id} (use --force to break it)",
                        lock.session_id
                    )));
                }
                self.db(tx.exec("DELETE FROM locks WHERE id = ?1", [id]))?;
                Ok(Written::Lock {
                    lock,
                    created: false,
                })
            }
            Write::SetComponent {
                project,
                component,
                update,
            } => {
                required("project", project)?;
                required("component", component)?;
                required("state", &update.state)?;
                self.db(tx.exec(
                    "INSERT INTO components (project, component, state, version, notes, updated_by, updated_at) \
                     VALUES (?1,?2,?3,?4,?5,?6,?7) \
                     ON CONFLICT (project, component) DO UPDATE SET state = excluded.state, \
                     version = excluded.version, notes = excluded.notes, \
                     updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                    params![
                        project,
                        component,
                        update.state,
                        update.version,
                        update.notes,
                        update.updated_by,
                        now
                    ],
                ))?;
                self.db(tx.row(
                    "SELECT project, component, state, version, notes, updated_by, updated_at \
                     FROM components WHERE project = ?1 AND component = ?2",
                    params![project, component],
                    component_row,
                ))
                .map(Written::Component)
            }
            Write::SetWorkflow { name, update } => {
                required("name", name)?;
                required("state", &update.state)?;
                self.db(tx.exec(
                    "INSERT INTO workflows (name, state, detail, updated_by, updated_at) \
                     VALUES (?1,?2,?3,?4,?5) \
                     ON CONFLICT (name) DO UPDATE SET state = excluded.state, \
                     detail = excluded.detail, updated_by = excluded.updated_by, \
                     updated_at = excluded.updated_at",
                    params![name, update.state, update.detail, update.updated_by, now],
                ))?;
                self.db(tx.row(
                    "SELECT name, state, detail, updated_by, updated_at FROM workflows WHERE name = ?1",
                    [name],
                    workflow_row,
                ))
                .map(Written::Workflow)
            }
        }
    }

    fn claim(&self, tx: &Connection, l: &NewLock, now: i64) -> Result<Written> {
        required("project", &l.project)?;
        required("resource", &l.resource)?;
        required("session_id", &l.session_id)?;
        let l = &NewLock {
            session_id: canonical_session(&l.session_id),
            ..l.clone()
        };
        let ttl = l.ttl_hours.unwrap_or(DEFAULT_TTL_HOURS);
        if !(ttl > 0.0 && ttl <= MAX_TTL_HOURS) {
            return Err(Error::invalid(format!(
                "ttl_hours must be more than 0 and at most {MAX_TTL_HOURS}, not {ttl}"
            )));
        }
        let expires = now + (ttl * 3_600_000.0).round() as i64;
        if expires <= now {
            return Err(Error::invalid(format!(
                "ttl_hours {ttl} is under a millisecond: the lock would expire before it is stored"
            )));
        }
        // Expired locks are gone: purge them all as claims happen (through
        // the expiry index, so this costs what expired since the last one).
        self.db(tx.exec("DELETE FROM locks WHERE expires_at <= ?1", [now]))?;
        let held = self.db(tx
            .row(
                &format!("SELECT {LOCK_COLS} FROM locks WHERE project = ?1 AND resource = ?2"),
                params![l.project, l.resource],
                lock_row,
            )
            .optional())?;
        let (id, created) = match held {
            Some(h) if h.session_id != l.session_id => {
                return Err(Error::Conflict {
                    detail: format!(
                        "{}/{} is held by {} until {}",
                        h.project,
                        h.resource,
                        h.session_id,
                        format_time(&h.expires_at)
                    ),
                    lock: Some(Box::new(h)),
                });
            }
            Some(h) => {
                self.db(tx.exec(
                    "UPDATE locks SET expires_at = ?2, note = COALESCE(?3, note) WHERE id = ?1",
                    params![h.id, expires, l.note],
                ))?;
                (h.id, false)
            }
            None => {
                self.db(tx.exec(
                    "INSERT INTO locks (project, resource, session_id, note, created_at, expires_at) \
                     VALUES (?1,?2,?3,?4,?5,?6)",
                    params![l.project, l.resource, l.session_id, l.note, now, expires],
                ))?;
                (tx.last_insert_rowid(), true)
            }
        };
        let lock = self.db(tx.row(
            &format!("SELECT {LOCK_COLS} FROM locks WHERE id = ?1"),
            [id],
            lock_row,
        ))?;
        Ok(Written::Lock { lock, created })
    }

    fn message(&self, c: &Connection, id: i64, session: &str) -> Result<Message> {
        self.db(c
            .row(
                &format!(
                    "SELECT {MESSAGE_COLS}, {READ_AT} FROM messages m {READ_JOINS} WHERE m.id = ?2"
                ),
                params![session, id],
                message_row,
            )
            .optional())?
            .ok_or_else(|| Error::not_found(format!("message {id}")))
    }

    /// Marks broadcast `id` read for `session`: an exception above the
    /// session's mark, then the mark moves up over every broadcast now read
    /// (own ones count as read), and the exceptions it passed are dropped.
    /// The cost follows the exceptions, never the history.
    fn read_broadcast(&self, tx: &Connection, id: i64, session: &str, now: i64) -> Result<()> {
        let upto: i64 = self.db(tx.row(
            "SELECT COALESCE((SELECT upto FROM broadcast_marks WHERE session = ?1), 0)",
            [session],
            |r| r.get(0),
        ))?;
        if id <= upto {
            return Ok(());
        }
        self.db(tx.exec(
            "INSERT OR IGNORE INTO message_reads (message_id, session, read_at) VALUES (?1,?2,?3)",
            params![id, session, now],
        ))?;
        let new_upto: i64 = self.db(tx.row(
            "SELECT COALESCE(
                 (SELECT min(m.id) FROM messages m
                  WHERE m.to_session = 'ALL_SESSIONS' AND m.id > ?2 AND m.from_session <> ?1
                    AND NOT EXISTS (SELECT 1 FROM message_reads r
                                    WHERE r.message_id = m.id AND r.session = ?1)) - 1,
                 (SELECT max(id) FROM messages WHERE to_session = 'ALL_SESSIONS'))",
            params![session, upto],
            |r| r.get(0),
        ))?;
        if new_upto > upto {
            self.db(tx.exec(
                "INSERT INTO broadcast_marks (session, upto, at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (session) DO UPDATE SET upto = excluded.upto, at = excluded.at",
                params![session, new_upto, now],
            ))?;
            self.db(tx.exec(
                "DELETE FROM message_reads WHERE session = ?1 AND message_id <= ?2",
                params![session, new_upto],
            ))?;
        }
        Ok(())
    }

    fn todo(&self, c: &Connection, id: i64) -> Result<Todo> {
        self.db(c
            .row(
                &format!("SELECT {TODO_COLS} FROM todos WHERE id = ?1"),
                [id],
                todo_row,
            )
            .optional())?
            .ok_or_else(|| Error::not_found(format!("todo {id}")))
    }

    fn collect<T>(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
        f: fn(&Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let run = || -> rusqlite::Result<Vec<T>> {
            let mut st = self.conn.prepare_cached(sql)?;
            let rows = st.query_map(params, f)?;
            rows.collect()
        };
        self.retry_busy(run)
    }

    /// Replays the first answer given to `key`, if it was seen in the last
    /// 24 hours.
    fn replay(&self, tx: &Connection, w: &Write, key: &str, now: i64) -> Result<Option<Written>> {
        let row: Option<(u16, String, Option<String>, Option<i64>)> = self.db(tx
            .row(
                "SELECT status, body, op, ref FROM idempotency WHERE key = ?1 AND created_at > ?2",
                params![key, now - IDEMPOTENCY_WINDOW_MS],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional())?;
        let Some((status, body, op, reference)) = row else {
            return Ok(None);
        };
        let reused = |first: &str| {
            Error::invalid(format!(
                "Idempotency-Key {} was first used for another kind of write ({first}), not {}; send this write with a new key",
                crate::text::cell(key, 80),
                w.op_name()
            ))
        };
        if let Some(first) = op.as_deref()
            && first != w.op_name()
        {
            return Err(reused(first));
        }
        // Messages and todos are kept as a reference: the answer is the
        // object as it is now, seen by whoever wrote it.
        if let Some(id) = reference {
            let written = match w {
                Write::SendMessage(m) => Written::Message(self.message(tx, id, &m.from_session)?),
                Write::MarkRead { session, .. } => Written::Message(self.message(tx, id, session)?),
                Write::AddTodo(_) | Write::CompleteTodo { .. } => Written::Todo(self.todo(tx, id)?),
                _ => return Err(reused("unknown")),
            };
            return Ok(Some(written));
        }
        // A key stored before the kind was recorded: an answer of another
        // shape means another kind of write.
        let bad = |_: serde_json::Error| reused("unknown");
        let written = match w {
            Write::SendMessage(_) | Write::MarkRead { .. } => {
                Written::Message(serde_json::from_str(&body).map_err(bad)?)
            }
            Write::AddTodo(_) | Write::CompleteTodo { .. } => {
                Written::Todo(serde_json::from_str(&body).map_err(bad)?)
            }
            Write::ClaimLock(_) | Write::ReleaseLock { .. } => Written::Lock {
                lock: serde_json::from_str(&body).map_err(bad)?,
                created: status == 201,
            },
            Write::SetComponent { .. } => {
                Written::Component(serde_json::from_str(&body).map_err(bad)?)
            }
            Write::SetWorkflow { .. } => {
                Written::Workflow(serde_json::from_str(&body).map_err(bad)?)
            }
            Write::TouchSession { .. } => {
                Written::Session(serde_json::from_str(&body).map_err(bad)?)
            }
        };
        Ok(Some(written))
    }
}

/// What one retention pass deleted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Purged {
    pub messages: usize,
    pub todos: usize,
    pub keys: usize,
    pub locks: usize,
}

/// The fewest days `coord serve --retain` keeps: idempotency keys live 7.
pub const MIN_RETAIN_DAYS: u32 = 7;

impl LocalStore {
    /// Deletes what is past keeping: read direct messages and broadcasts
    /// older than `days` (with their read state), done todos completed that
    /// long ago, idempotency keys past their window, expired locks; then
    /// gives free pages back to the file system.
    pub fn purge(&self, days: u32) -> Result<Purged> {
        let now = now_ms();
        let cut = now - i64::from(days.max(MIN_RETAIN_DAYS)) * 24 * 3600 * 1000;
        let tx = self.tx()?;
        let mut p = Purged::default();
        p.messages += self.db(tx.exec(
            "DELETE FROM messages WHERE created_at < ?1 AND to_session <> 'ALL_SESSIONS' AND read_at IS NOT NULL",
            [cut],
        ))?;
        p.messages += self.db(tx.exec(
            "DELETE FROM messages WHERE created_at < ?1 AND to_session = 'ALL_SESSIONS'",
            [cut],
        ))?;
        self.db(tx.exec(
            "DELETE FROM message_reads WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id)",
            [],
        ))?;
        p.todos = self.db(tx.exec(
            "DELETE FROM todos WHERE status = 'done' AND completed_at < ?1",
            [cut],
        ))?;
        p.keys = self.db(tx.exec(
            "DELETE FROM idempotency WHERE created_at <= ?1",
            [now - IDEMPOTENCY_WINDOW_MS],
        ))?;
        p.locks = self.db(tx.exec("DELETE FROM locks WHERE expires_at <= ?1", [now]))?;
        self.db(tx.commit())?;
        // Each step of this pragma frees a page: run it to the end.
        self.retry_busy(|| {
            let mut st = self.conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        })?;
        Ok(p)
    }

    /// Makes the file able to shrink (`auto_vacuum = INCREMENTAL`): a
    /// store made before this needs one full VACUUM, which rewrites it.
    /// Answers whether it did that.
    pub fn ensure_incremental_vacuum(&self) -> Result<bool> {
        let mode: i64 = self.db(self.conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)))?;
        if mode == 2 {
            return Ok(false);
        }
        self.retry_busy(|| {
            self.conn
                .execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
        })?;
        Ok(true)
    }
}

impl Coord for LocalStore {
    fn apply(&self, w: &Write, key: Option<&str>) -> Result<Applied> {
        let now = now_ms();
        let tx = self.tx()?;
        if let Some(key) = key
            && let Some(first) = self.replay(&tx, w, key, now)?
        {
            return Ok(Applied {
                written: first,
                replayed: true,
            });
        }
        let out = self.apply(&tx, w, now)?;
        if let Some(key) = key {
            let status = crate::wire::status_for(w, &out);
            self.db(tx.exec(
                "DELETE FROM idempotency WHERE created_at <= ?1",
                [now - IDEMPOTENCY_WINDOW_MS],
            ))?;
            // A small reference to what was made where that is enough (a
            // message's body may be a megabyte); the small answers whole.
            let (body, reference) = match &out {
                Written::Message(m) => (String::new(), Some(m.id)),
                Written::Todo(t) => (String::new(), Some(t.id)),
                other => (other.to_json().to_string(), None),
            };
            self.db(tx.exec(
                "INSERT OR REPLACE INTO idempotency (key, status, body, created_at, op, ref) VALUES (?1,?2,?3,?4,?5,?6)",
                params![key, status, body, now, w.op_name(), reference],
            ))?;
        }
        self.db(tx.commit())?;
        Ok(Applied {
            written: out,
            replayed: false,
        })
    }

    fn messages_page(&self, q: &MessageQuery) -> Result<Page> {
        let limit = q
            .limit
            .unwrap_or(DEFAULT_MESSAGE_LIMIT)
            .clamp(1, MAX_MESSAGE_LIMIT);
        let after = q.after_id.unwrap_or(0);
        let session = canonical_session(&q.session);
        if q.sent {
            return self.sent(&session, limit, q.newest_first);
        }
        let (sql, count) = messages_sql(q.unread_only, q.newest_first);
        let messages = self.collect(&sql, &[&session, &after, &limit], message_row)?;
        let total: i64 =
            self.retry_busy(|| self.conn.row(&count, params![session, after], |r| r.get(0)))?;
        Ok(Page {
            messages,
            total: Some(total.max(0) as u64),
        })
    }

    fn todos(&self, q: &TodoQuery) -> Result<Vec<Todo>> {
        let (sql, params) = todos_sql(q);
        let refs: Vec<&dyn rusqlite::ToSql> = params.iter().map(|p| p as _).collect();
        self.collect(&sql, &refs, todo_row)
    }

    fn locks(&self, q: &LockQuery) -> Result<Vec<Lock>> {
        let (sql, params) = locks_sql(q, now_ms());
        let refs: Vec<&dyn rusqlite::ToSql> = params.iter().map(|p| p as _).collect();
        self.collect(&sql, &refs, lock_row)
    }

    fn status(&self) -> Result<Status> {
        Ok(Status {
            locks: self.locks(&LockQuery::default())?,
            components: self.collect(
                "SELECT project, component, state, version, notes, updated_by, updated_at \
                 FROM components ORDER BY project, component",
                &[],
                component_row,
            )?,
            workflows: self.collect(
                "SELECT name, state, detail, updated_by, updated_at FROM workflows ORDER BY name",
                &[],
                workflow_row,
            )?,
        })
    }

    fn sessions(&self, active_within: Option<u64>) -> Result<Option<Vec<Session>>> {
        let since = active_within.map_or(i64::MIN, |s| now_ms() - (s as i64).saturating_mul(1000));
        self.collect(
            &format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE last_seen >= ?1 ORDER BY last_seen DESC"
            ),
            &[&since],
            session_row,
        )
        .map(Some)
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

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn is_remote(&self) -> bool {
        false
    }
}

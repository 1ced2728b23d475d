//! The embedded store: one SQLite file shared by every session of a machine,
//! and the store behind `coord serve`. All business rules of the contract
//! (read state per session, lock exclusivity, idempotency) live here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};

use crate::backend::{Applied, Coord, Page};
use crate::error::{Error, Result};
use crate::model::*;
mod counts;
mod delivery;
mod idempotency;
mod read;
mod retention;
mod schema;
mod write;

pub(crate) use idempotency::{key_reused, stored_answer};
use read::*;
pub(crate) use retention::TOUCH_KEPT_MS;
pub use retention::{MIN_RETAIN_DAYS, Purged};
pub(crate) use write::lock_expiry;
pub(crate) use write::{check_shown, check_touched, message_ends, required};

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
        keep_wal_files(&conn);
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

/// The WAL and its shared memory stay beside the store when the last
/// connection closes (checkpointed and emptied, never holding the only
/// copy of a write): the next hook run opens them instead of creating
/// and deleting both files, 2.4% of an embedded session-start hook here
/// (BENCHMARKS.md), more where creating a file costs more.
fn keep_wal_files(conn: &Connection) {
    let mut on: std::ffi::c_int = 1;
    // SAFETY: the handle is this open connection's; the file control reads
    // one int through the pointer, which outlives the call.
    unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut on as *mut std::ffi::c_int).cast(),
        );
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

impl Coord for LocalStore {
    fn todo_count(&self, q: &TodoQuery) -> Result<Option<u64>> {
        LocalStore::todo_count(self, q).map(Some)
    }

    fn lock_count(&self, q: &LockQuery) -> Result<Option<u64>> {
        LocalStore::lock_count(self, q).map(Some)
    }

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
        let out = self.apply_in(&tx, w, now)?;
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
        let cut = new_session_cut(now_ms());
        // The unread query and its count take the cut too; the count of all
        // messages only the session and the lower bound.
        let (list, counted): (&[&dyn rusqlite::ToSql], &[&dyn rusqlite::ToSql]) = if q.unread_only {
            (
                &[&session, &after, &limit, &cut],
                &[&session, &after, &limit, &cut],
            )
        } else {
            (&[&session, &after, &limit], &[&session, &after])
        };
        let messages = self.collect(&sql, list, message_row)?;
        let total: i64 = self.retry_busy(|| self.conn.row(&count, counted, |r| r.get(0)))?;
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

    fn unread_counts(&self, sessions: &[String]) -> Result<Vec<Option<u64>>> {
        self.unread_counts_of(sessions)
    }

    fn timeline(&self, session: Option<&str>, limit: u32) -> Result<Option<Vec<Message>>> {
        self.timeline_of(session, limit).map(Some)
    }

    fn expired_locks(&self, within_s: u64, limit: u32) -> Result<Vec<Lock>> {
        self.expired_locks_of(within_s, limit)
    }

    fn delivery(&self, id: i64) -> Result<Option<Delivery>> {
        self.delivery_of(id).map(Some)
    }

    fn touches(&self, project: &str, path: &str, within_s: u64) -> Result<Vec<Touch>> {
        self.touches_of(project, path, within_s)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn is_remote(&self) -> bool {
        false
    }
}

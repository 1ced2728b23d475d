//! The embedded store's schema and its migrations, versioned with
//! `PRAGMA user_version` and run forward on open, in one transaction.

use super::*;

/// Bump when the schema changes, and add a step to `MIGRATIONS`.
pub(super) const SCHEMA_VERSION: i64 = 8;

/// Step N brings a database from user_version N to N+1.
pub(super) const MIGRATIONS: &[&str] = &[
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
    r#"
-- A session without a broadcast mark sees the broadcasts of the last days
-- only (read::NEW_SESSION_BROADCAST_DAYS): where they start is one step
-- of this index.
CREATE INDEX messages_broadcast_age ON messages (created_at) WHERE to_session = 'ALL_SESSIONS';
"#,
    r#"
-- v1.2 path claims: the repository-relative globs a lock covers (JSON).
ALTER TABLE locks ADD COLUMN paths TEXT;
"#,
    r#"
-- v1.2: the files sessions edited, for the guard's "touched by" note
-- (kept a day).
CREATE TABLE touches (
    project TEXT NOT NULL,
    path TEXT NOT NULL,
    session TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (project, path, session)
) WITHOUT ROWID;
CREATE INDEX touches_age ON touches (at);
-- v1.2 delivery: when a direct message was put into its recipient's
-- context; for a broadcast one row per session live when it was sent.
ALTER TABLE messages ADD COLUMN shown_at INTEGER;
CREATE TABLE deliveries (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    session TEXT NOT NULL,
    shown_at INTEGER,
    read_at INTEGER,
    PRIMARY KEY (message_id, session)
) WITHOUT ROWID;
CREATE INDEX messages_reply ON messages (in_reply_to, from_session) WHERE in_reply_to IS NOT NULL;
-- v1.2: a session whose window ended (until it is seen again).
ALTER TABLE sessions ADD COLUMN closed_at INTEGER;
"#,
];

impl LocalStore {
    pub(super) fn init(&self) -> rusqlite::Result<()> {
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
    pub(super) fn check_version(&self) -> Result<()> {
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

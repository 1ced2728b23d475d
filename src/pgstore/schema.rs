//! The PostgreSQL store's schema and its migrations, versioned in
//! `coord_schema` as the SQLite store's are in `user_version`, and run
//! forward on open under an advisory lock (two replicas starting at once
//! migrate once).

/// Bump when the schema changes, and add a step to `MIGRATIONS`.
pub(super) const SCHEMA_VERSION: i32 = 4;

/// The advisory lock a migration runs under ("coord" + 1).
pub(super) const MIGRATION_LOCK: i64 = 0x636f_6f72_6401;
/// The advisory lock one replica's retention pass holds ("coord" + 2).
pub(super) const RETENTION_LOCK: i64 = 0x636f_6f72_6402;

/// Step N brings the database from version N to N+1. The same objects as
/// the SQLite store, with the same indexes (a read there is an index range
/// here too); `user` is quoted, PostgreSQL reserves it. A message's subject
/// and body are bytes (their UTF-8): PostgreSQL's text cannot hold a NUL
/// character, and a body comes back exactly as it was sent.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE messages (
    id BIGSERIAL PRIMARY KEY,
    from_session TEXT NOT NULL,
    to_session TEXT NOT NULL,
    subject BYTEA,
    body BYTEA NOT NULL,
    created_by_user TEXT NOT NULL,
    created_by_machine TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    read_at BIGINT,
    in_reply_to BIGINT
);
CREATE INDEX messages_to ON messages (to_session, id);
CREATE INDEX messages_unread ON messages (to_session, id) WHERE read_at IS NULL;
CREATE INDEX messages_from ON messages (from_session, id);
CREATE INDEX messages_broadcast_age ON messages (created_at) WHERE to_session = 'ALL_SESSIONS';
CREATE TABLE message_reads (
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    session TEXT NOT NULL,
    read_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, session)
);
CREATE INDEX message_reads_session ON message_reads (session, message_id);
CREATE TABLE broadcast_marks (
    session TEXT PRIMARY KEY,
    upto BIGINT NOT NULL,
    at BIGINT NOT NULL
);
CREATE TABLE todos (
    id BIGSERIAL PRIMARY KEY,
    text TEXT NOT NULL,
    "user" TEXT,
    project TEXT,
    parent_id BIGINT,
    source TEXT,
    auto BOOLEAN NOT NULL DEFAULT false,
    status TEXT NOT NULL DEFAULT 'pending',
    created_by_user TEXT NOT NULL,
    created_by_machine TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    completed_by TEXT,
    completed_at BIGINT
);
CREATE INDEX todos_status ON todos (status, id);
CREATE INDEX todos_pending_user ON todos (status, "user", id);
CREATE TABLE locks (
    id BIGSERIAL PRIMARY KEY,
    project TEXT NOT NULL,
    resource TEXT NOT NULL,
    session_id TEXT NOT NULL,
    note TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    UNIQUE (project, resource)
);
CREATE INDEX locks_holder ON locks (session_id, expires_at);
CREATE INDEX locks_expiry ON locks (expires_at);
CREATE TABLE components (
    project TEXT NOT NULL,
    component TEXT NOT NULL,
    state TEXT NOT NULL,
    version TEXT,
    notes TEXT,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project, component)
);
CREATE TABLE workflows (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    detail TEXT,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    op TEXT,
    ref BIGINT
);
CREATE INDEX idempotency_age ON idempotency (created_at);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    "user" TEXT NOT NULL,
    machine TEXT NOT NULL,
    name TEXT NOT NULL,
    project TEXT,
    client TEXT,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
CREATE INDEX sessions_seen ON sessions (last_seen);
"#,
    r#"
ALTER TABLE locks ADD COLUMN paths TEXT;
"#,
    r#"
CREATE TABLE touches (
    project TEXT NOT NULL,
    path TEXT NOT NULL,
    session TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (project, path, session)
);
CREATE INDEX touches_age ON touches (at);
ALTER TABLE messages ADD COLUMN shown_at BIGINT;
CREATE TABLE deliveries (
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    session TEXT NOT NULL,
    shown_at BIGINT,
    read_at BIGINT,
    PRIMARY KEY (message_id, session)
);
CREATE INDEX messages_reply ON messages (in_reply_to, from_session) WHERE in_reply_to IS NOT NULL;
ALTER TABLE sessions ADD COLUMN closed_at BIGINT;
"#,
    // The server's statements are planned once per connection (a generic
    // plan, see `target`), so the planner must not take one
    // session's or user's rows for a third of the table because a load
    // sent most messages to one address: it is told that each holds a
    // small share, and every per-session read stays an index range. The
    // broadcasts after a session's mark, and a session's or a project's
    // locks in id order, are ranges of indexes of their own.
    r#"
ALTER TABLE messages ALTER COLUMN to_session SET (n_distinct = -0.05),
    ALTER COLUMN from_session SET (n_distinct = -0.05);
ALTER TABLE todos ALTER COLUMN "user" SET (n_distinct = -0.05);
CREATE INDEX messages_broadcast ON messages (id) WHERE to_session = 'ALL_SESSIONS';
CREATE INDEX locks_session ON locks (session_id, id);
CREATE INDEX locks_project ON locks (project, id);
ANALYZE messages;
ANALYZE todos;
"#,
];

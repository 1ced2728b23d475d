//! Writes on PostgreSQL: every operation of the contract inside the
//! caller's transaction, with what decides a race left to a unique index.

use super::*;
use crate::store::{message_ends, required};

impl PgStore {
    pub(super) fn apply_in(&self, tx: &mut impl Run, w: &Write, now: i64) -> Result<Written> {
        if let Err((field, why)) = w.check_addresses() {
            return Err(Error::invalid(format!("{field}: {why}")));
        }
        let db = |e| self.db(e);
        match w {
            Write::SendMessage(m) => self
                .send(tx, m, None, now)?
                .map(Written::Message)
                .ok_or_else(|| Error::Failed("the message was not written".into())),
            Write::TouchSession { session_id, update }
                if update.state.as_deref() == Some(CLOSED) =>
            {
                let id = canonical_session(session_id);
                tx.query_opt(
                    &format!(
                        "UPDATE sessions SET closed_at = COALESCE(closed_at, $2) WHERE session_id = $1 \
                         RETURNING {SESSION_COLS}"
                    ),
                    &[&id, &now],
                )
                .map_err(db)?
                .map(|r| Written::Session(session_row(&r)))
                .ok_or_else(|| Error::not_found(format!("session {id}")))
            }
            Write::TouchSession { session_id, update } => {
                required("session_id", session_id)?;
                required("user", &update.user)?;
                let id = canonical_session(session_id);
                let (machine, name) = id.split_once('/').ok_or_else(|| {
                    Error::invalid(format!("session_id {id:?} is not MACHINE/NAME"))
                })?;
                let row = tx
                    .query_one(
                        &format!(
                            "INSERT INTO sessions (session_id, \"user\", machine, name, project, client, first_seen, last_seen) \
                             VALUES ($1,$2,$3,$4,$5,$6,$7,$7) \
                             ON CONFLICT (session_id) DO UPDATE SET \"user\" = excluded.\"user\", \
                             project = COALESCE(excluded.project, sessions.project), \
                             client = COALESCE(excluded.client, sessions.client), \
                             last_seen = excluded.last_seen, closed_at = NULL RETURNING {SESSION_COLS}"
                        ),
                        &[&id, &update.user, &machine, &name, &update.project, &update.client, &now],
                    )
                    .map_err(db)?;
                Ok(Written::Session(session_row(&row)))
            }
            Write::TouchFiles {
                session_id,
                project,
                paths,
            } => {
                required("project", project)?;
                crate::store::check_touched(paths)?;
                let session = canonical_session(session_id);
                let n = tx
                    .execute(
                        "INSERT INTO touches (project, path, session, at) \
                         SELECT $1, p, $3, $4 FROM unnest($2::text[]) AS p \
                         ON CONFLICT (project, path, session) DO UPDATE SET at = excluded.at",
                        &[project, paths, &session, &now],
                    )
                    .map_err(db)?;
                Ok(Written::Recorded(n))
            }
            Write::MarkShown { session, ids } => {
                crate::store::check_shown(ids)?;
                let session = canonical_session(session);
                let direct = tx
                    .execute(
                        "UPDATE messages SET shown_at = $3 WHERE id = ANY($1) AND to_session = $2 \
                         AND shown_at IS NULL",
                        &[ids, &session, &now],
                    )
                    .map_err(db)?;
                let broadcast = tx
                    .execute(
                        "UPDATE deliveries SET shown_at = $3 WHERE message_id = ANY($1) AND session = $2 \
                         AND shown_at IS NULL",
                        &[ids, &session, &now],
                    )
                    .map_err(db)?;
                Ok(Written::Recorded(direct + broadcast))
            }
            Write::MarkRead { id, session } => {
                required("session", session)?;
                let session = &canonical_session(session);
                let to: String = tx
                    .query_opt("SELECT to_session FROM messages WHERE id = $1", &[id])
                    .map_err(db)?
                    .ok_or_else(|| Error::not_found(format!("message {id}")))?
                    .get(0);
                if to != *session && to != ALL_SESSIONS {
                    return Err(Error::forbidden(format!(
                        "message {id} is addressed to {to}, not {session}"
                    )));
                }
                if to == *session {
                    tx.execute(
                        "UPDATE messages SET read_at = $2 WHERE id = $1 AND read_at IS NULL",
                        &[id, &now],
                    )
                    .map_err(db)?;
                } else {
                    self.read_broadcast(tx, *id, session, now)?;
                }
                self.message(tx, *id, session).map(Written::Message)
            }
            Write::AddTodo(t) => {
                required("text", &t.text)?;
                if let Some(p) = t.parent_id {
                    let exists: bool = tx
                        .query_one("SELECT EXISTS (SELECT 1 FROM todos WHERE id = $1)", &[&p])
                        .map_err(db)?
                        .get(0);
                    if !exists {
                        return Err(Error::invalid(format!("parent todo {p} does not exist")));
                    }
                }
                let row = tx
                    .query_one(
                        &format!(
                            "INSERT INTO todos (text, \"user\", project, parent_id, source, auto, status, \
                             created_by_user, created_by_machine, created_at) \
                             VALUES ($1,$2,$3,$4,$5,$6,'pending',$7,$8,$9) RETURNING {TODO_COLS}"
                        ),
                        &[
                            &t.text,
                            &t.user,
                            &t.project,
                            &t.parent_id,
                            &t.source,
                            &t.auto,
                            &t.created_by_user,
                            &t.created_by_machine,
                            &now,
                        ],
                    )
                    .map_err(db)?;
                Ok(Written::Todo(todo_row(&row)))
            }
            Write::CompleteTodo { id, completed_by } => {
                required("completed_by", completed_by)?;
                tx.execute(
                    "UPDATE todos SET status = 'done', completed_by = $2, completed_at = $3 \
                     WHERE id = $1 AND status <> 'done'",
                    &[id, completed_by, &now],
                )
                .map_err(db)?;
                self.todo(tx, *id).map(Written::Todo)
            }
            Write::ClaimLock(l) => self.claim(tx, l, now),
            Write::ReleaseLock {
                id,
                session_id,
                force,
            } => {
                let session_id = &canonical_session(session_id);
                // One statement decides: a live lock of this holder (or
                // any, forced) is gone, or nothing is.
                if let Some(row) = tx
                    .query_opt(
                        &format!(
                            "DELETE FROM locks WHERE id = $1 AND expires_at > $2 \
                             AND (session_id = $3 OR $4) RETURNING {LOCK_COLS}"
                        ),
                        &[id, &now, session_id, force],
                    )
                    .map_err(db)?
                {
                    return Ok(Written::Lock {
                        lock: lock_row(&row),
                        created: false,
                    });
                }
                // Why not: no such live lock, or another's.
                let lock = tx
                    .query_opt(
                        &format!("SELECT {LOCK_COLS} FROM locks WHERE id = $1 AND expires_at > $2"),
                        &[id, &now],
                    )
                    .map_err(db)?
                    .map(|r| lock_row(&r))
                    .ok_or_else(|| Error::not_found(format!("lock {id} (or it expired)")))?;
                Err(Error::forbidden(format!(
                    "lock {id} is held by {}, not {session_id} (use --force to break it)",
                    lock.session_id
                )))
            }
            Write::SetComponent {
                project,
                component,
                update,
            } => {
                required("project", project)?;
                required("component", component)?;
                required("state", &update.state)?;
                let row = tx
                    .query_one(
                        "INSERT INTO components (project, component, state, version, notes, updated_by, updated_at) \
                         VALUES ($1,$2,$3,$4,$5,$6,$7) \
                         ON CONFLICT (project, component) DO UPDATE SET state = excluded.state, \
                         version = excluded.version, notes = excluded.notes, \
                         updated_by = excluded.updated_by, updated_at = excluded.updated_at \
                         RETURNING project, component, state, version, notes, updated_by, updated_at",
                        &[
                            project,
                            component,
                            &update.state,
                            &update.version,
                            &update.notes,
                            &update.updated_by,
                            &now,
                        ],
                    )
                    .map_err(db)?;
                Ok(Written::Component(component_row(&row)))
            }
            Write::SetWorkflow { name, update } => {
                required("name", name)?;
                required("state", &update.state)?;
                let row = tx
                    .query_one(
                        "INSERT INTO workflows (name, state, detail, updated_by, updated_at) \
                         VALUES ($1,$2,$3,$4,$5) \
                         ON CONFLICT (name) DO UPDATE SET state = excluded.state, \
                         detail = excluded.detail, updated_by = excluded.updated_by, \
                         updated_at = excluded.updated_at \
                         RETURNING name, state, detail, updated_by, updated_at",
                        &[
                            name,
                            &update.state,
                            &update.detail,
                            &update.updated_by,
                            &now,
                        ],
                    )
                    .map_err(db)?;
                Ok(Written::Workflow(workflow_row(&row)))
            }
        }
    }

    /// A message sent, in one statement (one round trip): the message, its
    /// recipients when it is a broadcast (the sessions live now, v1.2
    /// delivery), the announcement every replica's long-polls hear at
    /// commit, and the row as its sender sees it (read when sent). With
    /// `key` (the key, and the time at or before which an old claim of it
    /// has lapsed) the key is claimed in the same statement, holding the
    /// message's id drawn beforehand: None when another request holds the
    /// key (its answer is the replay).
    pub(super) fn send(
        &self,
        c: &mut impl Run,
        m: &NewMessage,
        key: Option<(&str, i64)>,
        now: i64,
    ) -> Result<Option<Message>> {
        let (from, to) = message_ends(m)?;
        let (claim, source) = match key {
            Some(_) => (
                "k AS (INSERT INTO idempotency (key, status, body, created_at, op, ref) \
                 VALUES ($11, 201, '', $7, 'send_message', nextval(pg_get_serial_sequence('messages', 'id'))) \
                 ON CONFLICT (key) DO UPDATE SET status = 201, body = '', created_at = excluded.created_at, \
                 op = excluded.op, ref = excluded.ref WHERE idempotency.created_at <= $12 RETURNING ref), ",
                "SELECT k.ref, $1,$2,$3,$4,$5,$6,$7,$8 FROM k",
            ),
            None => ("", "VALUES (DEFAULT, $1,$2,$3,$4,$5,$6,$7,$8)"),
        };
        let sql = format!(
            "WITH {claim}m AS (INSERT INTO messages (id, from_session, to_session, subject, body, \
             created_by_user, created_by_machine, created_at, in_reply_to) {source} RETURNING *), \
             d AS (INSERT INTO deliveries (message_id, session) \
             SELECT m.id, s.session_id FROM m, sessions s \
             WHERE m.to_session = 'ALL_SESSIONS' AND s.last_seen >= $9 \
             AND s.closed_at IS NULL AND s.session_id <> m.from_session) \
             SELECT {MESSAGE_COLS}, m.created_at, \
             pg_notify($10, m.id::text || ' ' || m.to_session)::text FROM m"
        );
        let (subject, body) = (m.subject.as_deref().map(str::as_bytes), m.body.as_bytes());
        let live = now - ACTIVE_SECS * 1000;
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![
            &from,
            &to,
            &subject,
            &body,
            &m.created_by_user,
            &m.created_by_machine,
            &now,
            &m.in_reply_to,
            &live,
            &CHANNEL,
        ];
        let (key_text, lapsed);
        if let Some((k, l)) = key {
            (key_text, lapsed) = (k, l);
            params.push(&key_text);
            params.push(&lapsed);
        }
        Ok(c.query_opt(&sql, &params)
            .map_err(|e| self.db(e))?
            .map(|r| message_row(&r)))
    }

    /// A claim: the unique index on (project, resource) decides between
    /// replicas claiming at once; the loser sees the winner's row.
    fn claim(&self, tx: &mut impl Run, l: &NewLock, now: i64) -> Result<Written> {
        required("project", &l.project)?;
        required("resource", &l.resource)?;
        required("session_id", &l.session_id)?;
        let db = |e| self.db(e);
        let session = canonical_session(&l.session_id);
        check_paths(&l.paths).map_err(Error::invalid)?;
        let paths = paths_column(&l.paths);
        let expires = crate::store::lock_expiry(l.ttl_hours, now)?;
        // A free resource is one statement. Taken: by whom, and an
        // expired holder is cleared and the claim tried again; at most
        // three turns (a holder that let go between two statements).
        for _ in 0..3 {
            if let Some(row) = tx
                .query_opt(
                    &format!(
                        "INSERT INTO locks (project, resource, session_id, note, created_at, expires_at, paths) \
                         VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (project, resource) DO NOTHING \
                         RETURNING {LOCK_COLS}"
                    ),
                    &[&l.project, &l.resource, &session, &l.note, &now, &expires, &paths],
                )
                .map_err(db)?
            {
                return Ok(Written::Lock {
                    lock: lock_row(&row),
                    created: true,
                });
            }
            let Some(row) = tx
                .query_opt(
                    &format!(
                        "SELECT {LOCK_COLS}, expires_at <= $3 FROM locks \
                         WHERE project = $1 AND resource = $2 FOR UPDATE"
                    ),
                    &[&l.project, &l.resource, &now],
                )
                .map_err(db)?
            else {
                continue;
            };
            let held = lock_row(&row);
            if row.get::<_, bool>(8) {
                tx.execute(
                    "DELETE FROM locks WHERE id = $1 AND expires_at <= $2",
                    &[&held.id, &now],
                )
                .map_err(db)?;
                continue;
            }
            if held.session_id != session {
                return Err(Error::Conflict {
                    detail: format!(
                        "{}/{} is held by {} until {}",
                        held.project,
                        held.resource,
                        held.session_id,
                        format_time(&held.expires_at)
                    ),
                    lock: Some(Box::new(held)),
                });
            }
            // Renewed only while still ours: outside a transaction the
            // holder may let go between the two statements.
            if let Some(row) = tx
                .query_opt(
                    &format!(
                        "UPDATE locks SET expires_at = $2, note = COALESCE($3, note), \
                         paths = COALESCE($4, paths) WHERE id = $1 AND session_id = $5 \
                         RETURNING {LOCK_COLS}"
                    ),
                    &[&held.id, &expires, &l.note, &paths, &session],
                )
                .map_err(db)?
            {
                return Ok(Written::Lock {
                    lock: lock_row(&row),
                    created: false,
                });
            }
        }
        Err(Error::Unavailable(format!(
            "{}/{} changed hands while it was claimed; claim it again",
            l.project, l.resource
        )))
    }

    /// Marks broadcast `id` read for `session` (see the SQLite store).
    fn read_broadcast(&self, tx: &mut impl Run, id: i64, session: &str, now: i64) -> Result<()> {
        let db = |e| self.db(e);
        tx.execute(
            "UPDATE deliveries SET read_at = $3 WHERE message_id = $1 AND session = $2 AND read_at IS NULL",
            &[&id, &session, &now],
        )
        .map_err(db)?;
        let cut = now - 7 * 24 * 3600 * 1000;
        let upto: i64 = tx
            .query_one(
                "SELECT COALESCE((SELECT upto FROM broadcast_marks WHERE session = $1), \
                 (SELECT id FROM messages WHERE to_session = 'ALL_SESSIONS' AND created_at < $2 \
                  ORDER BY created_at DESC LIMIT 1), 0)",
                &[&session, &cut],
            )
            .map_err(db)?
            .get(0);
        if id <= upto {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO message_reads (message_id, session, read_at) VALUES ($1,$2,$3) \
             ON CONFLICT DO NOTHING",
            &[&id, &session, &now],
        )
        .map_err(db)?;
        let new_upto: Option<i64> = tx
            .query_one(
                "SELECT COALESCE(
                     (SELECT min(m.id) FROM messages m
                      WHERE m.to_session = 'ALL_SESSIONS' AND m.id > $2 AND m.from_session <> $1
                        AND NOT EXISTS (SELECT 1 FROM message_reads r
                                        WHERE r.message_id = m.id AND r.session = $1)) - 1,
                     (SELECT max(id) FROM messages WHERE to_session = 'ALL_SESSIONS'))",
                &[&session, &upto],
            )
            .map_err(db)?
            .get(0);
        if let Some(new_upto) = new_upto.filter(|n| *n > upto) {
            tx.execute(
                "INSERT INTO broadcast_marks (session, upto, at) VALUES ($1, $2, $3) \
                 ON CONFLICT (session) DO UPDATE SET upto = GREATEST(broadcast_marks.upto, excluded.upto), \
                 at = excluded.at",
                &[&session, &new_upto, &now],
            )
            .map_err(db)?;
            tx.execute(
                "DELETE FROM message_reads WHERE session = $1 AND message_id <= $2",
                &[&session, &new_upto],
            )
            .map_err(db)?;
        }
        Ok(())
    }

    pub(super) fn message(&self, tx: &mut impl Run, id: i64, session: &str) -> Result<Message> {
        tx.query_opt(
            &format!(
                "SELECT {MESSAGE_COLS}, {READ_AT} FROM messages m {READ_JOINS} WHERE m.id = $2"
            ),
            &[&canonical_session(session), &id],
        )
        .map_err(|e| self.db(e))?
        .map(|r| message_row(&r))
        .ok_or_else(|| Error::not_found(format!("message {id}")))
    }

    fn todo(&self, tx: &mut impl Run, id: i64) -> Result<Todo> {
        tx.query_opt(
            &format!("SELECT {TODO_COLS} FROM todos WHERE id = $1"),
            &[&id],
        )
        .map_err(|e| self.db(e))?
        .map(|r| todo_row(&r))
        .ok_or_else(|| Error::not_found(format!("todo {id}")))
    }

    /// The first answer given to `key` (claimed by another request).
    pub(super) fn replay(&self, tx: &mut impl Run, w: &Write, key: &str) -> Result<Written> {
        let row = tx
            .query_one(
                "SELECT status, body, op, ref FROM idempotency WHERE key = $1",
                &[&key],
            )
            .map_err(|e| self.db(e))?;
        let (status, body, op, reference): (i32, String, Option<String>, Option<i64>) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let reused = |first: &str| crate::store::key_reused(key, first, w);
        if let Some(first) = op.as_deref()
            && first != w.op_name()
        {
            return Err(reused(first));
        }
        if let Some(id) = reference {
            return match w {
                Write::SendMessage(m) => {
                    self.message(tx, id, &m.from_session).map(Written::Message)
                }
                Write::MarkRead { session, .. } => {
                    self.message(tx, id, session).map(Written::Message)
                }
                Write::AddTodo(_) | Write::CompleteTodo { .. } => {
                    self.todo(tx, id).map(Written::Todo)
                }
                _ => Err(reused("unknown")),
            };
        }
        crate::store::stored_answer(w, u16::try_from(status).unwrap_or(0), &body)
            .ok_or_else(|| reused("unknown"))
    }

    /// One retention pass (as the SQLite store's, in batches), on one
    /// replica at a time: the others find the advisory lock taken and
    /// skip. Answers None when another replica holds it.
    pub fn purge(&self, days: u32) -> Result<Option<crate::store::Purged>> {
        let now = now_ms();
        let cut = now - i64::from(days.max(crate::store::MIN_RETAIN_DAYS)) * 24 * 3600 * 1000;
        self.with(|c| {
            let got: bool = c
                .query_one("SELECT pg_try_advisory_lock($1)", &[&RETENTION_LOCK])
                .map_err(|e| self.db(e))?
                .get(0);
            if !got {
                return Ok(None);
            }
            let batches = |c: &mut Conn, sql: &str, arg: i64| -> Result<usize> {
                let mut total = 0;
                loop {
                    let n = c.execute(sql, &[&arg]).map_err(|e| self.db(e))? as usize;
                    total += n;
                    if n < 250 {
                        return Ok(total);
                    }
                }
            };
            let r = (|| {
                Ok(crate::store::Purged {
                    messages: batches(
                        c,
                        "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE created_at < $1 \
                         AND (to_session = 'ALL_SESSIONS' OR read_at IS NOT NULL) ORDER BY id LIMIT 250)",
                        cut,
                    )?,
                    todos: batches(
                        c,
                        "DELETE FROM todos WHERE id IN (SELECT id FROM todos WHERE status = 'done' \
                         AND completed_at < $1 ORDER BY id LIMIT 250)",
                        cut,
                    )?,
                    keys: batches(
                        c,
                        "DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency \
                         WHERE created_at <= $1 LIMIT 250)",
                        now - IDEMPOTENCY_WINDOW_MS,
                    )?,
                    locks: batches(
                        c,
                        "DELETE FROM locks WHERE id IN (SELECT id FROM locks WHERE expires_at <= $1 \
                         ORDER BY id LIMIT 250)",
                        now,
                    )?,
                })
                .and_then(|p| {
                    c.execute(
                        "DELETE FROM touches WHERE at < $1",
                        &[&(now - crate::store::TOUCH_KEPT_MS)],
                    )
                    .map_err(|e| self.db(e))?;
                    Ok(p)
                })
            })();
            let _ = c.execute("SELECT pg_advisory_unlock($1)", &[&RETENTION_LOCK]);
            r.map(Some)
        })
    }
}

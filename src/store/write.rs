//! Writes: every operation of the contract, inside the caller's
//! transaction.

use super::*;

pub(crate) fn required(field: &str, v: &str) -> Result<()> {
    if v.trim().is_empty() {
        Err(Error::invalid(format!("{field} must not be empty")))
    } else {
        Ok(())
    }
}

/// A message's required fields checked, and its sender and recipient as
/// stored (both stores).
pub(crate) fn message_ends(m: &NewMessage) -> Result<(String, String)> {
    required("to_session", &m.to_session)?;
    required("body", &m.body)?;
    required("from_session", &m.from_session)?;
    Ok((
        canonical_session(&m.from_session),
        canonical_session(&m.to_session),
    ))
}

/// The most files one `TouchFiles` and ids one `MarkShown` may carry.
pub(crate) const MAX_RECORDED: usize = 500;

/// A `TouchFiles`' paths: some, not too many, each a path.
pub(crate) fn check_touched(paths: &[String]) -> Result<()> {
    if paths.is_empty() || paths.len() > MAX_RECORDED {
        return Err(Error::invalid(format!(
            "paths must hold 1 to {MAX_RECORDED} paths, not {}",
            paths.len()
        )));
    }
    match paths.iter().find(|p| p.trim().is_empty() || p.len() > 1024) {
        Some(p) => Err(Error::invalid(format!(
            "paths: {:?} is not a repository-relative path of at most 1,024 bytes",
            crate::text::cell(p, 60)
        ))),
        None => Ok(()),
    }
}

/// A `MarkShown`'s ids: some, not too many.
pub(crate) fn check_shown(ids: &[i64]) -> Result<()> {
    if ids.is_empty() || ids.len() > MAX_RECORDED {
        return Err(Error::invalid(format!(
            "ids must hold 1 to {MAX_RECORDED} message ids, not {}",
            ids.len()
        )));
    }
    Ok(())
}

/// When a lock claimed at `now` for `ttl_hours` expires; a TTL outside the
/// contract's bounds is a 422 naming it. Both stores ask this.
pub(crate) fn lock_expiry(ttl_hours: Option<f64>, now: i64) -> Result<i64> {
    let ttl = ttl_hours.unwrap_or(DEFAULT_TTL_HOURS);
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
    Ok(expires)
}

impl LocalStore {
    pub(super) fn apply_in(&self, tx: &Connection, w: &Write, now: i64) -> Result<Written> {
        if let Err((field, why)) = w.check_addresses() {
            return Err(Error::invalid(format!("{field}: {why}")));
        }
        match w {
            Write::SendMessage(m) => {
                let (from, to) = message_ends(m)?;
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
                if to == ALL_SESSIONS {
                    // Its recipients: the sessions live now (v1.2 delivery).
                    self.db(tx.exec(
                        "INSERT INTO deliveries (message_id, session) SELECT ?1, session_id FROM sessions \
                         WHERE last_seen >= ?2 AND closed_at IS NULL AND session_id <> ?3",
                        params![id, now - ACTIVE_SECS * 1000, from],
                    ))?;
                }
                self.message(tx, id, &from).map(Written::Message)
            }
            Write::TouchSession { session_id, update }
                if update.state.as_deref() == Some(CLOSED) =>
            {
                let id = canonical_session(session_id);
                self.db(tx.exec(
                    "UPDATE sessions SET closed_at = COALESCE(closed_at, ?2) WHERE session_id = ?1",
                    params![id, now],
                ))?;
                self.db(tx
                    .row(
                        &format!("SELECT {SESSION_COLS} FROM sessions WHERE session_id = ?1"),
                        [&id],
                        session_row,
                    )
                    .optional())?
                    .map(Written::Session)
                    .ok_or_else(|| Error::not_found(format!("session {id}")))
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
                     last_seen = excluded.last_seen, closed_at = NULL",
                    params![id, update.user, machine, name, update.project, update.client, now],
                ))?;
                self.db(tx.row(
                    &format!("SELECT {SESSION_COLS} FROM sessions WHERE session_id = ?1"),
                    [&id],
                    session_row,
                ))
                .map(Written::Session)
            }
            Write::TouchFiles {
                session_id,
                project,
                paths,
            } => {
                required("project", project)?;
                check_touched(paths)?;
                let session = canonical_session(session_id);
                let mut n = 0;
                for p in paths {
                    n += self.db(tx.exec(
                        "INSERT INTO touches (project, path, session, at) VALUES (?1,?2,?3,?4) \
                         ON CONFLICT (project, path, session) DO UPDATE SET at = excluded.at",
                        params![project, p, session, now],
                    ))? as u64;
                }
                Ok(Written::Recorded(n))
            }
            Write::MarkShown { session, ids } => {
                check_shown(ids)?;
                let session = canonical_session(session);
                let mut n = 0;
                for id in ids {
                    n += self.db(tx.exec(
                        "UPDATE messages SET shown_at = ?3 WHERE id = ?1 AND to_session = ?2 AND shown_at IS NULL",
                        params![id, session, now],
                    ))? as u64;
                    n += self.db(tx.exec(
                        "UPDATE deliveries SET shown_at = ?3 WHERE message_id = ?1 AND session = ?2 AND shown_at IS NULL",
                        params![id, session, now],
                    ))? as u64;
                }
                Ok(Written::Recorded(n))
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

    pub(super) fn claim(&self, tx: &Connection, l: &NewLock, now: i64) -> Result<Written> {
        required("project", &l.project)?;
        required("resource", &l.resource)?;
        required("session_id", &l.session_id)?;
        let l = &NewLock {
            session_id: canonical_session(&l.session_id),
            ..l.clone()
        };
        check_paths(&l.paths).map_err(Error::invalid)?;
        let paths = paths_column(&l.paths);
        let expires = lock_expiry(l.ttl_hours, now)?;
        // An expired lock on this resource is gone (the rest are invisible
        // to every read and go with retention, off the claim's path).
        self.db(tx.exec(
            "DELETE FROM locks WHERE project = ?1 AND resource = ?2 AND expires_at <= ?3",
            params![l.project, l.resource, now],
        ))?;
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
                    "UPDATE locks SET expires_at = ?2, note = COALESCE(?3, note), \
                     paths = COALESCE(?4, paths) WHERE id = ?1",
                    params![h.id, expires, l.note, paths],
                ))?;
                (h.id, false)
            }
            None => {
                self.db(tx.exec(
                    "INSERT INTO locks (project, resource, session_id, note, created_at, expires_at, paths) \
                     VALUES (?1,?2,?3,?4,?5,?6,?7)",
                    params![l.project, l.resource, l.session_id, l.note, now, expires, paths],
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

    pub(super) fn message(&self, c: &Connection, id: i64, session: &str) -> Result<Message> {
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
    pub(super) fn read_broadcast(
        &self,
        tx: &Connection,
        id: i64,
        session: &str,
        now: i64,
    ) -> Result<()> {
        self.db(tx.exec(
            "UPDATE deliveries SET read_at = ?3 WHERE message_id = ?1 AND session = ?2 AND read_at IS NULL",
            params![id, session, now],
        ))?;
        let upto: i64 = self.db(tx.row(
            &format!("SELECT {}", broadcast_floor("?1", "?2")),
            params![session, new_session_cut(now)],
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

    pub(super) fn todo(&self, c: &Connection, id: i64) -> Result<Todo> {
        self.db(c
            .row(
                &format!("SELECT {TODO_COLS} FROM todos WHERE id = ?1"),
                [id],
                todo_row,
            )
            .optional())?
            .ok_or_else(|| Error::not_found(format!("todo {id}")))
    }
}

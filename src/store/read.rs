//! Reads: SQL written so that its indexes apply, and rows mapped to the
//! contract's objects.

use super::*;

/// The todos query with only the filters asked for written out, so that
/// SQLite can use its indexes (`?N IS NULL OR …` keeps it from any).
pub(super) fn todos_sql(q: &TodoQuery) -> (String, Vec<rusqlite::types::Value>) {
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
    let user = q.user.as_ref().map(|u| param(V::Text(u.clone())));
    if let Some(pr) = &q.project {
        conds.push(format!("project = {}", param(V::Text(pr.clone()))));
    }
    if let Some(a) = q.after_id {
        conds.push(format!("id > {}", param(V::Integer(a))));
    }
    let filter = |extra: Option<String>| {
        let all: Vec<String> = conds.iter().cloned().chain(extra).collect();
        if all.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", all.join(" AND "))
        }
    };
    // LIMIT -1 is SQLite's "no limit".
    let limit = param(V::Integer(q.limit.map_or(-1, i64::from)));
    let sql = match (user, q.include_unassigned) {
        // This user's and everyone's: two index ranges merged in id order
        // (an OR of the two would walk every user's todos of that status).
        (Some(u), true) => format!(
            "SELECT {TODO_COLS} FROM (SELECT {TODO_COLS} FROM todos {} \
             UNION ALL SELECT {TODO_COLS} FROM todos {}) ORDER BY id LIMIT {limit}",
            filter(Some(format!("user = {u}"))),
            filter(Some("user IS NULL".into())),
        ),
        (Some(u), false) => format!(
            "SELECT {TODO_COLS} FROM todos {} ORDER BY id LIMIT {limit}",
            filter(Some(format!("user = {u}")))
        ),
        (None, _) => format!(
            "SELECT {TODO_COLS} FROM todos {} ORDER BY id LIMIT {limit}",
            filter(None)
        ),
    };
    (sql, params)
}

/// The active locks, with only the filters asked for written out.
pub(super) fn locks_sql(q: &LockQuery, now: i64) -> (String, Vec<rusqlite::types::Value>) {
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
    /// Maps up to `bytes` of the file into memory (`PRAGMA mmap_size`) for a
    /// long-lived connection: a read then finds its pages without the
    /// kernel copying them in. `coord serve` does this; a hook, which
    /// lives for milliseconds, does not.
    pub fn map_into_memory(&self, bytes: u64) -> Result<()> {
        self.db(self
            .conn
            .query_row(&format!("PRAGMA mmap_size = {bytes}"), [], |_| Ok(())))
    }

    /// A number that changes whenever another connection commits a write:
    /// the cheapest way to learn that something may be new.
    pub fn data_version(&self) -> Result<i64> {
        self.db(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0)))
    }

    /// How many todos match `q` without its limit (for `X-Total-Count`).
    pub fn todo_count(&self, q: &TodoQuery) -> Result<u64> {
        let (sql, params) = todos_sql(&TodoQuery {
            limit: None,
            ..q.clone()
        });
        self.count_of(&sql, TODO_COLS, &params)
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
        self.count_of(&sql, LOCK_COLS, &params)
    }

    /// How many rows list query `sql` (selecting `cols`) matches.
    fn count_of(&self, sql: &str, cols: &str, params: &[rusqlite::types::Value]) -> Result<u64> {
        let sql = sql.replacen(&format!("SELECT {cols} "), "SELECT count(*) ", 1);
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
    pub fn touch_if_stale(&self, w: &Write, fresh: std::time::Duration) {
        if let Write::TouchSession { session_id, .. } = w {
            let seen: Option<i64> = self
                .conn
                .row(
                    "SELECT last_seen FROM sessions WHERE session_id = ?1",
                    [canonical_session(session_id)],
                    |r| r.get(0),
                )
                .ok();
            if seen.is_some_and(|t| now_ms() - t < fresh.as_millis() as i64) {
                return;
            }
        }
        let _ = self.write(w, None);
    }

    /// Who has read `m` (its sender aside).
    fn readers_of(&self, m: &Message) -> Result<Vec<String>> {
        if m.to_session == ALL_SESSIONS {
            self.collect(
                "SELECT session FROM broadcast_marks WHERE upto >= ?1 AND session <> ?2 \
                 UNION SELECT session FROM message_reads WHERE message_id = ?1 AND session <> ?2 \
                 ORDER BY 1",
                &[&m.id, &m.from_session],
                |r| r.get(0),
            )
        } else {
            self.collect(
                "SELECT to_session FROM messages WHERE id = ?1 AND read_at IS NOT NULL",
                &[&m.id],
                |r| r.get(0),
            )
        }
    }

    /// The newest messages of the fleet (those to or from `session`, when
    /// given), each with who has read it: the dashboard's timeline.
    pub(super) fn timeline_of(&self, session: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        let mut messages = match session.map(canonical_session) {
            Some(s) => self.collect(
                &format!(
                    "SELECT {MESSAGE_COLS}, NULL FROM messages m WHERE m.id IN \
                     (SELECT id FROM (SELECT id FROM messages WHERE to_session = ?1 ORDER BY id DESC LIMIT ?2) \
                      UNION SELECT id FROM (SELECT id FROM messages WHERE from_session = ?1 ORDER BY id DESC LIMIT ?2)) \
                     ORDER BY m.id DESC LIMIT ?2"
                ),
                &[&s, &limit],
                message_row,
            )?,
            None => self.collect(
                &format!("SELECT {MESSAGE_COLS}, NULL FROM messages m ORDER BY m.id DESC LIMIT ?1"),
                &[&limit],
                message_row,
            )?,
        };
        for m in &mut messages {
            m.read_by = Some(self.readers_of(m)?);
        }
        Ok(messages)
    }

    /// What `session` sent, each with who has read it.
    pub(super) fn sent(&self, session: &str, limit: u32, newest_first: bool) -> Result<Page> {
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
            m.read_by = Some(self.readers_of(m)?);
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
    pub fn hook_query_plans(
        &self,
        (mq, tq, lq): &(MessageQuery, TodoQuery, LockQuery),
    ) -> Result<Vec<String>> {
        let session = mq.session.as_str();
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
        let (todos, tp) = todos_sql(tq);
        explain(&todos, tp)?;
        let (locks, lp) = locks_sql(lq, now_ms());
        explain(&locks, lp)?;
        let (msgs, count) = messages_sql(mq.unread_only, mq.newest_first);
        let limit = i64::from(mq.limit.unwrap_or(DEFAULT_MESSAGE_LIMIT));
        let cut = V::Integer(new_session_cut(now_ms()));
        let p = vec![
            V::Text(session.into()),
            V::Integer(0),
            V::Integer(limit),
            cut,
        ];
        explain(&msgs, p.clone())?;
        explain(&count, p)?;
        Ok(out)
    }

    /// How many times SQLite re-compiled the cached unread query while it
    /// ran `n` times with a different limit each time (for the test that
    /// keeps it 0: a re-compile per run cost most of a read).
    #[doc(hidden)]
    pub fn unread_recompiles(&self, session: &str, n: u32) -> Result<i32> {
        let (sql, _) = messages_sql(true, true);
        for limit in 1..=n {
            let cut = new_session_cut(now_ms());
            self.collect(&sql, &[&session, &0, &limit, &cut], message_row)?;
        }
        let st = self.db(self.conn.prepare_cached(&sql))?;
        Ok(st.get_status(rusqlite::StatementStatus::RePrepare))
    }
}

/// How far back a session that has never read a broadcast (no mark yet)
/// sees them: a window new to a fleet with a year of history is shown the
/// last week's announcements, not a year of them.
pub const NEW_SESSION_BROADCAST_DAYS: i64 = 7;

/// The cut for [`NEW_SESSION_BROADCAST_DAYS`] at `now`.
pub(super) fn new_session_cut(now: i64) -> i64 {
    now - NEW_SESSION_BROADCAST_DAYS * 24 * 3600 * 1000
}

/// The broadcast id at or below which session `s` counts every broadcast
/// as read: its mark, or for a session without one the newest broadcast
/// older than `cut` (one step of a partial index: ids grow with time).
pub(super) fn broadcast_floor(s: &str, cut: &str) -> String {
    format!(
        "COALESCE((SELECT upto FROM broadcast_marks WHERE session = {s}), \
         (SELECT id FROM messages INDEXED BY messages_broadcast_age \
          WHERE to_session = 'ALL_SESSIONS' AND created_at < {cut} \
          ORDER BY created_at DESC LIMIT 1), 0)"
    )
}

/// The messages query (and its count) for session `?1`, ids above `?2`,
/// at most `?3`; the unread ones take `?4`, the [`new_session_cut`] (the
/// count binds all four).
pub(super) fn messages_sql(unread_only: bool, newest_first: bool) -> (String, String) {
    let dir = if newest_first { "DESC" } else { "ASC" };
    // Two index ranges, each already in id order and cut to the limit,
    // then merged: never a scan of the history. Unread direct messages
    // come from the partial index on unread rows; unread broadcasts are
    // those above the session's mark that are not exceptions.
    // One lower bound per range (`after_id`, or the session's mark when it
    // is higher), so that the index range starts there.
    let (direct, broadcast) = if unread_only {
        (
            "m.to_session = ?1 AND m.read_at IS NULL AND m.from_session <> ?1 AND m.id > ?2"
                .to_string(),
            format!(
                "m.to_session = 'ALL_SESSIONS' AND m.from_session <> ?1 \
                 AND m.id > max(?2, {}) \
                 AND NOT EXISTS (SELECT 1 FROM message_reads x WHERE x.message_id = m.id AND x.session = ?1)",
                broadcast_floor("?1", "?4")
            ),
        )
    } else {
        (
            "m.to_session = ?1 AND m.id > ?2".to_string(),
            "m.to_session = 'ALL_SESSIONS' AND m.id > ?2".to_string(),
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
        part(&direct),
        part(&broadcast)
    );
    let count = format!(
        "SELECT (SELECT count(*) FROM messages m WHERE {direct}) \
              + (SELECT count(*) FROM messages m WHERE {broadcast})"
    );
    (sql, count)
}

pub(super) const MESSAGE_COLS: &str = "m.id, m.from_session, m.to_session, m.subject, m.body, \
     m.created_by_user, m.created_by_machine, m.created_at, m.in_reply_to, \
     (SELECT substr(p.body, 1, 400) FROM messages p WHERE p.id = m.in_reply_to)";

/// When the session `?1` read message `m`, as one SQL expression over `m`,
/// the broadcast exception `r` and the mark `b` (both joined on `?1`): an
/// own message is read when it was sent; a direct one carries its read
/// state; a broadcast at or below the mark was read by the time the mark
/// moved (its own row, when still there, says exactly when).
pub(super) const READ_AT: &str = "CASE WHEN m.from_session = ?1 THEN m.created_at \
     WHEN m.to_session <> 'ALL_SESSIONS' THEN m.read_at \
     WHEN m.id <= COALESCE(b.upto, 0) THEN COALESCE(r.read_at, b.at) \
     ELSE r.read_at END";

/// The joins `READ_AT` needs, for session `?1`.
pub(super) const READ_JOINS: &str = "LEFT JOIN message_reads r ON r.message_id = m.id AND r.session = ?1 \
     LEFT JOIN broadcast_marks b ON b.session = ?1";

pub(super) fn message_row(r: &Row) -> rusqlite::Result<Message> {
    let read_at: Option<i64> = r.get(10)?;
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
        replies_to: r.get::<_, Option<String>>(9)?.map(|b| first_line(&b)),
    })
}

pub(super) const SESSION_COLS: &str =
    "session_id, user, machine, name, project, client, first_seen, last_seen, closed_at";

pub(super) fn session_row(r: &Row) -> rusqlite::Result<Session> {
    Ok(Session {
        session_id: r.get(0)?,
        user: r.get(1)?,
        machine: r.get(2)?,
        name: r.get(3)?,
        project: r.get(4)?,
        client: r.get(5)?,
        first_seen: from_millis(r.get(6)?),
        last_seen: from_millis(r.get(7)?),
        state: None,
        closed_at: None,
        active: None,
    }
    .with_state(
        r.get::<_, Option<i64>>(8)?.map(from_millis),
        &crate::clock::now(),
    ))
}

pub(super) const TODO_COLS: &str = "id, text, user, project, parent_id, source, auto, status, \
     created_by_user, created_by_machine, created_at, completed_by, completed_at";

pub(super) fn todo_row(r: &Row) -> rusqlite::Result<Todo> {
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

pub(super) const LOCK_COLS: &str =
    "id, project, resource, session_id, note, created_at, expires_at, paths";

pub(super) fn lock_row(r: &Row) -> rusqlite::Result<Lock> {
    Ok(Lock {
        id: r.get(0)?,
        project: r.get(1)?,
        resource: r.get(2)?,
        session_id: r.get(3)?,
        note: r.get(4)?,
        created_at: from_millis(r.get(5)?),
        expires_at: from_millis(r.get(6)?),
        paths: paths_from_column(r.get(7)?),
    })
}

pub(super) fn component_row(r: &Row) -> rusqlite::Result<Component> {
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

pub(super) fn workflow_row(r: &Row) -> rusqlite::Result<Workflow> {
    Ok(Workflow {
        name: r.get(0)?,
        state: r.get(1)?,
        detail: r.get(2)?,
        updated_by: r.get(3)?,
        updated_at: from_millis(r.get(4)?),
    })
}

impl LocalStore {
    pub(super) fn collect<T>(
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
}

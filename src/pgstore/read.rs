//! Reads on PostgreSQL: the same index ranges as the SQLite store's, and
//! the listener that wakes long-polls on any replica.

use std::collections::{HashSet, VecDeque};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;

use super::*;

/// A session without a broadcast mark sees this many days of broadcasts
/// (as on the SQLite store).
const NEW_SESSION_BROADCAST_MS: i64 = 7 * 24 * 3600 * 1000;

/// The broadcast id at or below which session `s` counts every broadcast
/// read: its mark, or the newest broadcast older than `cut`.
fn broadcast_floor(s: &str, cut: &str) -> String {
    format!(
        "COALESCE((SELECT upto FROM broadcast_marks WHERE session = {s}), \
         (SELECT id FROM messages WHERE to_session = 'ALL_SESSIONS' AND created_at < {cut} \
          ORDER BY created_at DESC LIMIT 1), 0)"
    )
}

/// Parameters gathered while a query is written.
type ParamList<'a> = Vec<&'a (dyn ToSql + Sync)>;

impl PgStore {
    pub(super) fn messages_in(&self, c: &mut Conn, q: &MessageQuery) -> Result<Page> {
        let limit = i64::from(
            q.limit
                .unwrap_or(DEFAULT_MESSAGE_LIMIT)
                .clamp(1, MAX_MESSAGE_LIMIT),
        );
        let after = q.after_id.unwrap_or(0);
        let session = canonical_session(&q.session);
        if q.sent {
            return self.sent(c, &session, limit, q.newest_first);
        }
        let cut = now_ms() - NEW_SESSION_BROADCAST_MS;
        let dir = if q.newest_first { "DESC" } else { "ASC" };
        // $1 session, $2 after, then the cut (unread only) and the limit.
        let (direct, broadcast, count_params): (String, String, ParamList) = if q.unread_only {
            (
                "m.to_session = $1 AND m.read_at IS NULL AND m.from_session <> $1 AND m.id > $2"
                    .into(),
                format!(
                    "m.to_session = 'ALL_SESSIONS' AND m.from_session <> $1 \
                     AND m.id > GREATEST($2, {}) \
                     AND NOT EXISTS (SELECT 1 FROM message_reads x WHERE x.message_id = m.id AND x.session = $1)",
                    broadcast_floor("$1", "$3")
                ),
                vec![&session, &after, &cut],
            )
        } else {
            (
                "m.to_session = $1 AND m.id > $2".into(),
                "m.to_session = 'ALL_SESSIONS' AND m.id > $2".into(),
                vec![&session, &after],
            )
        };
        let lim = format!("${}", count_params.len() + 1);
        let part = |filter: &str| {
            format!("(SELECT m.id FROM messages m WHERE {filter} ORDER BY m.id {dir} LIMIT {lim})")
        };
        // The page and its count in one statement (one round trip): the
        // count is uncorrelated, computed once; no row means none at all
        // (the page takes at least one of what the count counts). The
        // page's ids are gathered first (two index ranges) and its rows
        // fetched by id: a plan of that shape whatever the table's size
        // when the connection planned it.
        let sql = format!(
            "SELECT {MESSAGE_COLS}, {READ_AT}, \
             (SELECT count(*) FROM messages m WHERE {direct}) \
             + (SELECT count(*) FROM messages m WHERE {broadcast}) \
             FROM messages m {READ_JOINS} \
             WHERE m.id = ANY(ARRAY({} UNION ALL {})) ORDER BY m.id {dir} LIMIT {lim}",
            part(&direct),
            part(&broadcast)
        );
        let mut list_params = count_params.clone();
        list_params.push(&limit);
        let rows = c.query(&sql, &list_params).map_err(|e| self.db(e))?;
        let total: i64 = rows.first().map_or(0, |r| r.get(11));
        let messages = rows.iter().map(message_row).collect();
        Ok(Page {
            messages,
            total: Some(total.max(0) as u64),
        })
    }

    /// Who has read `m` (its sender aside).
    fn readers_of(&self, c: &mut Conn, m: &Message) -> Result<Vec<String>> {
        let rows = if m.to_session == ALL_SESSIONS {
            c.query(
                "SELECT session FROM broadcast_marks WHERE upto >= $1 AND session <> $2 \
                 UNION SELECT session FROM message_reads WHERE message_id = $1 AND session <> $2 \
                 ORDER BY 1",
                &[&m.id, &m.from_session],
            )
        } else {
            c.query(
                "SELECT to_session FROM messages WHERE id = $1 AND read_at IS NOT NULL",
                &[&m.id],
            )
        }
        .map_err(|e| self.db(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The dashboard's timeline (see `Coord::timeline`).
    pub(super) fn timeline_in(
        &self,
        c: &mut Conn,
        session: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let limit = i64::from(limit);
        let rows = match session.map(canonical_session) {
            Some(s) => c.query(
                &format!(
                    "SELECT {MESSAGE_COLS}, NULL::BIGINT FROM messages m WHERE m.id IN \
                     ((SELECT id FROM messages WHERE to_session = $1 ORDER BY id DESC LIMIT $2) \
                      UNION (SELECT id FROM messages WHERE from_session = $1 ORDER BY id DESC LIMIT $2)) \
                     ORDER BY m.id DESC LIMIT $2"
                ),
                &[&s, &limit],
            ),
            None => c.query(
                &format!(
                    "SELECT {MESSAGE_COLS}, NULL::BIGINT FROM messages m ORDER BY m.id DESC LIMIT $1"
                ),
                &[&limit],
            ),
        }
        .map_err(|e| self.db(e))?;
        let mut messages: Vec<Message> = rows.iter().map(message_row).collect();
        for m in &mut messages {
            m.read_by = Some(self.readers_of(c, m)?);
        }
        Ok(messages)
    }

    /// What `session` sent, each with who has read it.
    fn sent(&self, c: &mut Conn, session: &str, limit: i64, newest_first: bool) -> Result<Page> {
        let dir = if newest_first { "DESC" } else { "ASC" };
        let mut messages: Vec<Message> = c
            .query(
                &format!(
                    "SELECT {MESSAGE_COLS}, m.created_at FROM messages m WHERE m.from_session = $1 \
                     ORDER BY m.id {dir} LIMIT $2"
                ),
                &[&session, &limit],
            )
            .map_err(|e| self.db(e))?
            .iter()
            .map(message_row)
            .collect();
        for m in &mut messages {
            m.read_by = Some(self.readers_of(c, m)?);
        }
        let total: i64 = c
            .query_one(
                "SELECT count(*) FROM messages WHERE from_session = $1",
                &[&session],
            )
            .map_err(|e| self.db(e))?
            .get(0);
        Ok(Page {
            messages,
            total: Some(total.max(0) as u64),
        })
    }

    /// The todos `q` asks for, or (`count`) how many match without its
    /// limit.
    pub(super) fn todos_in(
        &self,
        c: &mut Conn,
        q: &TodoQuery,
        count: bool,
    ) -> Result<(Vec<Todo>, Option<u64>)> {
        let status = q.status.as_str().to_string();
        let mut params: ParamList = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        if q.status != StatusFilter::All {
            params.push(&status);
            conds.push(format!("status = ${}", params.len()));
        }
        let user = q.user.as_ref().map(|u| {
            params.push(u);
            format!("${}", params.len())
        });
        if let Some(p) = &q.project {
            params.push(p);
            conds.push(format!("project = ${}", params.len()));
        }
        if let Some(a) = &q.after_id {
            params.push(a);
            conds.push(format!("id > ${}", params.len()));
        }
        let filter = |extra: Option<String>| {
            let all: Vec<String> = conds.iter().cloned().chain(extra).collect();
            if all.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", all.join(" AND "))
            }
        };
        // This user's and everyone's: two index ranges, as on SQLite.
        let from = match (user, q.include_unassigned) {
            (Some(u), true) => format!(
                "((SELECT {TODO_COLS} FROM todos {}) UNION ALL (SELECT {TODO_COLS} FROM todos {})) t",
                filter(Some(format!("\"user\" = {u}"))),
                filter(Some("\"user\" IS NULL".into())),
            ),
            (Some(u), false) => format!("todos {}", filter(Some(format!("\"user\" = {u}")))),
            (None, _) => format!("todos {}", filter(None)),
        };
        if count {
            let n: i64 = c
                .query_one(&format!("SELECT count(*) FROM {from}"), &params)
                .map_err(|e| self.db(e))?
                .get(0);
            return Ok((Vec::new(), Some(n.max(0) as u64)));
        }
        let limit = q.limit.map(i64::from);
        params.push(&limit);
        let sql = format!(
            "SELECT {TODO_COLS} FROM {from} ORDER BY id LIMIT ${}",
            params.len()
        );
        let v = c
            .query(&sql, &params)
            .map_err(|e| self.db(e))?
            .iter()
            .map(todo_row)
            .collect();
        Ok((v, None))
    }

    /// The active locks `q` asks for, or (`count`) how many.
    pub(super) fn locks_in(
        &self,
        c: &mut Conn,
        q: &LockQuery,
        count: bool,
    ) -> Result<(Vec<Lock>, Option<u64>)> {
        let now = now_ms();
        let session = q.session_id.as_deref().map(canonical_session);
        let mut params: ParamList = vec![&now];
        let mut conds = vec!["expires_at > $1".to_string()];
        if let Some(s) = &session {
            params.push(s);
            conds.push(format!("session_id = ${}", params.len()));
        }
        if let Some(p) = &q.project {
            params.push(p);
            conds.push(format!("project = ${}", params.len()));
        }
        if let Some(a) = &q.after_id {
            params.push(a);
            conds.push(format!("id > ${}", params.len()));
        }
        let filter = conds.join(" AND ");
        if count {
            let n: i64 = c
                .query_one(
                    &format!("SELECT count(*) FROM locks WHERE {filter}"),
                    &params,
                )
                .map_err(|e| self.db(e))?
                .get(0);
            return Ok((Vec::new(), Some(n.max(0) as u64)));
        }
        let limit = q.limit.map(i64::from);
        params.push(&limit);
        let v = c
            .query(
                &format!(
                    "SELECT {LOCK_COLS} FROM locks WHERE {filter} ORDER BY id LIMIT ${}",
                    params.len()
                ),
                &params,
            )
            .map_err(|e| self.db(e))?
            .iter()
            .map(lock_row)
            .collect();
        Ok((v, None))
    }
}

/// How many message ids the listener remembers having woken for.
const SEEN: usize = 4096;

/// Remembers message `id` as woken for; answers whether it is new.
fn remember(seen: &mut (HashSet<i64>, VecDeque<i64>), id: i64) -> bool {
    if !seen.0.insert(id) {
        return false;
    }
    seen.1.push_back(id);
    if seen.1.len() > SEEN
        && let Some(old) = seen.1.pop_front()
    {
        seen.0.remove(&old);
    }
    true
}

/// The listener's loop (see [`PgStore::listen`]): LISTEN on a connection of
/// its own, a catch-up read every second, a new connection after a second
/// when the old one fails.
pub(super) fn listen_forever(target: &Target, shown: &str, wake: &dyn Fn(&str)) {
    let mut said = false;
    // Where the catch-up starts: the newest id when listening began.
    let mut upto: Option<i64> = None;
    let mut seen: (HashSet<i64>, VecDeque<i64>) = (HashSet::new(), VecDeque::new());
    loop {
        let mut c = match target.connect() {
            Ok(c) => c,
            Err(e) => {
                if !said {
                    crate::out::note(&format!(
                        "coord serve: the listener cannot reach PostgreSQL at {shown} ({e}); retrying every second"
                    ));
                    said = true;
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if c.batch_execute(&format!("LISTEN {CHANNEL}")).is_err() {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        said = false;
        loop {
            let mut lost = false;
            {
                let mut n = c.notifications();
                let mut it = n.timeout_iter(Duration::from_secs(1));
                loop {
                    match it.next() {
                        // "ID SESSION": the id is remembered, so the
                        // catch-up does not wake for it again.
                        Ok(Some(note)) => {
                            let (id, to) = note
                                .payload()
                                .split_once(' ')
                                .unwrap_or(("", note.payload()));
                            if let Ok(id) = id.parse::<i64>() {
                                remember(&mut seen, id);
                            }
                            wake(to);
                        }
                        Ok(None) => break,
                        Err(_) => {
                            lost = true;
                            break;
                        }
                    }
                }
            }
            if lost || c.is_closed() {
                break;
            }
            // The catch-up: messages written since, whose notification
            // never came (or came to a connection that is gone).
            let from = upto.unwrap_or(i64::MAX);
            let rows = if upto.is_none() {
                c.query("SELECT COALESCE(max(id), 0), '' FROM messages", &[])
            } else {
                // A little behind the newest seen: ids are taken in one
                // order and committed in another.
                c.query(
                    "SELECT id, to_session FROM messages WHERE id > $1 ORDER BY id LIMIT 1000",
                    &[&(from - 64)],
                )
            };
            let Ok(rows) = rows else { break };
            if upto.is_none() {
                upto = rows.first().map(|r| r.get::<_, i64>(0));
                continue;
            }
            for r in &rows {
                let id: i64 = r.get(0);
                if remember(&mut seen, id) {
                    wake(r.get::<_, &str>(1));
                }
                upto = Some(upto.unwrap_or(0).max(id));
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

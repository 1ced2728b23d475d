//! Unread counts for many sessions at once (the dashboard's sessions
//! table): the same numbers as `unread_count`, with the broadcast part
//! shared between sessions whose floor is the same.

use std::collections::HashMap;

use super::read::{broadcast_floor, new_session_cut};
use super::*;

impl LocalStore {
    pub(super) fn unread_counts_of(&self, sessions: &[String]) -> Result<Vec<Option<u64>>> {
        let cut = new_session_cut(now_ms());
        let floor_sql = format!("SELECT {}", broadcast_floor("?1", "?2"));
        let mut above: HashMap<i64, i64> = HashMap::new();
        let mut out = Vec::with_capacity(sessions.len());
        for s in sessions {
            let s = canonical_session(s);
            let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<i64> {
                self.retry_busy(|| self.conn.row(sql, p, |r| r.get(0)))
            };
            let direct = count(
                "SELECT count(*) FROM messages INDEXED BY messages_unread \
                 WHERE to_session = ?1 AND read_at IS NULL AND from_session <> ?1",
                &[&s],
            )?;
            let floor: i64 = count(&floor_sql, &[&s, &cut])?;
            let all = match above.get(&floor) {
                Some(n) => *n,
                None => {
                    let n = count(
                        "SELECT count(*) FROM messages WHERE to_session = 'ALL_SESSIONS' AND id > ?1",
                        &[&floor],
                    )?;
                    above.insert(floor, n);
                    n
                }
            };
            let own = count(
                "SELECT count(*) FROM messages WHERE from_session = ?1 \
                 AND to_session = 'ALL_SESSIONS' AND id > ?2",
                &[&s, &floor],
            )?;
            let read = count(
                "SELECT count(*) FROM message_reads r JOIN messages m ON m.id = r.message_id \
                 WHERE r.session = ?1 AND r.message_id > ?2 AND m.to_session = 'ALL_SESSIONS' \
                 AND m.from_session <> ?1",
                &[&s, &floor],
            )?;
            out.push(Some((direct + all - own - read).max(0) as u64));
        }
        Ok(out)
    }
}

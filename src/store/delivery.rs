//! v1.2 reads: what happened to a message at each recipient (shown, read,
//! replied), which sessions recently edited a file, and the locks that
//! expired lately.

use super::*;

/// The most touches answered for one file.
const MAX_TOUCHES: i64 = 20;

impl LocalStore {
    pub(super) fn delivery_of(&self, id: i64) -> Result<Delivery> {
        let head: Option<(String, Option<i64>, Option<i64>)> = self.retry_busy(|| {
            self.conn
                .row(
                    "SELECT to_session, shown_at, read_at FROM messages WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
        })?;
        let (to, shown, read) = head.ok_or_else(|| Error::not_found(format!("message {id}")))?;
        let recipients = if to == ALL_SESSIONS {
            self.collect(
                "SELECT d.session, d.shown_at, d.read_at, \
                 (SELECT min(r.id) FROM messages r WHERE r.in_reply_to = d.message_id AND r.from_session = d.session) \
                 FROM deliveries d WHERE d.message_id = ?1 ORDER BY d.session",
                &[&id],
                recipient_row,
            )?
        } else {
            let reply: Option<i64> = self.retry_busy(|| {
                self.conn.row(
                    "SELECT min(id) FROM messages WHERE in_reply_to = ?1 AND from_session = ?2",
                    params![id, to],
                    |r| r.get(0),
                )
            })?;
            vec![Recipient {
                session: to,
                shown_at: shown.map(from_millis),
                read_at: read.map(from_millis),
                reply_id: reply,
            }]
        };
        Ok(Delivery { id, recipients })
    }

    pub(super) fn expired_locks_of(&self, within_s: u64, limit: u32) -> Result<Vec<Lock>> {
        let now = now_ms();
        let since = now - i64::try_from(within_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.collect(
            &format!(
                "SELECT {LOCK_COLS} FROM locks WHERE expires_at <= ?1 AND expires_at > ?2 \
                 ORDER BY expires_at DESC LIMIT ?3"
            ),
            &[&now, &since, &limit],
            lock_row,
        )
    }

    pub(super) fn touches_of(
        &self,
        project: &str,
        path: &str,
        within_s: u64,
    ) -> Result<Vec<Touch>> {
        let since = now_ms() - i64::try_from(within_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.collect(
            "SELECT session, project, path, at FROM touches \
             WHERE project = ?1 AND path = ?2 AND at >= ?3 ORDER BY at DESC LIMIT ?4",
            &[&project, &path, &since, &MAX_TOUCHES],
            |r| {
                Ok(Touch {
                    session_id: r.get(0)?,
                    project: r.get(1)?,
                    path: r.get(2)?,
                    at: from_millis(r.get(3)?),
                })
            },
        )
    }
}

fn recipient_row(r: &Row) -> rusqlite::Result<Recipient> {
    Ok(Recipient {
        session: r.get(0)?,
        shown_at: r.get::<_, Option<i64>>(1)?.map(from_millis),
        read_at: r.get::<_, Option<i64>>(2)?.map(from_millis),
        reply_id: r.get(3)?,
    })
}

//! v1.2 reads on PostgreSQL (as the SQLite store's): a message's delivery
//! per recipient, and recent edits of a file.

use super::*;

impl PgStore {
    pub(super) fn delivery_in(&self, c: &mut Conn, id: i64) -> Result<Delivery> {
        let db = |e| self.db(e);
        let head = c
            .query_opt(
                "SELECT to_session, shown_at, read_at, \
                 (SELECT min(r.id) FROM messages r WHERE r.in_reply_to = m.id AND r.from_session = m.to_session) \
                 FROM messages m WHERE id = $1",
                &[&id],
            )
            .map_err(db)?
            .ok_or_else(|| Error::not_found(format!("message {id}")))?;
        let to: String = head.get(0);
        let recipients = if to == ALL_SESSIONS {
            c.query(
                "SELECT d.session, d.shown_at, d.read_at, \
                 (SELECT min(r.id) FROM messages r WHERE r.in_reply_to = d.message_id AND r.from_session = d.session) \
                 FROM deliveries d WHERE d.message_id = $1 ORDER BY d.session",
                &[&id],
            )
            .map_err(db)?
            .iter()
            .map(|r| recipient(r, 0))
            .collect()
        } else {
            vec![recipient(&head, 0)]
        };
        Ok(Delivery { id, recipients })
    }

    pub(super) fn expired_locks_in(
        &self,
        c: &mut Conn,
        within_s: u64,
        limit: u32,
    ) -> Result<Vec<Lock>> {
        let now = now_ms();
        let since = now - i64::try_from(within_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let rows = c
            .query(
                &format!(
                    "SELECT {LOCK_COLS} FROM locks WHERE expires_at <= $1 AND expires_at > $2 \
                     ORDER BY expires_at DESC LIMIT $3"
                ),
                &[&now, &since, &i64::from(limit)],
            )
            .map_err(|e| self.db(e))?;
        Ok(rows.iter().map(lock_row).collect())
    }

    pub(super) fn touches_in(
        &self,
        c: &mut Conn,
        project: &str,
        path: &str,
        within_s: u64,
    ) -> Result<Vec<Touch>> {
        let since = now_ms() - i64::try_from(within_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let rows = c
            .query(
                "SELECT session, project, path, at FROM touches \
                 WHERE project = $1 AND path = $2 AND at >= $3 ORDER BY at DESC LIMIT 20",
                &[&project, &path, &since],
            )
            .map_err(|e| self.db(e))?;
        Ok(rows
            .iter()
            .map(|r| Touch {
                session_id: r.get(0),
                project: r.get(1),
                path: r.get(2),
                at: from_millis(r.get(3)),
            })
            .collect())
    }
}

/// A recipient from columns session, shown_at, read_at, reply at `at`.
fn recipient(r: &Row, at: usize) -> Recipient {
    Recipient {
        session: r.get(at),
        shown_at: r.get::<_, Option<i64>>(at + 1).map(from_millis),
        read_at: r.get::<_, Option<i64>>(at + 2).map(from_millis),
        reply_id: r.get(at + 3),
    }
}

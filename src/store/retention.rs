//! Retention: what `coord serve --retain DAYS` deletes, and the file
//! shrinking after it.

use super::*;

/// What one retention pass deleted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Purged {
    pub messages: usize,
    pub todos: usize,
    pub keys: usize,
    pub locks: usize,
}

/// The fewest days `coord serve --retain` keeps: idempotency keys live 7.
pub const MIN_RETAIN_DAYS: u32 = 7;

impl LocalStore {
    /// Deletes what is past keeping: read direct messages and broadcasts
    /// older than `days` (with their read state), done todos completed that
    /// long ago, idempotency keys past their window, expired locks; then
    /// gives free pages back to the file system.
    pub fn purge(&self, days: u32) -> Result<Purged> {
        let now = now_ms();
        let cut = now - i64::from(days.max(MIN_RETAIN_DAYS)) * 24 * 3600 * 1000;
        let tx = self.tx()?;
        let mut p = Purged::default();
        p.messages += self.db(tx.exec(
            "DELETE FROM messages WHERE created_at < ?1 AND to_session <> 'ALL_SESSIONS' AND read_at IS NOT NULL",
            [cut],
        ))?;
        p.messages += self.db(tx.exec(
            "DELETE FROM messages WHERE created_at < ?1 AND to_session = 'ALL_SESSIONS'",
            [cut],
        ))?;
        self.db(tx.exec(
            "DELETE FROM message_reads WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id)",
            [],
        ))?;
        p.todos = self.db(tx.exec(
            "DELETE FROM todos WHERE status = 'done' AND completed_at < ?1",
            [cut],
        ))?;
        p.keys = self.db(tx.exec(
            "DELETE FROM idempotency WHERE created_at <= ?1",
            [now - IDEMPOTENCY_WINDOW_MS],
        ))?;
        p.locks = self.db(tx.exec("DELETE FROM locks WHERE expires_at <= ?1", [now]))?;
        self.db(tx.commit())?;
        // Each step of this pragma frees a page: run it to the end.
        self.retry_busy(|| {
            let mut st = self.conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        })?;
        Ok(p)
    }
}

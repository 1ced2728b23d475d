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

/// How long an edit stays known (`touches`).
pub(crate) const TOUCH_KEPT_MS: i64 = 24 * 3600 * 1000;

/// Rows deleted per transaction: each batch holds the write lock for a few
/// milliseconds, so writes never wait long behind retention.
const BATCH: i64 = 250;
/// The pause after a batch: as long as the batch took, within these.
const BATCH_PAUSE_MIN: std::time::Duration = std::time::Duration::from_millis(20);
const BATCH_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(200);
/// Free pages given back per step of the file's shrinking.
const VACUUM_STEP: i64 = 500;

impl LocalStore {
    /// Deletes what is past keeping: read direct messages and broadcasts
    /// older than `days` (with their read state), done todos completed that
    /// long ago, idempotency keys past their window, expired locks; then
    /// gives free pages back to the file system and truncates the WAL.
    /// Unread direct messages are never deleted. Everything goes in short
    /// batches (a read finds the next ids without the write lock; a write
    /// transaction deletes just those), so the writes of a running server
    /// wait at most one batch behind it.
    pub fn purge(&self, days: u32) -> Result<Purged> {
        let now = now_ms();
        let cut = now - i64::from(days.max(MIN_RETAIN_DAYS)) * 24 * 3600 * 1000;
        let old_message =
            "created_at < ?2 AND (to_session = 'ALL_SESSIONS' OR read_at IS NOT NULL)";
        let p = Purged {
            messages: self.in_batches(
                &format!("SELECT id FROM messages WHERE id > ?1 AND {old_message} ORDER BY id LIMIT ?3"),
                // Its read records go with it (ON DELETE CASCADE).
                &format!("DELETE FROM messages WHERE id = ?1 AND {old_message}"),
                cut,
            )?,
            todos: self.in_batches(
                "SELECT id FROM todos WHERE status = 'done' AND id > ?1 AND completed_at < ?2 ORDER BY id LIMIT ?3",
                "DELETE FROM todos WHERE id = ?1 AND status = 'done' AND completed_at < ?2",
                cut,
            )?,
            keys: self.in_batches(
                "SELECT rowid FROM idempotency WHERE rowid > ?1 AND created_at <= ?2 ORDER BY rowid LIMIT ?3",
                "DELETE FROM idempotency WHERE rowid = ?1 AND created_at <= ?2",
                now - IDEMPOTENCY_WINDOW_MS,
            )?,
            locks: self.in_batches(
                "SELECT id FROM locks WHERE id > ?1 AND expires_at <= ?2 ORDER BY id LIMIT ?3",
                "DELETE FROM locks WHERE id = ?1 AND expires_at <= ?2",
                now,
            )?,
        };
        // Edits the guard names are only news for minutes: kept a day.
        self.retry_busy(|| {
            self.conn
                .execute("DELETE FROM touches WHERE at < ?1", [now - TOUCH_KEPT_MS])
        })?;
        // Give the freed pages back a step at a time (each step its own
        // short write), then empty the WAL the deletes filled.
        loop {
            let free: i64 = self.db(self
                .conn
                .query_row("PRAGMA freelist_count", [], |r| r.get(0)))?;
            if free == 0 {
                break;
            }
            self.retry_busy(|| {
                let mut st = self
                    .conn
                    .prepare(&format!("PRAGMA incremental_vacuum({VACUUM_STEP})"))?;
                let mut rows = st.query([])?;
                while rows.next()?.is_some() {}
                Ok(())
            })?;
            let after: i64 = self.db(self
                .conn
                .query_row("PRAGMA freelist_count", [], |r| r.get(0)))?;
            if after >= free {
                break; // nothing more it can give back now
            }
        }
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(p)
    }

    /// Deletes, a batch per transaction, the rows `select` finds (ids above
    /// `?1` matching `?2 = arg`, at most `?3`), running `delete` for each
    /// (`?1` the id, `?2` = arg: it re-checks its condition, so a row that
    /// changed since it was found is kept). Answers how many it deleted.
    fn in_batches(&self, select: &str, delete: &str, arg: i64) -> Result<usize> {
        let mut last = 0i64;
        let mut total = 0;
        loop {
            let ids: Vec<i64> = self.collect(select, &[&last, &arg, &BATCH], |r| r.get(0))?;
            let Some(&max) = ids.last() else {
                return Ok(total);
            };
            last = max;
            let started = Instant::now();
            let tx = self.tx()?;
            for id in &ids {
                total += self.db(tx.exec(delete, params![id, arg]))?;
            }
            self.db(tx.commit())?;
            if (ids.len() as i64) < BATCH {
                return Ok(total);
            }
            // The store's writers get a turn before the next batch: a
            // writer that has waited a while polls the lock only every
            // 50-100 ms (SQLite's busy handler), and batch after batch
            // would keep it out past that.
            std::thread::sleep(started.elapsed().clamp(BATCH_PAUSE_MIN, BATCH_PAUSE_MAX));
        }
    }
}

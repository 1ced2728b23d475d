//! Idempotency: a key seen in the last 7 days answers as it did the first
//! time and applies nothing again.

use super::*;

impl LocalStore {
    /// Replays the first answer given to `key`, if it was seen in the last
    /// 24 hours.
    pub(super) fn replay(
        &self,
        tx: &Connection,
        w: &Write,
        key: &str,
        now: i64,
    ) -> Result<Option<Written>> {
        let row: Option<(u16, String, Option<String>, Option<i64>)> = self.db(tx
            .row(
                "SELECT status, body, op, ref FROM idempotency WHERE key = ?1 AND created_at > ?2",
                params![key, now - IDEMPOTENCY_WINDOW_MS],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional())?;
        let Some((status, body, op, reference)) = row else {
            return Ok(None);
        };
        let reused = |first: &str| key_reused(key, first, w);
        if let Some(first) = op.as_deref()
            && first != w.op_name()
        {
            return Err(reused(first));
        }
        // Messages and todos are kept as a reference: the answer is the
        // object as it is now, seen by whoever wrote it.
        if let Some(id) = reference {
            let written = match w {
                Write::SendMessage(m) => Written::Message(self.message(tx, id, &m.from_session)?),
                Write::MarkRead { session, .. } => Written::Message(self.message(tx, id, session)?),
                Write::AddTodo(_) | Write::CompleteTodo { .. } => Written::Todo(self.todo(tx, id)?),
                _ => return Err(reused("unknown")),
            };
            return Ok(Some(written));
        }
        // A key stored before the kind was recorded: an answer of another
        // shape means another kind of write.
        let written = stored_answer(w, status, &body).ok_or_else(|| reused("unknown"))?;
        Ok(Some(written))
    }
}

/// A key first used for another kind of write: a 422 that says so.
pub(crate) fn key_reused(key: &str, first: &str, w: &Write) -> Error {
    Error::invalid(format!(
        "Idempotency-Key {} was first used for another kind of write ({first}), not {}; send this write with a new key",
        crate::text::cell(key, 80),
        w.op_name()
    ))
}

/// The answer a key remembers whole (`body`, JSON) as the object `w`
/// makes; None when it is of another shape (another kind of write).
pub(crate) fn stored_answer(w: &Write, status: u16, body: &str) -> Option<Written> {
    Some(match w {
        Write::SendMessage(_) | Write::MarkRead { .. } => {
            Written::Message(serde_json::from_str(body).ok()?)
        }
        Write::AddTodo(_) | Write::CompleteTodo { .. } => {
            Written::Todo(serde_json::from_str(body).ok()?)
        }
        Write::ClaimLock(_) | Write::ReleaseLock { .. } => Written::Lock {
            lock: serde_json::from_str(body).ok()?,
            created: status == 201,
        },
        Write::SetComponent { .. } => Written::Component(serde_json::from_str(body).ok()?),
        Write::SetWorkflow { .. } => Written::Workflow(serde_json::from_str(body).ok()?),
        Write::TouchSession { .. } => Written::Session(serde_json::from_str(body).ok()?),
        Write::TouchFiles { .. } | Write::MarkShown { .. } => {
            Written::Recorded(crate::wire::recorded(body.as_bytes()).ok()?)
        }
    })
}

//! `coord sync`: deliver, list or drop the writes queued while the coord API
//! could not be reached.

use serde_json::{Value, json};

use super::Ctx;
use crate::delivery::Queue;
use crate::error::{Error, Result};
use crate::out::note;
use crate::render::{self, Table};

pub fn run(ctx: &Ctx, list: bool, drop: Option<String>, retry_rejected: bool) -> Result<()> {
    let queue = Queue::new(ctx.identity.queue_path());
    if list {
        return show(ctx, &queue);
    }
    if retry_rejected {
        let n = queue.retry_rejected()?;
        note(&format!(
            "{n} write(s) set aside in {} are back in the queue, with their keys",
            queue.rejected_path().display()
        ));
        if n == 0 {
            ctx.emit(
                &json!({ "delivered": 0, "waiting": queue.len()?, "rejected": 0 }),
                || "nothing was set aside\n".into(),
            );
            return Ok(());
        }
    }
    if let Some(key) = drop {
        let e = queue.drop_entry(&key)?;
        ctx.emit(&json!({ "dropped": e }), || {
            format!(
                "dropped {} (key {}, queued {}); it will not be sent\n",
                crate::text::cell(&e.write.describe(), 120),
                e.key,
                render::when(&e.queued_at, &crate::clock::now())
            )
        });
        return Ok(());
    }
    let backend = ctx.backend()?;
    if !backend.is_remote() {
        let waiting = queue.len()?;
        if waiting > 0 {
            return Err(Error::Failed(format!(
                "{waiting} queued writes wait in {}, but this identity has no coord_api to send them to",
                queue.path().display()
            )));
        }
        ctx.emit(
            &json!({ "delivered": 0, "waiting": 0, "rejected": 0 }),
            || {
                "nothing to sync: this identity uses the embedded store, which needs no queue\n"
                    .into()
            },
        );
        return Ok(());
    }
    let api = ctx.identity.api.clone();
    let r = queue.drain(backend, api.as_deref(), None, true)?;
    ctx.emit(
        &json!({
            "delivered": r.delivered,
            "already_applied": r.already,
            "waiting": r.waiting,
            "rejected": r.rejected,
            "for_another_api": r.elsewhere,
        }),
        || {
            let mut s = format!(
                "delivered {}, still waiting {}, rejected {}",
                r.delivered, r.waiting, r.rejected
            );
            if r.already > 0 {
                s.push_str(&format!(
                    "; {} the server had already applied (their first answer was lost)",
                    r.already
                ));
            }
            s.push('\n');
            s
        },
    );
    if r.elsewhere > 0 {
        note(&format!(
            "note: {} queued write(s) were written for another coord API and stay queued; `coord sync --list` shows where each goes",
            r.elsewhere
        ));
    }
    if r.rejected > 0 {
        note(&format!(
            "warning: {} write(s) were refused by the server; they and the reasons are in {}",
            r.rejected,
            queue.rejected_path().display()
        ));
    }
    match (r.waiting - r.elsewhere, r.stopped) {
        (0, _) => Ok(()),
        (n, Some(why)) => Err(Error::Failed(format!(
            "{n} write(s) still waiting: {why}; run coord sync again later"
        ))),
        (n, None) => Err(Error::Failed(format!("{n} write(s) still waiting"))),
    }
}

fn show(ctx: &Ctx, queue: &Queue) -> Result<()> {
    let entries = queue.list()?;
    let json: Vec<Value> = entries
        .iter()
        .map(|e| match e {
            Ok(e) => serde_json::to_value(e).unwrap_or(Value::Null),
            Err((line, why)) => json!({ "unreadable": line, "error": why }),
        })
        .collect();
    ctx.emit(&json, || {
        if entries.is_empty() {
            return format!("no queued writes ({})\n", queue.path().display());
        }
        let now = crate::clock::now();
        let mut t = Table::new(vec![
            "KEY",
            "WRITE",
            "WRITER",
            "TARGET",
            "QUEUED",
            "TRIES",
            "LAST ERROR",
        ]);
        for e in &entries {
            match e {
                Ok(e) => t.row(vec![
                    e.key.clone(),
                    crate::text::cell(&e.write.describe(), 60),
                    crate::text::cell(&e.identity.session, 40),
                    crate::text::cell(
                        &e.identity
                            .api
                            .as_deref()
                            .map(crate::identity::redact_url)
                            .unwrap_or_else(|| "(any)".into()),
                        60,
                    ),
                    render::when(&e.queued_at, &now),
                    e.attempts.to_string(),
                    crate::text::cell(e.last_error.as_deref().unwrap_or(""), 80),
                ]),
                Err((_, why)) => t.row(vec![
                    "-".into(),
                    "(unreadable line)".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    crate::text::cell(why, 80),
                ]),
            }
        }
        format!(
            "{}{} waiting in {}\n",
            t.render(&ctx.style),
            entries.len(),
            queue.path().display()
        )
    });
    Ok(())
}

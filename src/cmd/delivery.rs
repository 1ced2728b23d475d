//! v1.2 delivery from the sender's side: `coord msg status ID` (shown,
//! read and replied per recipient), the compact state `msg sent` shows,
//! and what a recipient's session state means to `msg send`.

use super::Ctx;
use crate::error::{Error, Result};
use crate::model::*;
use crate::render;

/// `coord msg status ID`.
pub fn status(ctx: &Ctx, id: i64) -> Result<()> {
    let backend = ctx.backend()?;
    let Some(d) = backend.delivery(id)? else {
        return Err(Error::Failed(format!(
            "the coord API at {} cannot tell what was delivered (a server before v1.2); `coord msg sent` shows who has read it",
            backend.location()
        )));
    };
    ctx.emit(&d, || {
        let now = crate::clock::now();
        let mut s = format!("message {id}: {}\n", summary(&d));
        if d.recipients.is_empty() {
            s.push_str("no session was live when it was sent: each reads it when it starts\n");
            return s;
        }
        let mut t = render::Table::new(vec!["SESSION", "SHOWN", "READ", "REPLIED"]);
        let at = |t: &Option<Time>| {
            t.as_ref()
                .map_or_else(|| ctx.style.dim("-"), |t| render::relative(t, &now))
        };
        for r in &d.recipients {
            t.row(vec![
                render::address(&r.session),
                at(&r.shown_at),
                at(&r.read_at),
                r.reply_id
                    .map_or_else(|| ctx.style.dim("-"), |id| format!("#{id}")),
            ]);
        }
        s.push_str(&t.render(&ctx.style));
        s
    });
    Ok(())
}

/// `shown 2/3 · read 1/3` (and `· replied 1/3` once anyone has).
pub fn summary(d: &Delivery) -> String {
    let n = d.recipients.len();
    let count = |f: fn(&Recipient) -> bool| d.recipients.iter().filter(|r| f(r)).count();
    let shown = count(|r| r.shown_at.is_some() || r.read_at.is_some());
    let read = count(|r| r.read_at.is_some());
    let replied = count(|r| r.reply_id.is_some());
    let mut s = format!("shown {shown}/{n} · read {read}/{n}");
    if replied > 0 {
        s.push_str(&format!(" · replied {replied}/{n}"));
    }
    s
}

/// The state of session `s` as this machine best knows it: its own
/// windows from the registry (open is live, ended is closed even before
/// the store hears), the others as the store says (or, from a server
/// before v1.2, by when they were last seen).
pub fn state_of(ctx: &Ctx, s: &Session) -> &'static str {
    let here = format!("{}/", ctx.identity.machine);
    if let Some(name) = s.session_id.strip_prefix(&here)
        && let Some((open, closed)) =
            crate::window::registry(&ctx.identity.state_dir).window_names()
    {
        let has = |l: &[String]| l.iter().any(|n| n.eq_ignore_ascii_case(name));
        if has(&open) {
            return "live";
        }
        if has(&closed) {
            return CLOSED;
        }
    }
    s.state_now(&crate::clock::now())
}

/// What `msg send` says of a recipient that is not live, or refuses with
/// `--live`: None when it is live (or a broadcast).
pub fn not_live(ctx: &Ctx, to: &str, seen: Option<&Session>, live: bool) -> Result<Option<String>> {
    if to == ALL_SESSIONS {
        return Ok(None);
    }
    let now = crate::clock::now();
    let line = match seen {
        Some(s) => match state_of(ctx, s) {
            "live" => return Ok(None),
            CLOSED => {
                let when = s.closed_at.as_ref().unwrap_or(&s.last_seen);
                format!(
                    "{} closed {}; it will see this when a window of that name starts",
                    crate::text::cell(to, 80),
                    render::relative(when, &now)
                )
            }
            _ => format!(
                "{} was last seen {} (idle: its window may be gone); it will see this at its next session start or prompt",
                crate::text::cell(to, 80),
                render::relative(&s.last_seen, &now)
            ),
        },
        None if live => {
            return Err(Error::Usage(format!(
                "whether {} is live cannot be checked now (the fleet's sessions could not be listed); not sent: --live sends only to a session known to have a window open",
                crate::text::cell(to, 80)
            )));
        }
        None => return Ok(None),
    };
    if live {
        return Err(Error::Usage(format!(
            "{line}. Not sent: --live sends only to a session with a window open"
        )));
    }
    Ok(Some(line))
}

//! `coord sessions`: who the fleet has seen, and who is there now.

use super::Ctx;
use crate::error::{Error, Result};
use crate::render;

/// Seen this recently: shown without `--all`.
const RECENT_SECS: u64 = 24 * 3600;
/// Seen this recently: active (a live window refreshes its presence at its
/// session starts, at most once a minute, and its idle waiter every 5
/// minutes).
pub const ACTIVE_SECS: i64 = 15 * 60;

pub fn run(ctx: &Ctx, all: bool) -> Result<()> {
    let backend = ctx.backend()?;
    let Some(sessions) = backend.sessions((!all).then_some(RECENT_SECS))? else {
        return Err(Error::Failed(format!(
            "the coord API at {} does not list sessions (a v1 server without /sessions)",
            backend.location()
        )));
    };
    let now = crate::clock::now();
    let me = ctx.session_id();
    // This machine's own windows are known exactly: a session of this
    // machine is active while a window of that name is open (a window that
    // exited is not, whenever it was last seen). Other machines' by time.
    let here = format!("{}/", ctx.identity.machine);
    let windows = crate::window::registry(&ctx.identity.state_dir).window_names();
    let rows: Vec<(serde_json::Value, Vec<String>)> = sessions
        .iter()
        .map(|s| {
            let recent = (now - s.last_seen).num_seconds() <= ACTIVE_SECS;
            let active = match (&windows, s.session_id.strip_prefix(&here)) {
                (Some((open, closed)), Some(name)) => {
                    let has = |l: &[String]| l.iter().any(|n| n.eq_ignore_ascii_case(name));
                    has(open) || (recent && !has(closed))
                }
                _ => recent,
            };
            let unread = backend.unread_count(&s.session_id).ok().flatten();
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["active"] = active.into();
            if let Some(n) = unread {
                v["unread"] = n.into();
            }
            let address = if s.session_id.eq_ignore_ascii_case(&me) {
                format!("{} (you)", s.session_id)
            } else {
                render::address(&s.session_id)
            };
            let cells = vec![
                crate::text::cell(&address, 140),
                crate::text::cell(&s.user, 24),
                crate::text::cell(s.project.as_deref().unwrap_or("-"), 30),
                render::when(&s.last_seen, &now),
                unread.map_or("-".into(), |n| n.to_string()),
                if active { "yes".into() } else { "no".into() },
            ];
            (v, cells)
        })
        .collect();
    let json: Vec<serde_json::Value> = rows.iter().map(|(v, _)| v.clone()).collect();
    ctx.emit(&json, || {
        if rows.is_empty() {
            let when = if all { "" } else { " in the last day" };
            return format!("no sessions seen{when} (a session shows up at its first hook run)\n");
        }
        let mut t = render::Table::new(vec![
            "ADDRESS",
            "USER",
            "PROJECT",
            "LAST SEEN",
            "UNREAD",
            "ACTIVE",
        ]);
        for (_, cells) in &rows {
            t.row(cells.clone());
        }
        t.render(&ctx.style)
    });
    Ok(())
}

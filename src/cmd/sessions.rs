//! `coord sessions`: who the fleet has seen, and who is there now.

use super::Ctx;
use crate::error::{Error, Result};
use crate::render;

/// Seen this recently: shown without `--all`.
const RECENT_SECS: u64 = 24 * 3600;

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
    let rows: Vec<(serde_json::Value, Vec<String>)> = sessions
        .iter()
        .map(|s| {
            // This machine's own windows are known exactly (open is live,
            // ended is closed); the others as the store says (v1.2), or
            // by when they were last seen.
            let state = super::delivery::state_of(ctx, s);
            let active = state == "live";
            let unread = backend.unread_count(&s.session_id).ok().flatten();
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["active"] = active.into();
            v["state"] = state.into();
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
                state.to_string(),
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
            "STATE",
        ]);
        for (_, cells) in &rows {
            t.row(cells.clone());
        }
        t.render(&ctx.style)
    });
    Ok(())
}

//! Everything a person reads: aligned tables, times absolute and relative,
//! colour (only on a terminal, never with NO_COLOR). Untrusted text goes
//! through `text` on its way here.

use std::fmt::Write as _;

use chrono::Duration;
use owo_colors::OwoColorize;

use crate::model::*;
use crate::text::{cell, clip, escape_controls, quoted};

/// Whether to colour, decided once from the flag, NO_COLOR and the terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn detect(no_color_flag: bool, is_terminal: bool) -> Style {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: is_terminal && !no_color_flag && !no_color_env,
        }
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint(s, |s| s.bold().to_string())
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint(s, |s| s.dimmed().to_string())
    }
    pub fn green(&self, s: &str) -> String {
        self.paint(s, |s| s.green().to_string())
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint(s, |s| s.yellow().to_string())
    }
    pub fn red(&self, s: &str) -> String {
        self.paint(s, |s| s.red().to_string())
    }
    pub fn cyan(&self, s: &str) -> String {
        self.paint(s, |s| s.cyan().to_string())
    }
    fn paint(&self, s: &str, f: impl Fn(&str) -> String) -> String {
        if self.color { f(s) } else { s.to_string() }
    }
}

// --- addresses ---------------------------------------------------------------

/// A session address for a structural line: bare when it is well-formed
/// (nothing in it a shell or a reader could take for anything else),
/// quoted and flagged when it is not (a v1 server or old data may hold
/// one).
pub fn address(s: &str) -> String {
    if crate::model::is_address(s) {
        s.to_string()
    } else {
        format!("{} (not a valid address)", quoted(&clip(s, 120)))
    }
}

// --- time --------------------------------------------------------------------

/// "3h ago", "just now", "in 1h 45m".
pub fn relative(t: &Time, now: &Time) -> String {
    let d = *now - *t;
    let (d, future) = if d < Duration::zero() {
        (-d, true)
    } else {
        (d, false)
    };
    let secs = d.num_seconds();
    let text = if secs < 45 {
        return if future { "in a moment" } else { "just now" }.into();
    } else if secs < 3600 {
        format!("{}m", (secs + 30) / 60)
    } else if secs < 48 * 3600 {
        let (h, m) = (secs / 3600, (secs % 3600) / 60);
        if m == 0 || h >= 10 {
            format!("{h}h")
        } else {
            format!("{h}h {m}m")
        }
    } else {
        format!("{}d", secs / 86400)
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// "08:12 UTC, 3h ago"; the date is added when it is not today.
pub fn when(t: &Time, now: &Time) -> String {
    let abs = if t.date_naive() == now.date_naive() {
        t.format("%H:%M UTC").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    };
    format!("{abs}, {}", relative(t, now))
}

// --- tables ------------------------------------------------------------------

/// A table aligned on character counts; the header is bold on a terminal.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: Vec<&'static str>) -> Table {
        Table {
            header,
            rows: Vec::new(),
        }
    }
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    pub fn render(&self, style: &Style) -> String {
        let n = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    let pad = widths[i] + 2 - c.chars().count();
                    s.extend(std::iter::repeat_n(' ', pad));
                }
            }
            s.trim_end().to_string()
        };
        let mut out = String::new();
        let head = line(self.header.iter().map(|h| h.to_string()).collect());
        out.push_str(&style.bold(&head));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r.clone()));
            out.push('\n');
        }
        out
    }
}

pub fn messages(msgs: &[Message], now: &Time, style: &Style) -> String {
    let mut out = String::new();
    for (i, m) in msgs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let state = if m.read {
            style.dim("read")
        } else {
            style.yellow("unread")
        };
        let re = m
            .in_reply_to
            .map(|r| format!("  ·  re #{r}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}  from {} to {}  ·  {}{re}  ·  {state}",
            style.bold(&format!("#{}", m.id)),
            style.cyan(&address(&m.from_session)),
            address(&m.to_session),
            when(&m.created_at, now),
        );
        if let Some(s) = m.subject.as_deref().filter(|s| !s.is_empty()) {
            let _ = writeln!(out, "subject: {}", style.bold(&cell(s, 200)));
        }
        if let (Some(r), Some(q)) = (m.in_reply_to, m.replies_to.as_deref()) {
            let _ = writeln!(
                out,
                "{}",
                style.dim(&format!("answers #{r}: {}", cell(q, 200)))
            );
        }
        for l in escape_controls(&m.body).lines() {
            let _ = writeln!(out, "    {l}");
        }
    }
    out
}

pub fn todos(todos: &[Todo], now: &Time, style: &Style) -> String {
    let mut t = Table::new(vec!["ID", "STATUS", "FOR", "PROJECT", "CREATED", "TEXT"]);
    for d in todos {
        let status = match d.status {
            TodoStatus::Pending => "pending",
            TodoStatus::Done => "done",
        };
        let mut text = cell(&d.text, 100);
        if let Some(p) = d.parent_id {
            text = format!("{text} (under #{p})");
        }
        t.row(vec![
            d.id.to_string(),
            status.into(),
            cell(d.user.as_deref().unwrap_or("everyone"), 24),
            cell(d.project.as_deref().unwrap_or("-"), 24),
            when(&d.created_at, now),
            text,
        ]);
    }
    t.render(style)
}

pub fn locks(locks: &[Lock], now: &Time, style: &Style) -> String {
    let mut t = Table::new(vec![
        "ID", "PROJECT", "RESOURCE", "HOLDER", "EXPIRES", "NOTE",
    ]);
    for l in locks {
        t.row(vec![
            l.id.to_string(),
            cell(&l.project, 32),
            cell(&l.resource, 40),
            address(&l.session_id),
            when(&l.expires_at, now),
            cell(&lock_note(l), 80),
        ]);
    }
    t.render(style)
}

/// A lock's note, with the paths it claims.
fn lock_note(l: &Lock) -> String {
    let note = l.note.as_deref().unwrap_or("");
    match (note.is_empty(), l.paths.is_empty()) {
        (_, true) => note.to_string(),
        (true, false) => format!("paths: {}", l.paths.join(", ")),
        (false, false) => format!("{note} · paths: {}", l.paths.join(", ")),
    }
}

pub fn status(s: &Status, now: &Time, style: &Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.bold(&format!("LOCKS ({})", s.locks.len())));
    if s.locks.is_empty() {
        out.push_str("  none\n");
    } else {
        out.push_str(&locks(&s.locks, now, style));
    }
    let _ = writeln!(
        out,
        "\n{}",
        style.bold(&format!("COMPONENTS ({})", s.components.len()))
    );
    if s.components.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut t = Table::new(vec![
            "PROJECT",
            "COMPONENT",
            "STATE",
            "VERSION",
            "UPDATED",
            "BY",
            "NOTES",
        ]);
        for c in &s.components {
            t.row(vec![
                cell(&c.project, 32),
                cell(&c.component, 32),
                cell(&c.state, 24),
                cell(c.version.as_deref().unwrap_or("-"), 24),
                when(&c.updated_at, now),
                cell(&c.updated_by, 48),
                cell(c.notes.as_deref().unwrap_or(""), 60),
            ]);
        }
        out.push_str(&t.render(style));
    }
    let _ = writeln!(
        out,
        "\n{}",
        style.bold(&format!("WORKFLOWS ({})", s.workflows.len()))
    );
    if s.workflows.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut t = Table::new(vec!["NAME", "STATE", "UPDATED", "BY", "DETAIL"]);
        for w in &s.workflows {
            t.row(vec![
                cell(&w.name, 32),
                cell(&w.state, 24),
                when(&w.updated_at, now),
                cell(&w.updated_by, 48),
                cell(w.detail.as_deref().unwrap_or(""), 60),
            ]);
        }
        out.push_str(&t.render(style));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 11, 12, 0).unwrap();
        let t = |h, m| Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap();
        assert_eq!(relative(&t(8, 12), &now), "3h ago");
        assert_eq!(relative(&t(11, 12), &now), "just now");
        assert_eq!(relative(&t(12, 57), &now), "in 1h 45m");
        assert_eq!(when(&t(8, 12), &now), "08:12 UTC, 3h ago");
        let yesterday = Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap();
        assert_eq!(when(&yesterday, &now), "2026-11-23 08:00 UTC, 2d ago");
    }
}

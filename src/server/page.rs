//! The dashboard's HTML (maud: every value escaped where it is written),
//! and its little CSS and JavaScript, served from the binary: no build
//! step, nothing from a CDN.

use maud::{DOCTYPE, Markup, html};

use crate::model::*;

/// What the dashboard shows, read in one go.
pub struct View {
    pub sessions: Vec<Session>,
    pub unread: Vec<(String, Option<u64>)>,
    pub messages: Vec<Message>,
    /// v1.2: who each message was shown to (by id).
    pub shown: std::collections::HashMap<i64, Vec<String>>,
    pub filter: Option<String>,
    /// Only this thread (the id of its first message).
    pub thread: Option<i64>,
    pub todos: Vec<Todo>,
    pub status: Status,
    /// Locks that expired in the last day and are still kept: flagged.
    pub expired: Vec<Lock>,
    pub now: Time,
    /// The main part as last rendered, and for which CSRF token: every
    /// open page refreshes at the same change.
    pub rendered: std::sync::Mutex<Option<(String, String)>>,
}

impl View {
    /// The main part for a page signed in with `csrf`, rendered once.
    pub fn main_html(&self, csrf: &str) -> Markup {
        let mut r = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, html)) = r.as_ref()
            && c == csrf
        {
            return maud::PreEscaped(html.clone());
        }
        let html = main(self, csrf).into_string();
        *r = Some((csrf.to_string(), html.clone()));
        maud::PreEscaped(html)
    }
}

/// Each message's thread: the first message its `in_reply_to` chain
/// reaches among `ms` (itself when it answers nothing shown here).
pub fn roots(ms: &[Message]) -> std::collections::HashMap<i64, i64> {
    let parent: std::collections::HashMap<i64, Option<i64>> =
        ms.iter().map(|m| (m.id, m.in_reply_to)).collect();
    ms.iter()
        .map(|m| {
            let mut at = m.id;
            // Bounded: a chain never longer than what is shown.
            for _ in 0..ms.len() {
                match parent.get(&at).copied().flatten() {
                    Some(p) if parent.contains_key(&p) => at = p,
                    _ => break,
                }
            }
            (m.id, at)
        })
        .collect()
}

/// "3m ago", with the absolute time on hover.
fn when(t: &Time, now: &Time) -> Markup {
    let secs = (*now - *t).num_seconds();
    let rel = match secs {
        s if s < 0 => {
            let s = -s;
            match s {
                0..60 => format!("in {s}s"),
                60..3600 => format!("in {}m", s / 60),
                3600..86400 => format!("in {}h {}m", s / 3600, s % 3600 / 60),
                _ => format!("in {}d", s / 86400),
            }
        }
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    };
    html! { time datetime=(t.to_rfc3339()) title=(format_time(t)) { (rel) } }
}

/// The page around `body`.
fn frame(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) }
                link rel="stylesheet" href="/ui/style.css";
            }
            body { (body) }
        }
    }
}

/// The login form of a server with a token.
pub fn login(wrong: bool) -> Markup {
    frame(
        "coord: sign in",
        html! {
            main.login {
                h1 { "coord" }
                @if wrong { p.error { "That token is not this server's." } }
                form method="post" action="/ui/login" {
                    label { "Fleet token " input type="password" name="token" autocomplete="current-password" autofocus; }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// The whole dashboard.
pub fn page(v: &View, csrf: &str, who: &str) -> Markup {
    frame(
        "coord: the fleet",
        html! {
            header {
                h1 { "coord" }
                span.who { "you write as " code { (who) } }
                span #live.live-off title="updates as the fleet writes" { "●" }
            }
            div #main { (main(v, csrf)) }
            script src="/ui/app.js" {}
        },
    )
}

/// The part that is replaced when the fleet writes.
/// The most rows the sessions and locks tables show (the most recently
/// seen sessions, the locks as the store lists them); the rest are counted.
pub const MAX_ROWS: usize = 200;

pub fn main(v: &View, csrf: &str) -> Markup {
    let now = &v.now;
    let roots = roots(&v.messages);
    let unread: std::collections::HashMap<&str, Option<u64>> =
        v.unread.iter().map(|(id, n)| (id.as_str(), *n)).collect();
    let more_sessions = v.sessions.len().saturating_sub(MAX_ROWS);
    let more_locks = v.status.locks.len().saturating_sub(MAX_ROWS);
    html! {
        section #compose {
            h2 { "Send" }
            form.send method="post" action="/ui/send" {
                input type="hidden" name="csrf" value=(csrf);
                input type="text" name="to" placeholder="to: MACHINE/NAME, a machine, or ALL" required;
                textarea name="body" placeholder="message" required {}
                button type="submit" { "Send" }
            }
        }
        section #sessions {
            h2 { "Sessions" }
            table {
                thead { tr { th { "session" } th { "user" } th { "project" } th { "state" } th { "last seen" } th { "unread" } } }
                tbody {
                    @for s in v.sessions.iter().take(MAX_ROWS) {
                        @let state = s.state_now(now);
                        @let unread = unread.get(s.session_id.as_str()).copied().flatten();
                        tr {
                            td { a href={ "/?session=" (urlencode(&s.session_id)) } { code { (s.session_id) } } }
                            td { (s.user) }
                            td { (s.project.as_deref().unwrap_or("")) }
                            td { span class=(state) { (state) } }
                            td { (when(&s.last_seen, now)) }
                            td { @if let Some(n) = unread { (n) } }
                        }
                    }
                }
            }
            @if more_sessions > 0 { p.empty { "… and " (more_sessions) " more seen earlier (" code { "coord sessions --all" } ")" } }
        }
        section #messages {
            h2 {
                "Messages"
                @if let Some(f) = &v.filter { " to or from " code { (f) } " " a href="/" { "(all)" } }
                @if let Some(t) = v.thread { " · thread of #" (t) " " a href="/" { "(all)" } }
            }
            @if v.messages.is_empty() { p.empty { "No messages." } }
            ol.timeline {
                @for m in &v.messages {
                    li.message id={ "m" (m.id) } {
                        div.meta {
                            span.id { "#" (m.id) }
                            " from " code.from { (m.from_session) }
                            " to " code.to { (m.to_session) }
                            " · " (when(&m.created_at, now))
                            @if let Some(r) = m.in_reply_to { " · re " a href={ "#m" (r) } { "#" (r) } }
                            @if let Some(root) = roots.get(&m.id) { " · " a.thread href={ "/?thread=" (root) } { "thread" } }
                        }
                        @if let Some(subj) = &m.subject { div.subject { (subj) } }
                        pre.body { (m.body) }
                        div.read {
                            @match &m.read_by {
                                Some(r) if !r.is_empty() => { "read by " (r.join(", ")) }
                                _ => { "not read yet" }
                            }
                            @if let Some(sh) = v.shown.get(&m.id).filter(|sh| !sh.is_empty()) {
                                " · shown to " (sh.join(", "))
                            }
                        }
                        details.reply {
                            summary { "reply" }
                            form method="post" action="/ui/send" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="to" value=(m.from_session);
                                input type="hidden" name="in_reply_to" value=(m.id);
                                textarea name="body" required {}
                                button type="submit" { "Reply to " (m.from_session) }
                            }
                        }
                    }
                }
            }
        }
        section #locks {
            h2 { "Locks" }
            @if v.status.locks.is_empty() { p.empty { "Nothing is held." } }
            table {
                tbody {
                    @for l in v.status.locks.iter().take(MAX_ROWS) {
                        tr {
                            td { code { (l.project) "/" (l.resource) } }
                            td { code { (l.session_id) } }
                            td {
                                (l.note.as_deref().unwrap_or(""))
                                @if !l.paths.is_empty() { " · paths: " code { (l.paths.join(", ")) } }
                            }
                            td { "expires " (when(&l.expires_at, now)) }
                            td {
                                form method="post" action="/ui/lock/release" onsubmit="return confirm('Release this lock? Its holder is told.')" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="id" value=(l.id);
                                    button type="submit" { "Release" }
                                }
                            }
                        }
                    }
                }
            }
            @if more_locks > 0 { p.empty { "… and " (more_locks) " more locks (" code { "coord lock list" } ")" } }
            @if !v.expired.is_empty() {
                table.expired {
                    tbody {
                        @for l in &v.expired {
                            tr {
                                td { code { (l.project) "/" (l.resource) } }
                                td { code { (l.session_id) } }
                                td { (l.note.as_deref().unwrap_or("")) }
                                td { span.expired { "expired " } (when(&l.expires_at, now)) }
                            }
                        }
                    }
                }
            }
        }
        section #todos {
            h2 { "To do" }
            form.add method="post" action="/ui/todo" {
                input type="hidden" name="csrf" value=(csrf);
                input type="text" name="text" placeholder="a new todo" required;
                input type="text" name="project" placeholder="project (optional)";
                button type="submit" { "Add" }
            }
            ul.todos {
                @for t in &v.todos {
                    li class=(if t.status == TodoStatus::Done { "done" } else { "pending" }) {
                        span.id { "#" (t.id) " " }
                        span.text { (t.text) }
                        @if let Some(u) = &t.user { " · " (u) }
                        @if let Some(p) = &t.project { " · " code { (p) } }
                        @if t.status == TodoStatus::Pending {
                            form.inline method="post" action="/ui/todo/done" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="id" value=(t.id);
                                button type="submit" { "Done" }
                            }
                        } @else {
                            " · done " @if let Some(at) = &t.completed_at { (when(at, now)) }
                        }
                    }
                }
            }
        }
        section #state {
            h2 { "Components and workflows" }
            table {
                tbody {
                    @for c in &v.status.components {
                        tr { td { code { (c.project) "/" (c.component) } } td { (c.state) } td { (c.version.as_deref().unwrap_or("")) } td { (c.updated_by) } td { (when(&c.updated_at, now)) } }
                    }
                    @for w in &v.status.workflows {
                        tr { td { "workflow " code { (w.name) } } td { (w.state) } td { (w.detail.as_deref().unwrap_or("")) } td { (w.updated_by) } td { (when(&w.updated_at, now)) } }
                    }
                }
            }
        }
    }
}

/// A query value, percent-encoded.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub const CSS: &str = r#"
:root { color-scheme: light dark; --bg: #fff; --fg: #1d1f21; --muted: #6a737d; --line: #e1e4e8; --accent: #0969da; }
@media (prefers-color-scheme: dark) { :root { --bg: #0d1117; --fg: #e6edf3; --muted: #8b949e; --line: #30363d; --accent: #58a6ff; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 70rem; padding: 0.75rem; background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, sans-serif; }
header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; }
h1 { margin: 0.2rem 0; } h2 { font-size: 1.05rem; margin: 1.2rem 0 0.4rem; border-bottom: 1px solid var(--line); }
code { font-size: 0.9em; } a { color: var(--accent); }
table { border-collapse: collapse; width: 100%; display: block; overflow-x: auto; }
td, th { padding: 0.2rem 0.5rem; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
.live { color: #2da44e; } .idle { color: #bf8700; } .closed { color: var(--muted); }
.expired { color: #cf222e; } table.expired td { color: var(--muted); }
#live.live-on { color: #2da44e; } #live.live-off { color: var(--muted); }
ol.timeline { list-style: none; padding: 0; } li.message { border-bottom: 1px solid var(--line); padding: 0.4rem 0; }
.meta, .read, .who, .empty { color: var(--muted); font-size: 0.88em; } .subject { font-weight: 600; }
pre.body { white-space: pre-wrap; word-break: break-word; margin: 0.2rem 0; font: inherit; }
form.send, form.add { display: flex; flex-wrap: wrap; gap: 0.4rem; } form.inline { display: inline; }
input[type=text], input[type=password], textarea { flex: 1 1 14rem; padding: 0.35rem; background: var(--bg); color: var(--fg); border: 1px solid var(--line); border-radius: 4px; font: inherit; }
textarea { min-height: 2.4rem; width: 100%; } button { padding: 0.3rem 0.8rem; }
li.done .text { text-decoration: line-through; color: var(--muted); }
main.login { max-width: 24rem; margin: 4rem auto; } .error { color: #cf222e; }
"#;

/// Live updates: the server says which change happened over server-sent
/// events; the page fetches its main part as of that change and swaps it in (while a form is being
/// filled in, or a field has the focus, it waits).
pub const JS: &str = r#"
(function () {
  var live = document.getElementById('live');
  var busy = false, again = false, seen = 0;
  // A form being filled in is not replaced under the person's hands.
  function typing() {
    var fields = document.querySelectorAll('#main textarea, #main input:not([type=hidden])');
    for (var i = 0; i < fields.length; i++) { if (fields[i].value !== '') return true; }
    var a = document.activeElement;
    return a && (a.tagName === 'TEXTAREA' || a.tagName === 'INPUT');
  }
  function refresh(e) {
    // The change the server told of: the part asked for includes it.
    if (e && e.data && /^[0-9]+$/.test(e.data)) { seen = Math.max(seen, Number(e.data)); }
    if (busy) { again = true; return; }
    if (typing()) { setTimeout(refresh, 1000); return; }
    busy = true;
    var q = location.search ? location.search + '&' : '?';
    fetch('/ui/main' + q + 'after=' + seen, { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        // Typing began while it was fetched: swap in later.
        if (typing()) { setTimeout(refresh, 1000); return; }
        document.getElementById('main').innerHTML = html;
      })
      .finally(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var es = new EventSource('/ui/events');
  es.onopen = function () { live.className = 'live-on'; };
  es.onerror = function () { live.className = 'live-off'; };
  es.onmessage = refresh;
})();
"#;

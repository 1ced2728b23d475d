//! The dashboard at `/` of `coord serve` (and `coord ui`): the fleet's
//! sessions, messages, locks, todos and states, updated live, with forms to
//! send, reply, add and finish todos and release locks.
//!
//! Safe to open: with `--token` nothing is shown until the token is given
//! on the login form, which sets an HttpOnly, SameSite=Strict cookie; every
//! form carries a CSRF token, and a post from another origin (or without
//! the token) is refused with 403 before anything is applied. The API's
//! own browser guard is unchanged.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Form, Query};
use serde::Deserialize;

use super::page;
use super::*;

/// How long a dashboard sign-in lasts.
const UI_SESSION: Duration = Duration::from_secs(12 * 3600);
/// The cookie that carries a sign-in.
const COOKIE: &str = "coord_ui";
/// How many messages the timeline shows.
const TIMELINE: u32 = 100;

/// The dashboard's own state: sign-ins and the CSRF token of a server
/// without a token (one per process: a page of another origin cannot read
/// ours to learn it).
pub(super) struct Ui {
    signed_in: Mutex<HashMap<String, (String, Instant)>>,
    open_csrf: String,
    /// Who a person writes as: `WEB/<user>`.
    pub(super) author: String,
    /// Its user part, for `created_by_user`.
    user: String,
    /// Bumped on every write this process applies or hears of.
    pub(super) changes: tokio::sync::watch::Sender<u64>,
    /// The last view read, for which filter and change: every open page
    /// refreshes at the same change, and one read serves them all.
    cache: tokio::sync::Mutex<Option<Cached>>,
}

/// A view read for a filter (session, thread), after change `change`.
struct Cached {
    key: (Option<String>, Option<i64>),
    change: u64,
    at: Instant,
    view: Arc<page::View>,
}

/// The least time between two events to one page: a write shows within
/// it (the first at once), and a busy fleet costs each open page one
/// refresh a second.
const EVENT_PACE: Duration = Duration::from_secs(1);

/// The most a cached view is served (times and liveness move on).
const VIEW_FRESH: Duration = Duration::from_secs(2);

impl Ui {
    pub(super) fn new(user: &str) -> Ui {
        let name: String = user
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(64)
            .collect();
        let user = if name.is_empty() {
            "person".to_string()
        } else {
            name
        };
        Ui {
            signed_in: Mutex::new(HashMap::new()),
            open_csrf: random(),
            author: format!("WEB/{user}"),
            user,
            changes: tokio::sync::watch::Sender::new(0),
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Something changed: pages that listen fetch their main part again.
    pub(super) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A message from the person at the page.
    fn message(
        &self,
        to: String,
        subject: Option<String>,
        body: String,
        in_reply_to: Option<i64>,
    ) -> Write {
        Write::SendMessage(NewMessage {
            to_session: to,
            subject,
            body,
            from_session: self.author.clone(),
            created_by_user: self.user.clone(),
            created_by_machine: "WEB".into(),
            in_reply_to,
        })
    }
}

fn random() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The sign-in this request carries (its CSRF token), or None.
fn signed_in(st: &AppState, h: &HeaderMap) -> Option<String> {
    if st.token.is_none() {
        return Some(st.ui.open_csrf.clone());
    }
    let id = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())?;
    let mut map = st.ui.signed_in.lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, (_, until)| *until > Instant::now());
    map.get(&id).map(|(csrf, _)| csrf.clone())
}

fn html(status: u16, m: maud::Markup) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (
        code,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        m.into_string(),
    )
        .into_response()
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

fn forbidden(why: &str) -> Response {
    (StatusCode::FORBIDDEN, format!("{why}\n")).into_response()
}

#[derive(Deserialize)]
pub(super) struct Filter {
    session: Option<String>,
    /// A thread: the id of its first message.
    thread: Option<i64>,
    /// The change the page was told of (its events): the part it gets
    /// includes it.
    after: Option<u64>,
}

/// Everything the dashboard shows: read once per change and filter, and
/// shared by every page that asks meanwhile (one read at a time; the
/// others wait for it and take it).
/// A page asking after change `c` gets a view read after it: never one
/// that misses a write it was told of.
async fn view(st: &AppState, f: Filter) -> Result<Arc<page::View>> {
    let now = *st.ui.changes.borrow();
    let asked = f.after.map_or(now, |a| a.min(now));
    let key = (f.session.clone(), f.thread);
    let mut cache = st.ui.cache.lock().await;
    if let Some(c) = cache.as_ref()
        && c.key == key
        && c.change >= asked
        && c.at.elapsed() < VIEW_FRESH
    {
        return Ok(c.view.clone());
    }
    let change = *st.ui.changes.borrow();
    let view = Arc::new(read_view(st, f).await?);
    *cache = Some(Cached {
        key,
        change,
        at: Instant::now(),
        view: view.clone(),
    });
    Ok(view)
}

/// Reads everything the dashboard shows.
async fn read_view(st: &AppState, f: Filter) -> Result<page::View> {
    let (filter, thread) = (f.session, f.thread);
    with_reader(st, move |s| {
        let sessions = s.sessions(None)?.unwrap_or_default();
        let shown_ids: Vec<String> = sessions
            .iter()
            .take(200)
            .map(|x| x.session_id.clone())
            .collect();
        let unread = shown_ids
            .iter()
            .cloned()
            .zip(s.unread_counts(&shown_ids)?)
            .collect();
        let mut messages = s.timeline(filter.as_deref(), TIMELINE)?.unwrap_or_default();
        if let Some(root) = thread {
            let roots = page::roots(&messages);
            messages.retain(|m| roots.get(&m.id) == Some(&root));
        }
        let mut todos = s.todos(&TodoQuery {
            status: StatusFilter::Pending,
            limit: Some(200),
            ..Default::default()
        })?;
        todos.extend(
            s.todos(&TodoQuery {
                status: StatusFilter::Done,
                limit: Some(MAX_LIST_LIMIT),
                ..Default::default()
            })?
            .into_iter()
            .rev()
            .take(20),
        );
        let status = s.status()?;
        let expired = s.expired_locks(24 * 3600, 50)?;
        // Who each was put in front of (v1.2): one small read each.
        let shown = messages
            .iter()
            .filter_map(|m| {
                let d = s.delivery(m.id).ok().flatten()?;
                let to = d
                    .recipients
                    .into_iter()
                    .filter(|r| r.shown_at.is_some())
                    .map(|r| r.session)
                    .collect();
                Some((m.id, to))
            })
            .collect();
        Ok(page::View {
            sessions,
            unread,
            messages,
            shown,
            filter,
            thread,
            todos,
            status,
            expired,
            now: chrono::Utc::now(),
            rendered: std::sync::Mutex::new(None),
        })
    })
    .await
}

pub(super) async fn index(
    State(st): State<AppState>,
    h: HeaderMap,
    Query(f): Query<Filter>,
) -> Response {
    let Some(csrf) = signed_in(&st, &h) else {
        return html(200, page::login(false));
    };
    match view(&st, f).await {
        Ok(v) => html(200, page::page(&v, &csrf, &st.ui.author)),
        Err(e) => error_response(&e),
    }
}

/// The main part alone, for the page's live refresh.
pub(super) async fn main_part(
    State(st): State<AppState>,
    h: HeaderMap,
    Query(f): Query<Filter>,
) -> Response {
    let Some(csrf) = signed_in(&st, &h) else {
        return forbidden("sign in first");
    };
    match view(&st, f).await {
        Ok(v) => html(200, v.main_html(&csrf)),
        Err(e) => error_response(&e),
    }
}

/// Server-sent events: `data: N` (the change counter) after writes (the
/// first at once, then at most one per `EVENT_PACE`), a comment every 15 s to keep proxies from closing it.
pub(super) async fn events(State(st): State<AppState>, h: HeaderMap) -> Response {
    if signed_in(&st, &h).is_none() {
        return forbidden("sign in first");
    }
    let mut rx = st.ui.changes.subscribe();
    let stream = async_stream(move |tx| async move {
        let _ = tx.send("retry: 2000\n\n".to_string()).await;
        loop {
            tokio::select! {
                r = rx.changed() => {
                    if r.is_err() { break; }
                    let n = *rx.borrow_and_update();
                    if tx.send(format!("data: {n}\n\n")).await.is_err() { break; }
                    tokio::time::sleep(EVENT_PACE).await;
                }
                _ = tokio::time::sleep(Duration::from_secs(15)) => {
                    if tx.send(": keep-alive\n\n".to_string()).await.is_err() { break; }
                }
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A body fed by a task through a small channel.
fn async_stream<F, Fut>(
    f: F,
) -> impl futures_core::Stream<Item = std::result::Result<String, std::convert::Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<String>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(4);
    tokio::spawn(f(tx));
    ReceiverStream(rx)
}

struct ReceiverStream(tokio::sync::mpsc::Receiver<String>);

impl futures_core::Stream for ReceiverStream {
    type Item = std::result::Result<String, std::convert::Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

#[derive(Deserialize)]
pub(super) struct Login {
    token: String,
}

pub(super) async fn login(State(st): State<AppState>, Form(f): Form<Login>) -> Response {
    let Some(token) = &st.token else {
        return see_other("/");
    };
    if !constant_time_eq(f.token.trim().as_bytes(), token.as_bytes()) {
        return html(403, page::login(true));
    }
    let (id, csrf) = (random(), random());
    st.ui
        .signed_in
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), (csrf, Instant::now() + UI_SESSION));
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        UI_SESSION.as_secs()
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

/// A form's CSRF token matches this sign-in's: else 403, nothing applied.
fn checked(st: &AppState, h: &HeaderMap, given: &str) -> std::result::Result<(), &'static str> {
    match signed_in(st, h) {
        Some(csrf) if constant_time_eq(csrf.as_bytes(), given.as_bytes()) => Ok(()),
        Some(_) => Err("the form's CSRF token is missing or stale: reload the page"),
        None => Err("sign in first"),
    }
}

/// Applies a write for a person, then back to the page.
async fn act(st: AppState, w: Write) -> Response {
    let wakes = match &w {
        Write::SendMessage(m) => Some(canonical_session(&m.to_session)),
        _ => None,
    };
    let state = st.clone();
    match with_writer(&st, move |s| s.write(&w, None)).await {
        Ok(_) => {
            if let Some(to) = wakes {
                state.wake(&to, None);
            }
            state.ui.changed();
            see_other("/")
        }
        Err(e) => error_response(&e),
    }
}

#[derive(Deserialize)]
pub(super) struct SendForm {
    csrf: String,
    to: String,
    body: String,
    in_reply_to: Option<i64>,
}

pub(super) async fn send(
    State(st): State<AppState>,
    h: HeaderMap,
    Form(f): Form<SendForm>,
) -> Response {
    if let Err(why) = checked(&st, &h, &f.csrf) {
        return forbidden(why);
    }
    let to = crate::model::expand_recipient(f.to.trim());
    let w = st.ui.message(to, None, f.body, f.in_reply_to);
    act(st, w).await
}

#[derive(Deserialize)]
pub(super) struct AddTodo {
    csrf: String,
    text: String,
    project: Option<String>,
}

pub(super) async fn add_todo(
    State(st): State<AppState>,
    h: HeaderMap,
    Form(f): Form<AddTodo>,
) -> Response {
    if let Err(why) = checked(&st, &h, &f.csrf) {
        return forbidden(why);
    }
    let w = Write::AddTodo(NewTodo {
        text: f.text,
        user: None,
        project: f.project.filter(|p| !p.trim().is_empty()),
        parent_id: None,
        source: Some("dashboard".into()),
        auto: false,
        created_by_user: st.ui.user.clone(),
        created_by_machine: "WEB".into(),
    });
    act(st, w).await
}

#[derive(Deserialize)]
pub(super) struct ById {
    csrf: String,
    id: i64,
}

pub(super) async fn done_todo(
    State(st): State<AppState>,
    h: HeaderMap,
    Form(f): Form<ById>,
) -> Response {
    if let Err(why) = checked(&st, &h, &f.csrf) {
        return forbidden(why);
    }
    let w = Write::CompleteTodo {
        id: f.id,
        completed_by: st.ui.author.clone(),
    };
    act(st, w).await
}

/// A forced release, and its holder told (as `lock release --force`).
pub(super) async fn release_lock(
    State(st): State<AppState>,
    h: HeaderMap,
    Form(f): Form<ById>,
) -> Response {
    if let Err(why) = checked(&st, &h, &f.csrf) {
        return forbidden(why);
    }
    let me = st.ui.author.clone();
    let w = Write::ReleaseLock {
        id: f.id,
        session_id: me.clone(),
        force: true,
    };
    let state = st.clone();
    let released = with_writer(&st, move |s| s.write(&w, None)).await;
    match released {
        Ok(Written::Lock { lock, .. }) => {
            let tell = state.ui.message(
                lock.session_id.clone(),
                Some(format!(
                    "lock {}/{} released by {me}",
                    lock.project, lock.resource
                )),
                format!(
                    "{me} released your lock on {}/{} from the dashboard.",
                    lock.project, lock.resource
                ),
                None,
            );
            act(state, tell).await
        }
        Ok(_) => see_other("/"),
        Err(e) => error_response(&e),
    }
}

pub(super) async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        page::CSS,
    )
        .into_response()
}

pub(super) async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        page::JS,
    )
        .into_response()
}

/// The guard for the dashboard's routes: the Host check of a token-less
/// server (DNS rebinding), and a post must come from this origin.
pub(super) fn refused(st: &AppState, req: &Request) -> Option<Response> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if st.token.is_none() {
        let listen = *st.listen.lock().unwrap_or_else(|p| p.into_inner());
        if !host_allowed(host, listen) {
            return Some(forbidden("this Host is not this server's address"));
        }
    }
    if req.method() == axum::http::Method::POST {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let same = origin.is_some_and(|o| {
            o.split_once("://")
                .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
        });
        // A browser names the origin of every post; one from elsewhere is
        // refused before the form is read.
        if origin.is_some() && !same {
            return Some(forbidden("a post from another site is refused"));
        }
    }
    None
}

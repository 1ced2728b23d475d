//! The contract's routes (`wire::route`) and one handler each.

use super::*;

pub(super) fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(route::STATUS, get(status))
        .route(route::MESSAGES, post(send_message).get(list_messages))
        .route(route::MESSAGE_READ, post(mark_read))
        .route(route::TODOS, post(add_todo).get(list_todos))
        .route(route::TODO_DONE, post(complete_todo))
        .route(route::LOCKS, post(claim_lock).get(list_locks))
        .route(route::LOCK, delete(release_lock))
        .route(route::COMPONENT, put(set_component))
        .route(route::WORKFLOW, put(set_workflow))
        .route(route::SESSIONS, get(list_sessions))
        .route(route::SESSION, put(touch_session))
        .route(route::MESSAGES_SHOWN, post(mark_shown))
        .route(route::MESSAGE_DELIVERY, get(delivery))
        .route(route::TOUCHES, post(touch_files).get(list_touches))
        .route(route::CLAIMS, get(list_claims))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth))
        .route(route::HEALTH, get(health));
    // The dashboard, beside the API (its own guard: `ui::refused`).
    let dashboard = Router::new()
        .route("/", get(ui::index))
        .route("/ui/main", get(ui::main_part))
        .route("/ui/events", get(ui::events))
        .route("/ui/style.css", get(ui::css))
        .route("/ui/app.js", get(ui::js))
        .route("/ui/login", post(ui::login))
        .route("/ui/send", post(ui::send))
        .route("/ui/todo", post(ui::add_todo))
        .route("/ui/todo/done", post(ui::done_todo))
        .route("/ui/lock/release", post(ui::release_lock));
    Router::new()
        .merge(dashboard)
        .nest(wire::PREFIX, api)
        .fallback(|| async { error(404, "no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), browser_guard))
        .layer(middleware::from_fn(log))
        .with_state(state)
}

pub(super) async fn health() -> Response {
    ok(
        200,
        json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }),
    )
}

pub(super) async fn status(State(st): State<AppState>) -> Response {
    do_read(st, |s| s.status()).await
}

/// A write whose whole description is the JSON body.
pub(super) async fn body_write<T: DeserializeOwned>(
    st: AppState,
    h: HeaderMap,
    body: Body,
    make: impl FnOnce(T) -> Write,
) -> Response {
    let b: T = tri!(read_json(body).await);
    do_write(st, h, make(b)).await
}

/// A write on `/{id}/…` with a small JSON body.
pub(super) async fn id_write<T: DeserializeOwned>(
    st: AppState,
    id: String,
    h: HeaderMap,
    body: Body,
    make: impl FnOnce(i64, T) -> Write,
) -> Response {
    let id = tri!(parse_id(&id));
    let b: T = tri!(read_json(body).await);
    do_write(st, h, make(id, b)).await
}

pub(super) async fn send_message(State(st): State<AppState>, h: HeaderMap, body: Body) -> Response {
    body_write(st, h, body, Write::SendMessage).await
}

pub(super) async fn add_todo(State(st): State<AppState>, h: HeaderMap, body: Body) -> Response {
    body_write(st, h, body, Write::AddTodo).await
}

pub(super) async fn claim_lock(State(st): State<AppState>, h: HeaderMap, body: Body) -> Response {
    body_write(st, h, body, Write::ClaimLock).await
}

#[derive(serde::Deserialize)]
pub(super) struct SessionBody {
    session: String,
}

pub(super) async fn mark_read(
    State(st): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    body: Body,
) -> Response {
    id_write(st, id, h, body, |id, b: SessionBody| Write::MarkRead {
        id,
        session: b.session,
    })
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct ShownBody {
    session: String,
    ids: Vec<i64>,
}

pub(super) async fn mark_shown(State(st): State<AppState>, h: HeaderMap, body: Body) -> Response {
    body_write(st, h, body, |b: ShownBody| Write::MarkShown {
        session: b.session,
        ids: b.ids,
    })
    .await
}

pub(super) async fn delivery(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let id = tri!(parse_id(&id));
    json_response(
        with_reader(&st, move |s| {
            s.delivery(id)?
                .ok_or_else(|| Error::Failed("this store cannot say what was delivered".into()))
        })
        .await,
    )
}

#[derive(serde::Deserialize)]
pub(super) struct TouchBody {
    session_id: String,
    project: String,
    paths: Vec<String>,
}

pub(super) async fn touch_files(State(st): State<AppState>, h: HeaderMap, body: Body) -> Response {
    body_write(st, h, body, |b: TouchBody| Write::TouchFiles {
        session_id: b.session_id,
        project: b.project,
        paths: b.paths,
    })
    .await
}

/// The longest look back `GET /touches` takes (`within`, seconds).
const MAX_TOUCH_WITHIN: u64 = 24 * 3600;

/// `project`, `path` and `within` of a touches or claims query.
fn touch_query(q: &Query) -> std::result::Result<(String, String, u64), Reject> {
    let (Some(project), Some(path)) = (q.get(query::PROJECT), q.get(query::PATH)) else {
        return Err(Reject(
            422,
            "query parameters project and path are required".into(),
        ));
    };
    let within = match q.get(query::WITHIN) {
        None => 600,
        Some(w) => match w.trim().parse::<u64>() {
            Ok(n) if n <= MAX_TOUCH_WITHIN => n,
            _ => {
                return Err(Reject(
                    422,
                    format!(
                        "within must be 0 to {MAX_TOUCH_WITHIN} seconds, not {:?}",
                        clip(&w)
                    ),
                ));
            }
        },
    };
    Ok((project, path, within))
}

pub(super) async fn list_claims(State(st): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let q = tri!(Query::parse(q));
    let (project, path, within) = tri!(touch_query(&q));
    json_response(
        with_reader(&st, move |s| {
            s.claims(&project, &path, within)?
                .ok_or_else(|| Error::Failed("this store cannot list claims".into()))
        })
        .await,
    )
}

pub(super) async fn list_touches(State(st): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let q = tri!(Query::parse(q));
    let (project, path, within) = tri!(touch_query(&q));
    json_response(with_reader(&st, move |s| s.touches(&project, &path, within)).await)
}

#[derive(serde::Deserialize)]
pub(super) struct DoneBody {
    completed_by: String,
}

pub(super) async fn complete_todo(
    State(st): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    body: Body,
) -> Response {
    id_write(st, id, h, body, |id, b: DoneBody| Write::CompleteTodo {
        id,
        completed_by: b.completed_by,
    })
    .await
}

pub(super) async fn set_component(
    State(st): State<AppState>,
    Path((project, component)): Path<(String, String)>,
    h: HeaderMap,
    body: Body,
) -> Response {
    body_write(st, h, body, |update| Write::SetComponent {
        project,
        component,
        update,
    })
    .await
}

pub(super) async fn touch_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    body: Body,
) -> Response {
    body_write(st, h, body, |update| Write::TouchSession {
        session_id: id,
        update,
    })
    .await
}

pub(super) async fn list_sessions(State(st): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let q = tri!(Query::parse(q));
    let within = match q.get(query::ACTIVE_WITHIN) {
        None => None,
        Some(w) => match w.trim().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return error(
                    422,
                    format!("active_within must be seconds, not {:?}", clip(&w)),
                );
            }
        },
    };
    let limit = tri!(list_limit(&q)) as usize;
    counted(
        with_reader(&st, move |s| {
            let mut v = s.sessions(within)?.unwrap_or_default();
            let total = v.len() as u64;
            v.truncate(limit);
            Ok((v, total))
        })
        .await,
    )
}

pub(super) async fn set_workflow(
    State(st): State<AppState>,
    Path(name): Path<String>,
    h: HeaderMap,
    body: Body,
) -> Response {
    body_write(st, h, body, |update| Write::SetWorkflow { name, update }).await
}

pub(super) async fn list_messages(
    State(st): State<AppState>,
    conn: Option<axum::Extension<Arc<ConnState>>>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = tri!(Query::parse(q));
    let session = q.get(query::SESSION);
    let limit = match q.get(query::LIMIT) {
        None => None,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_MESSAGE_LIMIT).contains(&n) => Some(n),
            _ => {
                return error(
                    422,
                    format!("limit must be 1 to {MAX_MESSAGE_LIMIT}, not {:?}", clip(&l)),
                );
            }
        },
    };
    let newest_first = match q
        .get(query::ORDER)
        .map(|o| o.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => return error(422, format!("order must be asc or desc, not {:?}", clip(o))),
    };
    let after_id = match q.get(query::AFTER_ID) {
        None => None,
        Some(a) => match a.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return error(
                    422,
                    format!("after_id must be an integer, not {:?}", clip(&a)),
                );
            }
        },
    };
    // v1.1: from_session lists what a session sent, instead of `session`.
    let (session, sent) = match q.get(query::FROM_SESSION) {
        Some(from) => (from, true),
        None => match session {
            Some(s) => (s, false),
            None => {
                return error(
                    422,
                    "query parameter session (or from_session) is required".into(),
                );
            }
        },
    };
    let wait = match q.get(query::WAIT) {
        None => 0,
        Some(w) => match w.trim().parse::<u64>() {
            Ok(n) if n <= MAX_WAIT_SECS => n,
            _ => {
                return error(
                    422,
                    format!(
                        "wait must be 0 to {MAX_WAIT_SECS} seconds, not {:?}",
                        clip(&w)
                    ),
                );
            }
        },
    };
    let query = MessageQuery {
        session,
        unread_only: tri!(q.flag(query::UNREAD)),
        limit,
        newest_first,
        after_id,
        sent,
    };
    // Long-poll: hold the answer until a message matches or the time is up.
    // The wake-up is armed before each read, so none slips between them.
    let holds = wait > 0 && !query.sent && (query.unread_only || query.after_id.is_some());
    let conn = conn.map(|c| c.0);
    // A replayed long-poll (see `park`) goes on with the wait it began.
    let resumed = conn
        .as_ref()
        .and_then(|c| c.resume.lock().unwrap_or_else(|p| p.into_inner()).take());
    let until = resumed.as_ref().map_or_else(
        || tokio::time::Instant::now() + Duration::from_secs(wait),
        |r| r.until,
    );
    // Woken by a broadcast and nothing else: that row is the answer.
    if let Some(m) = resumed.and_then(|r| r.answer) {
        return messages_answer(Ok(crate::backend::Page {
            messages: vec![super::park::unread_for_recipient(&m)],
            total: Some(1),
        }));
    }
    let session = canonical_session(&query.session);
    let mut answerable = (holds && query.unread_only).then(|| super::park::Answerable {
        session: session.clone(),
        after: query.after_id.unwrap_or(0),
    });
    let mut waiting = holds.then(|| st.waiter(&session));
    let cut = || {
        conn.as_ref()
            .is_some_and(|c| c.cut.load(std::sync::atomic::Ordering::SeqCst))
    };
    let page = loop {
        let mut woken = waiting
            .as_ref()
            .map(|w| Box::pin(w.notify.clone().notified_owned()));
        if let Some(w) = woken.as_mut() {
            w.as_mut().enable();
        }
        let mut closing = conn.as_ref().map(|c| Box::pin(c.cut_now.notified()));
        if let Some(c) = closing.as_mut() {
            c.as_mut().enable();
        }
        let seen = st.wakes.seen();
        let q = query.clone();
        let page = with_reader(&st, move |s| s.messages_page(&q)).await;
        match (&page, woken) {
            (Ok(p), Some(w))
                if p.messages.is_empty() && tokio::time::Instant::now() < until && !cut() =>
            {
                // Nothing yet: the connection holds the wait, outside hyper.
                if let Some(c) = &conn
                    && c.parkable.load(std::sync::atomic::Ordering::SeqCst)
                    && let Some(waiting) = waiting.take()
                {
                    *c.park.lock().unwrap_or_else(|p| p.into_inner()) = Some(super::park::Park {
                        waiting,
                        woken: w,
                        until,
                        seen,
                        wakes: st.wakes.clone(),
                        answerable: answerable.take(),
                    });
                    c.swallow.store(true, std::sync::atomic::Ordering::SeqCst);
                    return super::park::parked_response();
                }
                if let Some(c) = &conn {
                    c.holding.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let closed = async {
                    match closing {
                        Some(c) => c.await,
                        None => std::future::pending().await,
                    }
                };
                let again = tokio::select! {
                    r = tokio::time::timeout_at(until, w) => r.is_ok(),
                    // Evicted to make room: answer what there is (nothing
                    // new); the waiter asks again.
                    _ = closed => false,
                };
                if let Some(c) = &conn {
                    c.holding.store(false, std::sync::atomic::Ordering::SeqCst);
                }
                if !again {
                    break page;
                }
            }
            _ => break page,
        }
    };
    drop(waiting);
    messages_answer(page)
}

/// A page of messages as `GET /messages` answers it (with its count).
fn messages_answer(page: Result<crate::backend::Page>) -> Response {
    let total = page.as_ref().ok().and_then(|p| p.total);
    let mut resp = json_response(page.map(|p| p.messages));
    if let Some(t) = total.filter(|_| resp.status().is_success()) {
        resp.headers_mut()
            .insert(crate::wire::header::TOTAL, axum::http::HeaderValue::from(t));
    }
    resp
}

pub(super) async fn list_todos(State(st): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let q = tri!(Query::parse(q));
    let status = match q.get(query::STATUS) {
        None => StatusFilter::Pending,
        Some(s) => match StatusFilter::parse(&s) {
            Some(f) => f,
            None => {
                return error(
                    422,
                    format!("status must be pending, done or all, not {:?}", clip(&s)),
                );
            }
        },
    };
    let query = TodoQuery {
        user: q.get(query::USER),
        include_unassigned: tri!(q.flag(query::INCLUDE_UNASSIGNED)),
        project: q.get(query::PROJECT),
        status,
        limit: Some(tri!(list_limit(&q))),
        after_id: tri!(q.id(query::AFTER_ID)),
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT) as usize;
    counted(
        with_reader(&st, move |s| {
            let v = s.todos(&query)?;
            // Counted only when there may be more than the page.
            let total = if v.len() >= limit {
                // An engine that cannot count cheaply says at least this many.
                s.todo_count(&query)?.unwrap_or(v.len() as u64)
            } else {
                v.len() as u64
            };
            Ok((v, total))
        })
        .await,
    )
}

/// `limit`: 1 to `MAX_LIST_LIMIT`, `DEFAULT_LIST_LIMIT` when not given.
pub(super) fn list_limit(q: &Query) -> std::result::Result<u32, Reject> {
    match q.get(query::LIMIT) {
        None => Ok(DEFAULT_LIST_LIMIT),
        Some(l) => match l.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_LIST_LIMIT).contains(&n) => Ok(n),
            _ => Err(Reject(
                422,
                format!("limit must be 1 to {MAX_LIST_LIMIT}, not {:?}", clip(&l)),
            )),
        },
    }
}

/// A list and how many matched before its limit, as `X-Total-Count`.
pub(super) fn counted<T: serde::Serialize>(r: Result<(Vec<T>, u64)>) -> Response {
    match r {
        Ok((v, total)) => {
            let mut resp = json_response(Ok(v));
            if resp.status().is_success() {
                resp.headers_mut().insert(
                    crate::wire::header::TOTAL,
                    axum::http::HeaderValue::from(total),
                );
            }
            resp
        }
        Err(e) => error_response(&e),
    }
}

pub(super) async fn list_locks(State(st): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let q = tri!(Query::parse(q));
    let query = LockQuery {
        project: q.get(query::PROJECT),
        session_id: q.get(query::SESSION_ID),
        limit: Some(tri!(list_limit(&q))),
        after_id: tri!(q.id(query::AFTER_ID)),
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT) as usize;
    counted(
        with_reader(&st, move |s| {
            let v = s.locks(&query)?;
            let total = if v.len() >= limit {
                s.lock_count(&query)?.unwrap_or(v.len() as u64)
            } else {
                v.len() as u64
            };
            Ok((v, total))
        })
        .await,
    )
}

pub(super) async fn release_lock(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    let id = tri!(parse_id(&id));
    let q = tri!(Query::parse(q));
    let force = tri!(q.flag(query::FORCE));
    let session_id = q.get(query::SESSION_ID).unwrap_or_default();
    if session_id.is_empty() && !force {
        return error(
            422,
            "query parameter session_id is required (or force=true)".into(),
        );
    }
    do_write(
        st,
        h,
        Write::ReleaseLock {
            id,
            session_id,
            force,
        },
    )
    .await
}

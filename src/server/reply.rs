//! Answers and request parts shared by the routes: errors in the
//! contract's shape, JSON bodies read within their deadline, the query
//! string, the idempotency key, and one write or read run on the store.

use super::*;

pub(super) fn error(status: u16, detail: String) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(wire::error_body(&detail, None))).into_response()
}

pub(super) fn error_response(e: &Error) -> Response {
    if let Error::Store { .. } | Error::Unavailable(_) = e {
        // The detail stays generic on the wire; the operator sees the cause.
        crate::out::note(&format!("coord serve: {e}"));
    }
    let code = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let lock = match e {
        Error::Conflict { lock: Some(l), .. } => Some(l.as_ref()),
        _ => None,
    };
    (code, axum::Json(wire::error_body(&e.detail(), lock))).into_response()
}

/// A request refused before it reached the store.
pub(super) struct Reject(pub(super) u16, pub(super) String);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

pub(super) fn ok(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (code, axum::Json(body)).into_response()
}

pub(super) async fn read_json<T: DeserializeOwned>(body: Body) -> std::result::Result<T, Reject> {
    let bytes = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        axum::body::to_bytes(body, MAX_BODY_BYTES),
    )
    .await
    .map_err(|_| {
        Reject(
            408,
            format!(
                "the request body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        )
    })?
    .map_err(|_| Reject(413, format!("request body over {MAX_BODY_BYTES} bytes")))?;
    serde_json::from_slice(&bytes).map_err(|e| Reject(422, format!("invalid JSON body: {e}")))
}

pub(super) fn parse_id(s: &str) -> std::result::Result<i64, Reject> {
    s.trim()
        .parse()
        .map_err(|_| Reject(422, format!("id must be an integer, not {:?}", clip(s))))
}

pub(super) fn clip(s: &str) -> String {
    crate::text::cell(s, 60)
}

/// The query string as pairs; repeated keys keep the last.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(raw: Option<String>) -> std::result::Result<Query, Reject> {
        let raw = raw.unwrap_or_default();
        serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
            .map(Query)
            .map_err(|e| Reject(400, format!("bad query string: {e}")))
    }
    pub(super) fn get(&self, k: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }
    /// An optional integer id parameter.
    pub(super) fn id(&self, k: &str) -> std::result::Result<Option<i64>, Reject> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Reject(422, format!("{k} must be an integer, not {:?}", clip(&v)))),
        }
    }

    pub(super) fn flag(&self, k: &str) -> std::result::Result<bool, Reject> {
        match self
            .get(k)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("false" | "0" | "no") => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some(other) => Err(Reject(
                422,
                format!("{k} must be true or false, not {:?}", clip(other)),
            )),
        }
    }
}

pub(super) fn idempotency_key(h: &HeaderMap) -> std::result::Result<Option<String>, Reject> {
    match h.get(wire::header::IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if !s.is_empty() && s.len() <= MAX_KEY_LEN => Ok(Some(s.to_string())),
            _ => Err(Reject(
                400,
                format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible characters"),
            )),
        },
    }
}

pub(super) async fn do_write(st: AppState, h: HeaderMap, w: Write) -> Response {
    let key = tri!(idempotency_key(&h));
    let wakes = match &w {
        Write::SendMessage(m) => Some(canonical_session(&m.to_session)),
        _ => None,
    };
    let state = st.clone();
    let result = with_writer(&st, move |s| {
        let a = s.apply(&w, key.as_deref())?;
        // The row a broadcast's held polls can be answered from.
        let row = match (&a.written, a.replayed) {
            (Written::Message(m), false) => Some(Arc::new(m.clone())),
            _ => None,
        };
        Ok((
            wire::status_for(&w, &a.written),
            a.written.to_json(),
            a.replayed,
            row,
        ))
    })
    .await;
    match result {
        Ok((status, body, replayed, row)) => {
            match wakes {
                Some(to) => state.wake(&to, row),
                None => state.ui.changed(),
            }
            let mut resp = ok(status, body);
            if replayed {
                resp.headers_mut().insert(
                    crate::wire::header::REPLAYED,
                    axum::http::HeaderValue::from_static("true"),
                );
            }
            resp
        }
        Err(e) => error_response(&e),
    }
}

pub(super) async fn do_read<T: serde::Serialize + Send + 'static>(
    st: AppState,
    f: impl FnOnce(&dyn Coord) -> Result<T> + Send + 'static,
) -> Response {
    json_response(with_reader(&st, f).await)
}

/// A read's answer as JSON, or its error.
pub(super) fn json_response<T: serde::Serialize>(r: Result<T>) -> Response {
    match r.and_then(|v| {
        serde_json::to_vec(&v).map_err(|e| Error::Failed(format!("cannot encode the answer: {e}")))
    }) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error_response(&e),
    }
}

//! What runs before every handler: the request log, the browser guard
//! (Origin, Content-Type, Host) and the bearer token.

use super::*;

/// One line per request: method, path, status, milliseconds. Never a body,
/// a query or a header.
pub(super) async fn log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    // A parked long-poll's stand-in never reaches the client: its replay
    // is what gets logged.
    if resp.extensions().get::<super::park::Parked>().is_some() {
        return resp;
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    crate::out::note(&format!(
        "{method} {} {} {ms:.1}ms",
        crate::text::cell(&path, 200),
        resp.status().as_u16()
    ));
    resp
}

/// Keeps web pages out. A browser adds `Origin` to every cross-site
/// request (our clients never send one); a form or `fetch` without a
/// preflight can only send text/plain, form or multipart bodies; and a
/// rebound DNS name reaches a token-less loopback server with a foreign
/// `Host`. Each of these is refused before any handler runs.
pub(super) async fn browser_guard(
    State(st): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if !req.uri().path().starts_with(wire::PREFIX) {
        // The dashboard: pages, forms and events of its own origin.
        if let Some(no) = super::ui::refused(&st, &req) {
            return no;
        }
        return next.run(req).await;
    }
    if req.headers().contains_key(header::ORIGIN) {
        return error(
            403,
            "requests from web pages (with an Origin header) are refused".into(),
        );
    }
    // Every POST and PUT of the contract carries a JSON body. (A DELETE
    // carries none, and a browser cannot send one cross-site unasked.)
    let with_body = matches!(req.method().as_str(), "POST" | "PUT");
    if with_body && !is_json(req.headers()) {
        return error(
            415,
            "a write's body must be sent as Content-Type: application/json".into(),
        );
    }
    if st.token.is_none() {
        let listen = *st.listen.lock().unwrap_or_else(|p| p.into_inner());
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !host_allowed(host, listen) {
            return error(
                403,
                format!(
                    "Host {:?} is not this server's address; without --token only loopback names are served",
                    clip(host)
                ),
            );
        }
    }
    next.run(req).await
}

pub(super) fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            let t = t.trim().to_ascii_lowercase();
            t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
        })
}

/// A `Host` a token-less server answers: a loopback name or address, or the
/// address it listens on (any port: a proxy may map it).
pub(super) fn host_allowed(host: &str, listen: Option<SocketAddr>) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback() || listen.is_some_and(|l| l.ip() == ip),
        Err(_) => false,
    }
}

pub(super) async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &st.token {
        // RFC 9110: the scheme name is case-insensitive.
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, t)| t.trim());
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return error(401, "missing or wrong bearer token".into());
        }
    }
    next.run(req).await
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

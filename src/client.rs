//! The client: the coord API over ureq (blocking, no runtime), with the
//! fallbacks a v1 server needs. What the contract says (paths, names,
//! shapes, statuses) comes from `wire`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};

use ureq::Agent;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::backend::{Applied, Coord, Page};
use crate::error::{Error, Result};
use crate::model::*;
use crate::wire::{self, Method, Request, query, route};

/// How long to wait for a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a whole command request may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers larger than this are not read.
const MAX_ANSWER_BYTES: u64 = 32 * 1024 * 1024;

pub struct HttpCoord {
    agent: Agent,
    /// `{coord_api}/api/coord` of each replica of the fleet, in the order
    /// given, each with the same without a password (for every message a
    /// person or a model may read).
    bases: Vec<(String, String)>,
    /// The replica that answered last: asked first, the others in order
    /// after it when it cannot be reached.
    current: std::sync::atomic::AtomicUsize,
    token: Option<String>,
    answer_limit: u64,
    /// v1.1 long-poll: ask the server to hold a message query this long.
    wait: u64,
}

/// The HTTP agent: connect and overall timeouts, statuses as answers, and
/// the roots a TLS server is checked against (the public ones by default).
fn agent(overall: Duration, roots: Option<ureq::tls::RootCerts>) -> Agent {
    let mut config = Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT.min(overall)))
        .timeout_global(Some(overall))
        .http_status_as_error(false)
        .user_agent(concat!("coord-hook/", env!("CARGO_PKG_VERSION")));
    if let Some(roots) = roots {
        config = config.tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build());
    }
    Agent::with_parts(
        config.build(),
        DefaultConnector::default(),
        LiteralFirst::default(),
    )
}

/// A 2xx answer.
struct Answer {
    status: u16,
    bytes: Vec<u8>,
    replayed: bool,
    total: Option<u64>,
}

impl HttpCoord {
    /// `api` is the `coord_api` base, already validated (no trailing slash).
    /// `api` may list several replicas of one fleet, comma-separated
    /// (identity.json's `coord_api` as a list).
    pub fn new(api: &str, token: Option<String>, overall: Duration) -> HttpCoord {
        HttpCoord::with_roots(api, token, overall, None)
    }

    /// The client an identity asks for: its token, and its CA (`coord_ca`,
    /// PEM already checked to hold a certificate) instead of the public
    /// roots when it names one.
    pub fn for_identity(id: &crate::identity::Identity, api: &str, overall: Duration) -> HttpCoord {
        let roots = id.ca_pem.as_deref().map(|pem| {
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            ureq::tls::RootCerts::new_with_certs(&certs)
        });
        HttpCoord::with_roots(api, id.token.clone(), overall, roots)
    }

    fn with_roots(
        api: &str,
        token: Option<String>,
        overall: Duration,
        roots: Option<ureq::tls::RootCerts>,
    ) -> HttpCoord {
        let bases = crate::identity::fleet_urls(api)
            .map(|u| {
                let base = format!("{}/api/coord", u.trim_end_matches('/'));
                (base.clone(), crate::identity::redact_url(&base))
            })
            .collect();
        HttpCoord {
            agent: agent(overall, roots),
            bases,
            current: std::sync::atomic::AtomicUsize::new(0),
            token,
            answer_limit: MAX_ANSWER_BYTES,
            wait: 0,
        }
    }

    /// Asks message queries to be held up to `secs` until one matches
    /// (`wait`, v1.1); the agent's own timeout must allow for it.
    pub fn with_wait(mut self, secs: u64) -> HttpCoord {
        self.wait = secs.min(60);
        self
    }

    /// Reads at most `bytes` of any answer (the hook keeps answers small
    /// enough to parse inside its deadline).
    pub fn with_answer_limit(mut self, bytes: u64) -> HttpCoord {
        self.answer_limit = bytes;
        self
    }

    /// The replica in use, as a person may see it.
    fn shown_base(&self) -> &str {
        let i = self.current.load(std::sync::atomic::Ordering::Relaxed);
        self.bases.get(i).map_or("", |b| b.1.as_str())
    }

    /// Sends one request; answers the status and the body of a 2xx, or the
    /// error the answer means.
    fn call(&self, req: &Request, key: Option<&str>) -> Result<(u16, Vec<u8>)> {
        self.call_full(req, key).map(|a| (a.status, a.bytes))
    }

    /// `call`, with what the headers say too. A replica that cannot be
    /// reached, or answers that it cannot serve (502–504), hands the
    /// request to the next one of the fleet with the same idempotency key:
    /// a write it did apply is a replay on the next, never a second write.
    fn call_full(&self, req: &Request, key: Option<&str>) -> Result<Answer> {
        use std::sync::atomic::Ordering;
        let n = self.bases.len().max(1);
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut last = None;
        for step in 0..n {
            let i = (first + step) % n;
            match self.call_at(i, req, key) {
                Err(e) if fails_over(&e) => last = Some(e),
                r => {
                    self.current.store(i, Ordering::Relaxed);
                    return r;
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Failed("no coord_api to ask".into())))
    }

    /// One request to replica `i`.
    fn call_at(&self, i: usize, req: &Request, key: Option<&str>) -> Result<Answer> {
        let Some((base, shown_base)) = self.bases.get(i) else {
            return Err(Error::Failed("no coord_api to ask".into()));
        };
        let url = format!("{base}{}", req.path);
        let shown = format!("{shown_base}{}", req.path);
        let result = match &req.body {
            None => {
                let b = match req.method {
                    Method::Delete => self.agent.delete(&url),
                    _ => self.agent.get(&url),
                };
                self.decorate(b, req, key).call()
            }
            Some(body) => {
                let b = match req.method {
                    Method::Put => self.agent.put(&url),
                    _ => self.agent.post(&url),
                };
                self.decorate(b, req, key)
                    .header("Content-Type", "application/json")
                    .send(body.to_string())
            }
        };
        let mut resp = result.map_err(|e| unreachable(&shown, e))?;
        let status = resp.status().as_u16();
        let replayed = resp
            .headers()
            .get(wire::header::REPLAYED)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let total = resp
            .headers()
            .get(wire::header::TOTAL)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(self.answer_limit)
            .read_to_vec()
            .map_err(|e| unreachable(&shown, e))?;
        if (200..300).contains(&status) {
            return Ok(Answer {
                status,
                bytes,
                replayed,
                total,
            });
        }
        Err(error_from_answer(status, &shown, &bytes))
    }

    /// Query, token and idempotency key, for either kind of request.
    fn decorate<B>(
        &self,
        mut b: ureq::RequestBuilder<B>,
        req: &Request,
        key: Option<&str>,
    ) -> ureq::RequestBuilder<B> {
        for (k, v) in &req.query {
            b = b.query(*k, v);
        }
        if let Some(t) = &self.token {
            b = b.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(k) = key {
            b = b.header(wire::header::IDEMPOTENCY_KEY, k);
        }
        b
    }

    fn parse<T: DeserializeOwned>(&self, req: &Request, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| self.protocol(req, bytes, &e))
    }

    /// A 2xx answer that is not the contract's JSON.
    fn protocol(&self, req: &Request, bytes: &[u8], e: &serde_json::Error) -> Error {
        Error::Protocol {
            endpoint: format!("{} {}{}", req.method.as_str(), self.shown_base(), req.path),
            msg: if std::str::from_utf8(bytes).is_ok_and(|s| s.trim_start().starts_with('<')) {
                "an HTML page instead of JSON".to_string()
            } else {
                format!("not the contract's JSON ({e})")
            },
        }
    }

    fn get<T: DeserializeOwned>(&self, req: Request) -> Result<T> {
        let (_, bytes) = self.call(&req, None)?;
        self.parse(&req, &bytes)
    }

    /// `GET /health`, for `coord status` and the tests.
    pub fn health(&self) -> Result<Value> {
        self.get(Request::get(route::HEALTH))
    }
}

/// Answers an IP-literal host at once and leaves names to ureq's resolver.
/// With a timeout set, ureq resolves every host on a thread of its own so
/// that getaddrinfo cannot outlive the deadline; for `127.0.0.1` that thread
/// is pure cost on the hook's hot path.
#[derive(Debug, Default)]
struct LiteralFirst(DefaultResolver);

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        let ip = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok());
        match (ip, port) {
            (Some(ip), Some(port)) => {
                let mut addrs = self.empty();
                addrs.push(SocketAddr::new(ip, port));
                Ok(addrs)
            }
            _ => self.0.resolve(uri, config, timeout),
        }
    }
}

/// Turns a transport failure into the *unreachable* kind, in one line.
fn unreachable(url: &str, e: ureq::Error) -> Error {
    use ureq::Error as E;
    if let Some(reason) = certificate_problem(&e) {
        return Error::Untrusted {
            url: url.to_string(),
            reason: crate::text::cell(&reason, 200),
        };
    }
    let reason = match &e {
        E::Timeout(t) => format!("timed out ({t})"),
        E::HostNotFound => "host not found".to_string(),
        E::ConnectionFailed => "connection failed".to_string(),
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_string()
        }
        E::Io(io) => format!("I/O error: {io}"),
        E::BadUri(u) => format!("bad address {u}"),
        E::BodyExceedsLimit(n) => format!("answer larger than {n} bytes"),
        other => other.to_string(),
    };
    Error::Unreachable {
        url: url.to_string(),
        reason: crate::text::cell(&reason, 200),
    }
}

/// Whether another replica of the fleet should be asked instead.
fn fails_over(e: &Error) -> bool {
    matches!(
        e,
        Error::Unreachable { .. }
            | Error::Server {
                status: 502..=504,
                ..
            }
    )
}

/// The certificate rustls refused, when that is why the call failed.
fn certificate_problem(e: &ureq::Error) -> Option<String> {
    let ureq::Error::Io(io) = e else {
        return None;
    };
    match io.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(c) => Some(format!("{c:?}")),
        _ => None,
    }
}

fn error_from_answer(status: u16, url: &str, bytes: &[u8]) -> Error {
    let detail = wire::detail_of(bytes).unwrap_or_else(|| {
        let kind = if std::str::from_utf8(bytes).is_ok_and(|s| s.trim_start().starts_with('<')) {
            "an HTML page"
        } else if bytes.is_empty() {
            "an empty answer"
        } else {
            "a non-JSON answer"
        };
        if status >= 500 {
            format!("answered with {kind}")
        } else {
            format!("HTTP {status} with {kind} from {url}")
        }
    });
    match status {
        401 => Error::Rejected {
            status,
            detail: format!("{detail} (unauthorized: check coord_token / COORD_TOKEN)"),
        },
        409 => {
            let lock = wire::conflict_lock(bytes);
            Error::Conflict {
                detail,
                lock: lock.map(Box::new),
            }
        }
        400..=499 => Error::Rejected { status, detail },
        _ => Error::Server {
            status,
            url: url.to_string(),
            detail,
        },
    }
}

impl HttpCoord {
    /// v1.1 `from_session`: what `q.session` sent. A v1 server ignores the
    /// parameter and answers the session's inbox instead; that is told
    /// apart by the senders, and said.
    fn sent(&self, q: &MessageQuery, limit: u32) -> Result<Page> {
        let req = Request::get(route::MESSAGES)
            .q(query::SESSION, Some(&q.session))
            .q(query::FROM_SESSION, Some(&q.session))
            .q(query::LIMIT, Some(limit))
            .q(query::ORDER, q.newest_first.then_some("desc"));
        let a = self.call_full(&req, None)?;
        let messages: Vec<Message> = self.parse(&req, &a.bytes)?;
        let me = canonical_session(&q.session);
        if messages
            .iter()
            .any(|m| canonical_session(&m.from_session) != me || m.read_by.is_none())
        {
            return Err(Error::Failed(format!(
                "the coord API at {} does not list sent messages (a v1 server without from_session)",
                self.shown_base()
            )));
        }
        Ok(Page {
            messages,
            total: a.total,
        })
    }
}

impl Coord for HttpCoord {
    fn apply(&self, w: &Write, key: Option<&str>) -> Result<Applied> {
        let fresh;
        let key = match key {
            Some(k) => k,
            None => {
                fresh = uuid::Uuid::new_v4().to_string();
                &fresh
            }
        };
        let req = wire::request_for(w);
        let Answer {
            status,
            bytes,
            replayed,
            ..
        } = self.call_full(&req, Some(key))?;
        let written =
            wire::written_from(w, status, &bytes).map_err(|e| self.protocol(&req, &bytes, &e))?;
        Ok(Applied { written, replayed })
    }

    fn messages_page(&self, q: &MessageQuery) -> Result<Page> {
        let limit = q.limit.unwrap_or(DEFAULT_MESSAGE_LIMIT);
        if q.sent {
            return self.sent(q, limit);
        }
        let ask = |limit: u32| -> Result<(Vec<Message>, Option<u64>)> {
            let req = Request::get(route::MESSAGES)
                .q(query::SESSION, Some(&q.session))
                .q(query::UNREAD, q.unread_only.then_some("true"))
                .q(query::LIMIT, Some(limit))
                .q(query::ORDER, q.newest_first.then_some("desc"))
                .q(query::AFTER_ID, q.after_id)
                .q(query::WAIT, (self.wait > 0).then_some(self.wait));
            let a = self.call_full(&req, None)?;
            let mut messages: Vec<Message> = self.parse(&req, &a.bytes)?;
            // A v1 server ignores after_id (and order, and sends no count).
            if let Some(after) = q.after_id {
                messages.retain(|m| m.id > after);
            }
            Ok((messages, a.total))
        };
        let (mut messages, mut total) = ask(limit)?;
        // Oldest first from a v1 server: to find the newest, ask again for
        // as many as it gives.
        let ignored_order = q.newest_first && messages.windows(2).any(|w| w[0].id < w[1].id);
        if ignored_order {
            if total.is_none() && messages.len() >= limit as usize && limit < MAX_MESSAGE_LIMIT {
                let (more, _) = ask(MAX_MESSAGE_LIMIT)?;
                messages = more;
                if messages.len() < MAX_MESSAGE_LIMIT as usize {
                    total = Some(messages.len() as u64);
                }
            }
            messages.sort_by_key(|m| std::cmp::Reverse(m.id));
            // Cut to the page only when the count is known; otherwise the
            // caller sees that there are at least this many.
            if total.is_some() {
                messages.truncate(limit as usize);
            }
        }
        if total.is_none() && messages.len() < limit as usize {
            total = Some(messages.len() as u64);
        }
        Ok(Page { messages, total })
    }

    fn todos(&self, q: &TodoQuery) -> Result<Vec<Todo>> {
        self.get(
            Request::get(route::TODOS)
                .q(query::USER, q.user.as_ref())
                .q(
                    query::INCLUDE_UNASSIGNED,
                    q.include_unassigned.then_some("true"),
                )
                .q(query::PROJECT, q.project.as_ref())
                .q(query::STATUS, Some(q.status.as_str()))
                .q(query::LIMIT, q.limit)
                .q(query::AFTER_ID, q.after_id),
        )
    }

    fn locks(&self, q: &LockQuery) -> Result<Vec<Lock>> {
        self.get(
            Request::get(route::LOCKS)
                .q(query::PROJECT, q.project.as_ref())
                .q(query::SESSION_ID, q.session_id.as_ref())
                .q(query::LIMIT, q.limit)
                .q(query::AFTER_ID, q.after_id),
        )
    }

    fn status(&self) -> Result<Status> {
        self.get(Request::get(route::STATUS))
    }

    fn sessions(&self, active_within: Option<u64>) -> Result<Option<Vec<Session>>> {
        match self.get(Request::get(route::SESSIONS).q(query::ACTIVE_WITHIN, active_within)) {
            Ok(v) => Ok(Some(v)),
            // A v1 server: no sessions. Quietly off.
            Err(Error::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn delivery(&self, id: i64) -> Result<Option<Delivery>> {
        let req = Request::get(crate::wire::path(
            route::MESSAGE_DELIVERY,
            &[&id.to_string()],
        ));
        match self.get(req) {
            Ok(d) => Ok(Some(d)),
            // Our server names the message it does not have; any other 404
            // is a server without the endpoint (before v1.2).
            Err(Error::Rejected {
                status: 404,
                detail,
            }) if !detail.starts_with("message ") => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn claims(&self, project: &str, path: &str, within_s: u64) -> Result<Option<Claims>> {
        let req = Request::get(route::CLAIMS)
            .q(query::PROJECT, Some(project))
            .q(query::PATH, Some(path))
            .q(query::WITHIN, Some(within_s));
        match self.get(req) {
            Ok(c) => Ok(Some(c)),
            Err(Error::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn touches(&self, project: &str, path: &str, within_s: u64) -> Result<Vec<Touch>> {
        let req = Request::get(route::TOUCHES)
            .q(query::PROJECT, Some(project))
            .q(query::PATH, Some(path))
            .q(query::WITHIN, Some(within_s));
        match self.get(req) {
            Ok(v) => Ok(v),
            Err(Error::Rejected { status: 404, .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    fn location(&self) -> String {
        self.shown_base().to_string()
    }

    fn is_remote(&self) -> bool {
        true
    }
}

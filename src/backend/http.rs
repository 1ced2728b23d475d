//! The HTTP backend: the coord API over ureq. This is the only client code
//! that knows URL paths and status codes, so adapting to a server that
//! differs is a change to this file alone.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};

use ureq::Agent;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::{Applied, Coord, Page};
use crate::error::{Error, Result};
use crate::model::*;

/// How long to wait for a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a whole command request may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers larger than this are not read.
const MAX_ANSWER_BYTES: u64 = 32 * 1024 * 1024;

pub struct HttpCoord {
    agent: Agent,
    /// `{coord_api}/api/coord`
    base: String,
    /// The same without a password, for every message a person or a model
    /// may read.
    shown_base: String,
    token: Option<String>,
    answer_limit: u64,
    /// v1.1 long-poll: ask the server to hold a message query this long.
    wait: u64,
}

/// The header `coord serve` adds when it answers a write with the answer it
/// gave the same idempotency key before.
pub const REPLAYED_HEADER: &str = "Idempotency-Replayed";
/// v1.1: how many messages matched before the limit.
pub const TOTAL_HEADER: &str = "X-Total-Count";

/// A 2xx answer.
struct Answer {
    status: u16,
    bytes: Vec<u8>,
    replayed: bool,
    total: Option<u64>,
}

enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// One request: what `call` needs to send it.
struct Req<'a> {
    method: Method,
    path: String,
    query: Vec<(&'a str, String)>,
    body: Option<Value>,
}

impl<'a> Req<'a> {
    fn get(path: impl Into<String>) -> Self {
        Req {
            method: Method::Get,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }
    fn with_body(method: Method, path: impl Into<String>, body: Value) -> Self {
        Req {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
        }
    }
    fn q(mut self, k: &'a str, v: Option<impl ToString>) -> Self {
        if let Some(v) = v {
            self.query.push((k, v.to_string()));
        }
        self
    }
}

/// Percent-encodes one path segment (project and component names are free
/// text).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl HttpCoord {
    /// `api` is the `coord_api` base, already validated (no trailing slash).
    pub fn new(api: &str, token: Option<String>, overall: Duration) -> HttpCoord {
        let config = Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT.min(overall)))
            .timeout_global(Some(overall))
            .http_status_as_error(false)
            .user_agent(concat!("coord-hook/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = Agent::with_parts(config, DefaultConnector::default(), LiteralFirst::default());
        let base = format!("{}/api/coord", api.trim_end_matches('/'));
        HttpCoord {
            agent,
            shown_base: crate::identity::redact_url(&base),
            base,
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

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn shown(&self, path: &str) -> String {
        format!("{}{}", self.shown_base, path)
    }

    /// Sends one request; answers the status and the body of a 2xx, or the
    /// error the answer means.
    fn call(&self, req: &Req, key: Option<&str>) -> Result<(u16, Vec<u8>)> {
        self.call_full(req, key).map(|a| (a.status, a.bytes))
    }

    /// `call`, with what the headers say too.
    fn call_full(&self, req: &Req, key: Option<&str>) -> Result<Answer> {
        let url = self.url(&req.path);
        let shown = self.shown(&req.path);
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
            .get(REPLAYED_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let total = resp
            .headers()
            .get(TOTAL_HEADER)
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
        req: &Req,
        key: Option<&str>,
    ) -> ureq::RequestBuilder<B> {
        for (k, v) in &req.query {
            b = b.query(*k, v);
        }
        if let Some(t) = &self.token {
            b = b.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(k) = key {
            b = b.header("Idempotency-Key", k);
        }
        b
    }

    fn parse<T: DeserializeOwned>(&self, req: &Req, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| Error::Protocol {
            endpoint: format!("{} {}", req.method.as_str(), self.shown(&req.path)),
            msg: if std::str::from_utf8(bytes).is_ok_and(|s| s.trim_start().starts_with('<')) {
                "an HTML page instead of JSON".to_string()
            } else {
                format!("not the contract's JSON ({e})")
            },
        })
    }

    fn get<T: DeserializeOwned>(&self, req: Req) -> Result<T> {
        let (_, bytes) = self.call(&req, None)?;
        self.parse(&req, &bytes)
    }

    /// `GET /health`, for `coord status` and the tests.
    pub fn health(&self) -> Result<Value> {
        self.get(Req::get("/health"))
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

/// Reads `detail` from an error answer: a string, or FastAPI's list of
/// `{msg}` objects. Anything else (an HTML page from a proxy) is described,
/// not dumped.
pub fn detail_of(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let text = match v.get("detail")? {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                let msg = i.get("msg").and_then(Value::as_str).unwrap_or("invalid");
                match i.get("loc").and_then(Value::as_array) {
                    Some(loc) if !loc.is_empty() => {
                        let loc: Vec<String> = loc
                            .iter()
                            .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                            .collect();
                        format!("{}: {msg}", loc.join("."))
                    }
                    _ => msg.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    Some(crate::text::cell(&text, 300))
}

fn error_from_answer(status: u16, url: &str, bytes: &[u8]) -> Error {
    let detail = detail_of(bytes).unwrap_or_else(|| {
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
            let lock = serde_json::from_slice::<Value>(bytes)
                .ok()
                .and_then(|v| v.get("lock").cloned())
                .and_then(|l| serde_json::from_value::<Lock>(l).ok());
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
        let req = Req::get("/messages")
            .q("session", Some(&q.session))
            .q("from_session", Some(&q.session))
            .q("limit", Some(limit))
            .q("order", q.newest_first.then_some("desc"));
        let a = self.call_full(&req, None)?;
        let messages: Vec<Message> = self.parse(&req, &a.bytes)?;
        let me = canonical_session(&q.session);
        if messages
            .iter()
            .any(|m| canonical_session(&m.from_session) != me || m.read_by.is_none())
        {
            return Err(Error::Failed(format!(
                "the coord API at {} does not list sent messages (a v1 server without from_session)",
                self.shown_base
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
        let req = match w {
            Write::SendMessage(m) => Req::with_body(Method::Post, "/messages", to_value(m)),
            Write::MarkRead { id, session } => Req::with_body(
                Method::Post,
                format!("/messages/{id}/read"),
                json!({ "session": session }),
            ),
            Write::AddTodo(t) => Req::with_body(Method::Post, "/todos", to_value(t)),
            Write::CompleteTodo { id, completed_by } => Req::with_body(
                Method::Post,
                format!("/todos/{id}/done"),
                json!({ "completed_by": completed_by }),
            ),
            Write::ClaimLock(l) => Req::with_body(Method::Post, "/locks", to_value(l)),
            Write::ReleaseLock {
                id,
                session_id,
                force,
            } => Req {
                method: Method::Delete,
                path: format!("/locks/{id}"),
                query: Vec::new(),
                body: None,
            }
            .q("session_id", Some(session_id))
            .q("force", force.then_some("true")),
            Write::SetComponent {
                project,
                component,
                update,
            } => Req::with_body(
                Method::Put,
                format!("/components/{}/{}", seg(project), seg(component)),
                to_value(update),
            ),
            Write::SetWorkflow { name, update } => Req::with_body(
                Method::Put,
                format!("/workflows/{}", seg(name)),
                to_value(update),
            ),
            Write::TouchSession { session_id, update } => Req::with_body(
                Method::Put,
                format!("/sessions/{}", seg(session_id)),
                to_value(update),
            ),
        };
        let Answer {
            status,
            bytes,
            replayed,
            ..
        } = self.call_full(&req, Some(key))?;
        let written = match w {
            Write::SendMessage(_) | Write::MarkRead { .. } => {
                Written::Message(self.parse(&req, &bytes)?)
            }
            Write::AddTodo(_) | Write::CompleteTodo { .. } => {
                Written::Todo(self.parse(&req, &bytes)?)
            }
            Write::ClaimLock(_) | Write::ReleaseLock { .. } => Written::Lock {
                lock: self.parse(&req, &bytes)?,
                created: status == 201,
            },
            Write::SetComponent { .. } => Written::Component(self.parse(&req, &bytes)?),
            Write::SetWorkflow { .. } => Written::Workflow(self.parse(&req, &bytes)?),
            Write::TouchSession { .. } => Written::Session(self.parse(&req, &bytes)?),
        };
        Ok(Applied { written, replayed })
    }

    fn messages_page(&self, q: &MessageQuery) -> Result<Page> {
        let limit = q.limit.unwrap_or(DEFAULT_MESSAGE_LIMIT);
        if q.sent {
            return self.sent(q, limit);
        }
        let ask = |limit: u32| -> Result<(Vec<Message>, Option<u64>)> {
            let req = Req::get("/messages")
                .q("session", Some(&q.session))
                .q("unread", q.unread_only.then_some("true"))
                .q("limit", Some(limit))
                .q("order", q.newest_first.then_some("desc"))
                .q("after_id", q.after_id)
                .q("wait", (self.wait > 0).then_some(self.wait));
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
            Req::get("/todos")
                .q("user", q.user.as_ref())
                .q("include_unassigned", q.include_unassigned.then_some("true"))
                .q("project", q.project.as_ref())
                .q("status", Some(q.status.as_str()))
                .q("limit", q.limit)
                .q("after_id", q.after_id),
        )
    }

    fn locks(&self, q: &LockQuery) -> Result<Vec<Lock>> {
        self.get(
            Req::get("/locks")
                .q("project", q.project.as_ref())
                .q("session_id", q.session_id.as_ref())
                .q("limit", q.limit)
                .q("after_id", q.after_id),
        )
    }

    fn status(&self) -> Result<Status> {
        self.get(Req::get("/status"))
    }

    fn sessions(&self, active_within: Option<u64>) -> Result<Option<Vec<Session>>> {
        match self.get(Req::get("/sessions").q("active_within", active_within)) {
            Ok(v) => Ok(Some(v)),
            // A v1 server: no sessions. Quietly off.
            Err(Error::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn location(&self) -> String {
        self.shown_base.clone()
    }

    fn is_remote(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_in_both_shapes() {
        assert_eq!(detail_of(br#"{"detail":"nope"}"#).as_deref(), Some("nope"));
        assert_eq!(
            detail_of(br#"{"detail":[{"loc":["body","text"],"msg":"field required"}]}"#).as_deref(),
            Some("body.text: field required")
        );
        assert_eq!(detail_of(b"<html>502</html>"), None);
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("web app/api"), "web%20app%2Fapi");
    }
}

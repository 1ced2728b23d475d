//! The HTTP contract (`docs/API.md`) in one module that the client and
//! `coord serve` share: where each write goes, the query and header names,
//! the limits, the status each written object answers with, the shape of an
//! answer per write, and the error body. Adapting to a server that differs
//! is a change here.

use serde_json::{Value, json};

use crate::model::{Lock, Write, Written};

/// Every path below is under `{coord_api}` + this.
pub const PREFIX: &str = "/api/coord";

/// Request bodies larger than this are answered 413 (and the client refuses
/// to send, or queue, a write that large).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 200;
/// The longest `wait` a long-poll may ask for, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;

/// Header names.
pub mod header {
    /// Every write carries one (a uuid v4); a repeat is applied once.
    pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
    /// On a write answered with the answer given to the same key before.
    pub const REPLAYED: &str = "Idempotency-Replayed";
    /// v1.1: how many matched before `limit`.
    pub const TOTAL: &str = "X-Total-Count";
}

/// Query parameter names.
pub mod query {
    pub const SESSION: &str = "session";
    pub const FROM_SESSION: &str = "from_session";
    pub const UNREAD: &str = "unread";
    pub const LIMIT: &str = "limit";
    pub const ORDER: &str = "order";
    pub const AFTER_ID: &str = "after_id";
    pub const WAIT: &str = "wait";
    pub const USER: &str = "user";
    pub const INCLUDE_UNASSIGNED: &str = "include_unassigned";
    pub const PROJECT: &str = "project";
    pub const STATUS: &str = "status";
    pub const SESSION_ID: &str = "session_id";
    pub const FORCE: &str = "force";
    pub const ACTIVE_WITHIN: &str = "active_within";
    pub const PATH: &str = "path";
    pub const WITHIN: &str = "within";
}

/// Route templates, as the server's router names them; the client fills
/// them with `path`.
pub mod route {
    pub const HEALTH: &str = "/health";
    pub const STATUS: &str = "/status";
    pub const MESSAGES: &str = "/messages";
    pub const MESSAGE_READ: &str = "/messages/{id}/read";
    pub const TODOS: &str = "/todos";
    pub const TODO_DONE: &str = "/todos/{id}/done";
    pub const LOCKS: &str = "/locks";
    pub const LOCK: &str = "/locks/{id}";
    pub const COMPONENT: &str = "/components/{project}/{component}";
    pub const WORKFLOW: &str = "/workflows/{name}";
    pub const SESSIONS: &str = "/sessions";
    pub const SESSION: &str = "/sessions/{id}";
    /// v1.2 delivery.
    pub const MESSAGES_SHOWN: &str = "/messages/shown";
    pub const MESSAGE_DELIVERY: &str = "/messages/{id}/delivery";
    /// v1.2 edits a session made (the guard's awareness).
    pub const TOUCHES: &str = "/touches";
    /// v1.2: a project's claims and a file's recent edits, for the guard.
    pub const CLAIMS: &str = "/claims";
}

/// A route template with its `{…}` parts filled, in order, each
/// percent-encoded as one path segment.
pub fn path(template: &str, parts: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut parts = parts.iter();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str(&segment(parts.next().copied().unwrap_or("")));
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// Percent-encodes one path segment (project and component names are free
/// text).
pub fn segment(s: &str) -> String {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// One request of the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    /// Under `PREFIX`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl Request {
    pub fn get(path: impl Into<String>) -> Request {
        Request {
            method: Method::Get,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    fn with_body(method: Method, path: impl Into<String>, body: Value) -> Request {
        Request {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
        }
    }

    /// Adds a query parameter when it has a value.
    pub fn q(mut self, k: &'static str, v: Option<impl ToString>) -> Request {
        if let Some(v) = v {
            self.query.push((k, v.to_string()));
        }
        self
    }
}

fn value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Where write `w` goes, and with what.
pub fn request_for(w: &Write) -> Request {
    let id = |n: &i64| n.to_string();
    match w {
        Write::SendMessage(m) => Request::with_body(Method::Post, route::MESSAGES, value(m)),
        Write::MarkRead { id: n, session } => Request::with_body(
            Method::Post,
            path(route::MESSAGE_READ, &[&id(n)]),
            json!({ "session": session }),
        ),
        Write::AddTodo(t) => Request::with_body(Method::Post, route::TODOS, value(t)),
        Write::CompleteTodo {
            id: n,
            completed_by,
        } => Request::with_body(
            Method::Post,
            path(route::TODO_DONE, &[&id(n)]),
            json!({ "completed_by": completed_by }),
        ),
        Write::ClaimLock(l) => Request::with_body(Method::Post, route::LOCKS, value(l)),
        Write::ReleaseLock {
            id: n,
            session_id,
            force,
        } => Request {
            method: Method::Delete,
            path: path(route::LOCK, &[&id(n)]),
            query: Vec::new(),
            body: None,
        }
        .q(query::SESSION_ID, Some(session_id))
        .q(query::FORCE, force.then_some("true")),
        Write::SetComponent {
            project,
            component,
            update,
        } => Request::with_body(
            Method::Put,
            path(route::COMPONENT, &[project, component]),
            value(update),
        ),
        Write::SetWorkflow { name, update } => {
            Request::with_body(Method::Put, path(route::WORKFLOW, &[name]), value(update))
        }
        Write::TouchSession { session_id, update } => Request::with_body(
            Method::Put,
            path(route::SESSION, &[session_id]),
            value(update),
        ),
        Write::TouchFiles {
            session_id,
            project,
            paths,
        } => Request::with_body(
            Method::Post,
            route::TOUCHES,
            json!({ "session_id": session_id, "project": project, "paths": paths }),
        ),
        Write::MarkShown { session, ids } => Request::with_body(
            Method::Post,
            route::MESSAGES_SHOWN,
            json!({ "session": session, "ids": ids }),
        ),
    }
}

/// The status a write answers with (also stored with its idempotency key,
/// so a replay answers the same): 201 for a new message, todo or lock, 200
/// for everything else.
pub fn status_for(w: &Write, out: &Written) -> u16 {
    match (w, out) {
        (_, Written::Lock { created: true, .. }) => 201,
        (Write::SendMessage(_) | Write::AddTodo(_), _) => 201,
        _ => 200,
    }
}

/// Reads the answer to write `w` (status and body of a 2xx) as the object
/// that write returns.
pub fn written_from(w: &Write, status: u16, bytes: &[u8]) -> serde_json::Result<Written> {
    Ok(match w {
        Write::SendMessage(_) | Write::MarkRead { .. } => {
            Written::Message(serde_json::from_slice(bytes)?)
        }
        Write::AddTodo(_) | Write::CompleteTodo { .. } => {
            Written::Todo(serde_json::from_slice(bytes)?)
        }
        Write::ClaimLock(_) | Write::ReleaseLock { .. } => Written::Lock {
            lock: serde_json::from_slice(bytes)?,
            created: status == 201,
        },
        Write::SetComponent { .. } => Written::Component(serde_json::from_slice(bytes)?),
        Write::SetWorkflow { .. } => Written::Workflow(serde_json::from_slice(bytes)?),
        Write::TouchSession { .. } => Written::Session(serde_json::from_slice(bytes)?),
        Write::TouchFiles { .. } | Write::MarkShown { .. } => Written::Recorded(recorded(bytes)?),
    })
}

/// The count a record-only write answers (`{"recorded": n}`).
pub fn recorded(bytes: &[u8]) -> serde_json::Result<u64> {
    #[derive(serde::Deserialize)]
    struct R {
        #[serde(default)]
        recorded: u64,
    }
    serde_json::from_slice::<R>(bytes).map(|r| r.recorded)
}

/// The body of every non-2xx answer; a 409 on a lock names the holder's
/// lock too.
pub fn error_body(detail: &str, lock: Option<&Lock>) -> Value {
    let mut body = json!({ "detail": detail });
    if let Some(l) = lock {
        body["lock"] = value(l);
    }
    body
}

/// Reads `detail` from an error answer: a string, or FastAPI's list of
/// `{msg}` objects. Anything else (an HTML page from a proxy) is None.
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

/// The lock a 409 answer names, when it names one.
pub fn conflict_lock(bytes: &[u8]) -> Option<Lock> {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("lock").cloned())
        .and_then(|l| serde_json::from_value::<Lock>(l).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            path(route::COMPONENT, &["web app", "a/b"]),
            "/components/web%20app/a%2Fb"
        );
        assert_eq!(path(route::MESSAGE_READ, &["12"]), "/messages/12/read");
        assert_eq!(path(route::SESSION, &["BOX/x"]), "/sessions/BOX%2Fx");
    }

    #[test]
    fn detail_in_both_shapes() {
        assert_eq!(detail_of(br#"{"detail":"no"}"#).as_deref(), Some("no"));
        assert_eq!(
            detail_of(br#"{"detail":[{"loc":["body","x"],"msg":"bad"}]}"#).as_deref(),
            Some("body.x: bad")
        );
        assert_eq!(detail_of(b"<html>"), None);
    }
}

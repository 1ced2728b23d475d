//! Writes: the one `Write` enum that the queue stores, the server's
//! idempotency replays and every engine applies, and what each answers.

use serde::{Deserialize, Serialize};

use super::*;

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
    /// v1.2: repository-relative globs this claim covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
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
    /// v1.1 presence: creates or refreshes a session's `last_seen`; v1.2:
    /// with `state: closed`, marks its window ended.
    TouchSession {
        session_id: String,
        update: SessionUpdate,
    },
    /// v1.2: the files of `project` (repository-relative, `/`) that a
    /// session has just edited.
    TouchFiles {
        session_id: String,
        project: String,
        paths: Vec<String>,
    },
    /// v1.2: the messages a hook put into `session`'s context (the first
    /// time counts).
    MarkShown {
        session: String,
        ids: Vec<i64>,
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
            Write::TouchFiles { .. } => "touch_files",
            Write::MarkShown { .. } => "mark_shown",
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
            Write::TouchSession { session_id, update }
                if update.state.as_deref() == Some(CLOSED) =>
            {
                format!("session {session_id} closed")
            }
            Write::TouchSession { session_id, .. } => format!("session {session_id} seen"),
            Write::TouchFiles { project, paths, .. } => {
                format!("{} file(s) of {project} edited", paths.len())
            }
            Write::MarkShown { ids, .. } => format!("{} message(s) shown", ids.len()),
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
    /// How many rows a record-only write (`TouchFiles`, `MarkShown`)
    /// changed.
    Recorded(u64),
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
            Written::Recorded(n) => Ok(serde_json::json!({ "recorded": n })),
        };
        v.unwrap_or(serde_json::Value::Null)
    }
}

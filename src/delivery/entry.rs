//! One queued write as one line of the queue file: the write, its
//! idempotency key (kept for every replay) and who wrote it for which API.

use serde::{Deserialize, Serialize};

use crate::model::{Time, Write};

/// The line format's version.
pub const VERSION: u32 = 1;

/// Who wrote the entry (for the person reading the queue; delivery uses the
/// identity in force when it is replayed, and never stores a token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrittenBy {
    pub user: String,
    pub machine: String,
    pub session: String,
    #[serde(default)]
    pub api: Option<String>,
}

/// One queued write: one line of the queue file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub v: u32,
    /// The Idempotency-Key, the same on every replay.
    pub key: String,
    #[serde(flatten)]
    pub write: Write,
    pub identity: WrittenBy,
    #[serde(with = "crate::model::time_serde")]
    pub queued_at: Time,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
}

impl Entry {
    pub fn new(write: Write, key: String, identity: WrittenBy) -> Entry {
        Entry {
            v: VERSION,
            key,
            write,
            identity,
            queued_at: crate::clock::now(),
            attempts: 0,
            last_error: None,
        }
    }

    /// One line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_line(line: &str) -> std::result::Result<Entry, String> {
        let e: Entry = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if e.v != VERSION {
            return Err(format!("queue line version {} is not {VERSION}", e.v));
        }
        Ok(e)
    }
}

/// The longest queue line read: a write the server accepts is under 1 MiB
/// (the CLI refuses larger ones before queueing), so a longer line is
/// damage, and is set aside by `coord sync`, never parsed.
pub const MAX_LINE_BYTES: usize = 2 * 1024 * 1024;

/// A line of the queue file as read.
pub(super) enum Line {
    Text(String),
    /// Over `MAX_LINE_BYTES`: only its start is kept, to name it.
    TooLong {
        start: String,
        len: usize,
    },
}

impl Line {
    /// What the progress file records for this line: its key, or a hash of
    /// a line that has none.
    pub(super) fn id(&self) -> String {
        match self {
            Line::Text(t) => match Entry::from_line(t) {
                Ok(e) => format!("key:{}", e.key),
                Err(_) => hash_id(t.as_bytes()),
            },
            Line::TooLong { start, len } => hash_id(format!("{len}:{start}").as_bytes()),
        }
    }
}

pub(super) fn hash_id(bytes: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same line hashes the same in every run.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("line:{:016x}", h.finish())
}

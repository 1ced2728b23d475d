//! Reads: what the hook, the commands and the server ask for, and the
//! contract's limits on lists.

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

impl LockQuery {
    /// The live claims of `project`, all of them (what the guard asks).
    pub fn claims_of(project: &str) -> LockQuery {
        LockQuery {
            project: Some(project.to_string()),
            limit: Some(MAX_LIST_LIMIT),
            ..Default::default()
        }
    }
}

/// v1.2: what a list endpoint answers when no `limit` is given, and the
/// most it answers at all.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
pub const MAX_LIST_LIMIT: u32 = 1000;

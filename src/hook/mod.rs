//! The hook: what Claude Code runs at session start (the block of unread
//! messages, todos and locks), before each prompt (what is new) and while
//! a session is idle (the waiter). It always exits 0 (the waiter's 2 is
//! how Claude Code is told to wake the session).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use crate::backend::Coord;
use crate::client::HttpCoord;
use crate::connect;
use crate::delivery::Queue;
use crate::error::Error;
use crate::identity::{Identity, Source, env_var, redact_url};
use crate::model::*;
use crate::presence::{
    PRESENCE_GRACE, presence, presence_is_fresh, presence_stamp, stamp_presence,
};
use crate::render::{self, Style};
use crate::text::{escape_controls, quoted, shell_word};
use crate::window::{UNNAMED, name_this_window, window_id};

/// The overall deadline when nothing else is configured.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// Claude Code drops hook output over 10,000 characters; stay well under.
pub const MAX_OUTPUT: usize = 9_500;
/// The longest body shown; longer ones are cut with a marker.
pub const MAX_BODY: usize = 2_000;
/// Locks expiring sooner than this are flagged.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(15 * 60);
/// The most stdin the hook reads, and how long it waits for it.
const MAX_INPUT: u64 = 1024 * 1024;
pub(crate) const INPUT_WAIT: Duration = Duration::from_millis(250);

pub mod block;
pub mod commit;
mod fetch;
pub mod guard;
mod input;
pub mod prompt;
pub mod report;
mod start;
pub mod wait;

pub use block::*;
pub use fetch::*;
pub use input::*;
pub use start::*;

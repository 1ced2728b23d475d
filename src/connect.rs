//! The one place that picks the embedded store or the coord API, with the
//! budget of whoever asks: a command (5 s, the store created when
//! missing), a hook (what is left of its deadline, answers bounded, a
//! store never created by a read), a long-poll (the same, held by the
//! server up to `wait` seconds).

use std::time::{Duration, Instant};

use crate::backend::Coord;
use crate::client::{COMMAND_TIMEOUT, HttpCoord};
use crate::error::Result;
use crate::identity::Identity;
use crate::store::LocalStore;

/// The most an answer may hold in a hook: parsing more would not fit the
/// deadline, and a block shows under 10,000 characters anyway.
pub const MAX_HOOK_ANSWER_BYTES: u64 = 4 * 1024 * 1024;

/// Who asks, and how long they may wait.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// A command: the usual timeout; the store is created when missing.
    Command,
    /// A hook, until `deadline`: reads only, bounded answers.
    Hook { deadline: Instant },
    /// A session start, until `deadline`: as a hook, but it creates the
    /// embedded store (its presence goes there).
    SessionStart { deadline: Instant },
    /// A long-poll until `deadline`, the server holding it up to `wait`
    /// seconds.
    LongPoll { deadline: Instant, wait: u64 },
}

/// The backend an identity names.
pub enum Backend {
    Store(LocalStore),
    Api(HttpCoord),
}

impl Backend {
    pub fn coord(&self) -> &dyn Coord {
        match self {
            Backend::Store(s) => s,
            Backend::Api(c) => c,
        }
    }

    pub fn into_coord(self) -> Box<dyn Coord> {
        match self {
            Backend::Store(s) => Box::new(s),
            Backend::Api(c) => Box::new(c),
        }
    }
}

/// Opens the backend `id` names for `budget`. None only for a hook on a
/// machine whose embedded store does not exist yet: there is nothing to
/// read, and a read creates nothing.
pub fn open(id: &Identity, budget: Budget) -> Result<Option<Backend>> {
    let left = |deadline: Instant| deadline.saturating_duration_since(Instant::now());
    match (&id.api, budget) {
        (_, Budget::Command) => command(id).map(Some),
        (
            None,
            Budget::Hook { deadline }
            | Budget::SessionStart { deadline }
            | Budget::LongPoll { deadline, .. },
        ) => {
            // Only a session start creates the store.
            let creates = matches!(budget, Budget::SessionStart { .. });
            if !creates && !id.db_path.exists() {
                return Ok(None);
            }
            LocalStore::open_for_reading(&id.db_path, left(deadline))
                .map(|s| Some(Backend::Store(s)))
        }
        (Some(api), Budget::Hook { deadline } | Budget::SessionStart { deadline }) => {
            Ok(Some(Backend::Api(hook_client(id, api, left(deadline)))))
        }
        (Some(api), Budget::LongPoll { deadline, wait }) => Ok(Some(Backend::Api(
            hook_client(id, api, left(deadline)).with_wait(wait),
        ))),
    }
}

fn hook_client(id: &Identity, api: &str, within: Duration) -> HttpCoord {
    HttpCoord::for_identity(id, api, within).with_answer_limit(MAX_HOOK_ANSWER_BYTES)
}

/// A command's backend: the store (created when missing) or the API with
/// the usual timeout.
fn command(id: &Identity) -> Result<Backend> {
    Ok(match &id.api {
        None => Backend::Store(LocalStore::open(&id.db_path)?),
        Some(api) => Backend::Api(HttpCoord::for_identity(id, api, COMMAND_TIMEOUT)),
    })
}

/// A command's backend, as the `Coord` it is used through.
pub fn for_command(id: &Identity) -> Result<Box<dyn Coord>> {
    command(id).map(Backend::into_coord)
}

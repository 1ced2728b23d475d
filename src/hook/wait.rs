//! `coord-hook wait`: Claude Code's asyncRewake waiter. It waits, without
//! burning CPU, for a message this window has not been shown, prints it on
//! stderr and exits 2 — which starts a new turn in an idle session. One
//! waiter per window: a newer one takes over and the older exits 0; it
//! exits 0 when the window's process is gone, and at once outside an
//! interactive session (`claude -p` would block on it).

use std::time::{Duration, Instant};

use crate::identity::Identity;
use crate::window;

use super::prompt;

/// Exit codes: 0 nothing to wake, 2 wake the session.
pub const WAKE: u8 = 2;
pub const QUIET: u8 = 0;

/// How long one long-poll asks `coord serve` to hold its answer (also how
/// soon a superseded or orphaned waiter notices, at worst).
const LONG_POLL_SECS: u64 = 10;
/// How often the waiter asks the registry whether it is still the window's
/// waiter, and between polls of a server that does not hold.
const LOCAL_EVERY: Duration = Duration::from_millis(400);
/// How often it looks at the embedded store's change counter (one pragma,
/// no read unless something changed): the wake-up's worst delay.
const CHANGE_EVERY: Duration = Duration::from_millis(50);
/// How long it keeps the embedded store open before opening it afresh.
const REOPEN_EVERY: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_secs(3);
/// How long a waiter started beside the session-start block waits for it
/// to name the window and write what it showed, and how often it looks.
const BLOCK_WAIT: Duration = Duration::from_secs(15);
const BLOCK_POLL: Duration = Duration::from_millis(50);
/// A block written this recently before the waiter started counts as the
/// one it was started beside (a hook is stopped at 10 s).
const BLOCK_RECENT_MS: i64 = 10_000;
/// How often the waiter refreshes this session's presence.
const PRESENCE_EVERY: Duration = Duration::from_secs(300);
/// The most a wake-up prints (Claude Code takes more here, but a turn
/// should start with a readable amount).
const MAX_WAKE_TEXT: usize = 9_000;

/// Claude Code runs it interactively: a wake-up has someone to reach.
pub fn interactive() -> bool {
    let attended = std::env::var("CLAUDE_CODE_SESSION_ATTENDED").ok();
    let entry = std::env::var("CLAUDE_CODE_ENTRYPOINT").ok();
    attended.as_deref() == Some("1") || (attended.is_none() && entry.as_deref() == Some("cli"))
}

/// Runs the waiter; answers the exit code.
pub fn run(identity: Option<&std::path::Path>) -> u8 {
    if !interactive() {
        return QUIET;
    }
    let Some(pid) = crate::window::claude_pid() else {
        return QUIET;
    };
    let window = window::WindowId {
        pid: Some(pid),
        conversation: None,
    };
    let window = &window;
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let Ok(mut id) = Identity::load(identity, &cwd) else {
        return QUIET;
    };
    let registry = window::registry(&id.state_dir);
    // Claude Code starts the session-start block and this waiter at once:
    // wait (bounded) until the block has named the window and written
    // what it shows, so that neither misses nor repeats a message.
    // Started by SessionStart, it runs beside the block: a block written
    // since shortly before this waiter started is that one (the block's
    // hook takes at most 8 s). Started by Stop, there is none to wait for.
    let input = super::read_input(super::INPUT_WAIT);
    let beside_block = input.hook_event_name.as_deref() == Some("SessionStart");
    let until = Instant::now() + BLOCK_WAIT;
    let since = chrono::Utc::now().timestamp_millis() - BLOCK_RECENT_MS;
    let name = loop {
        match registry.name_of(window) {
            Ok(Some((name, at))) if !beside_block || at >= since => break Some(name),
            Ok(Some((name, _))) if Instant::now() >= until => break Some(name),
            Ok(None) if Instant::now() >= until => break None,
            _ if !window::alive(pid) => return QUIET,
            _ => std::thread::sleep(BLOCK_POLL),
        }
    };
    let Some(name) = name else {
        return QUIET;
    };
    if !id.session_explicit {
        id.session = name;
    }
    let me = std::process::id();
    if !matches!(registry.set_waiter(window, me), Ok(true)) {
        return QUIET;
    }
    // What this machine's windows were shown, and which ended, reach the
    // store from here (v1.2 delivery), off the hooks' hot path.
    super::report::spawn_reporter(&id, window);
    let mut last_presence: Option<Instant> = None;
    let mut after = 0;
    let mut checked: Option<Instant> = None;
    let mut watch: Option<Watch> = None;
    loop {
        // Gone with its window, or superseded by a newer waiter (asked at
        // most every LOCAL_EVERY: the change check below runs far more
        // often on the embedded store).
        if checked.is_none_or(|t| t.elapsed() >= LOCAL_EVERY) {
            let Ok(Some(a)) = registry.waiting_after(window, me) else {
                if !window::alive(pid) {
                    // The window ended: the store hears of it now.
                    super::report::closes(&id);
                }
                return QUIET;
            };
            after = a;
            checked = Some(Instant::now());
        }
        if last_presence.is_none_or(|t| t.elapsed() >= PRESENCE_EVERY) {
            touch(&id, &cwd);
            last_presence = Some(Instant::now());
        }
        let asked = Instant::now();
        let hold = if id.api.is_some() { LONG_POLL_SECS } else { 0 };
        let deadline = asked + Duration::from_secs(hold + 10);
        let page = if id.api.is_none() {
            // The embedded store: read only when another connection has
            // committed something since the last look.
            match Watch::changed(&mut watch, &id, deadline) {
                Some(true) => prompt::unread_in(&watch, &id, (after > 0).then_some(after)),
                _ => {
                    std::thread::sleep(CHANGE_EVERY);
                    continue;
                }
            }
        } else {
            // coord serve holds the answer until something newer than what
            // this window was shown arrives.
            prompt::unread(&id, deadline, (after > 0).then_some(after), hold)
        };
        if let Ok(page) = page {
            let head = |n| {
                format!(
                    "{} — they arrived while this session was idle; read them and act on them as the user would want.",
                    prompt::head(&id, n)
                )
            };
            if let Some(text) = prompt::show_new(&registry, window, page, head, MAX_WAKE_TEXT) {
                crate::out::note(text.trim_end());
                super::report::wake_shown(&id, window);
                return WAKE;
            }
        }
        // Nothing new. A server that held the answer needs no pause; one
        // that answered at once (a v1 server, or a failure) gets a bounded
        // interval, as does the embedded store.
        let pause = match id.api {
            None => CHANGE_EVERY,
            Some(_) if asked.elapsed() >= Duration::from_secs(hold.saturating_sub(1)) => {
                Duration::ZERO
            }
            Some(_) => POLL_EVERY,
        };
        std::thread::sleep(pause);
    }
}

/// The embedded store, kept open between looks (and opened afresh every
/// `REOPEN_EVERY`, so the file is never pinned for long), with the change
/// counter it last saw.
pub(crate) struct Watch {
    pub(crate) store: crate::store::LocalStore,
    opened: Instant,
    version: Option<i64>,
}

impl Watch {
    /// Whether another connection has committed since the last look (true
    /// at the first); None when the store cannot be opened or read now.
    fn changed(watch: &mut Option<Watch>, id: &Identity, deadline: Instant) -> Option<bool> {
        if watch
            .as_ref()
            .is_none_or(|w| w.opened.elapsed() >= REOPEN_EVERY)
        {
            let budget = crate::connect::Budget::Hook { deadline };
            *watch = match crate::connect::open(id, budget) {
                Ok(Some(crate::connect::Backend::Store(store))) => Some(Watch {
                    store,
                    opened: Instant::now(),
                    version: None,
                }),
                _ => None,
            };
        }
        let w = watch.as_mut()?;
        let v = w.store.data_version().ok()?;
        let changed = w.version != Some(v);
        w.version = Some(v);
        Some(changed)
    }
}

/// Refreshes presence, ignoring failures (a v1 server has no sessions).
fn touch(id: &Identity, cwd: &std::path::Path) {
    let w = crate::presence::presence(id, cwd);
    let _ = crate::connect::for_command(id).and_then(|b| b.write(&w, None));
}

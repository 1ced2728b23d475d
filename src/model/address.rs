//! Addresses: what a person types expanded to `MACHINE/NAME`, the one
//! canonical form, and the one grammar for client, server and `--force`.

use super::*;

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
            Write::TouchFiles { session_id, .. } => check("session_id", session_id),
            Write::MarkShown { session, .. } => check("session", session),
            _ => Ok(()),
        }
    }
}

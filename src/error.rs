//! Errors as values with a kind the caller can act on, and the exit codes
//! they map to.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::model::{Lock, format_time};

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const LOCK_HELD: u8 = 3;
}

#[derive(Debug)]
pub enum Error {
    /// The command line was wrong (exit 2).
    Usage(String),
    /// A local file or setting is broken: names the file and what is wrong.
    BadInput { path: PathBuf, msg: String },
    /// The API could not be reached at all: refused, DNS, timeout, TLS.
    /// Writes of this kind are safe to queue.
    Unreachable { url: String, reason: String },
    /// The server's TLS certificate is not one this machine trusts: a
    /// setting to fix (`coord_ca`), not a network to wait for.
    Untrusted { url: String, reason: String },
    /// The server said no (4xx other than a lock conflict). Never queued.
    Rejected { status: u16, detail: String },
    /// A lock is held by another session (exit 3).
    Conflict {
        detail: String,
        lock: Option<Box<Lock>>,
    },
    /// The server failed (5xx): retrying later may work.
    Server {
        status: u16,
        url: String,
        detail: String,
    },
    /// A 2xx whose body is not what the contract says.
    Protocol { endpoint: String, msg: String },
    /// The embedded store failed.
    Store { path: PathBuf, msg: String },
    /// The server's store cannot be reached now (PostgreSQL down): `coord
    /// serve` answers 503, and the clients' writes wait or go elsewhere.
    Unavailable(String),
    /// A failure whose one-line message says it all.
    Failed(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn not_found(what: impl fmt::Display) -> Self {
        Error::Rejected {
            status: 404,
            detail: format!("{what} not found"),
        }
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        Error::Rejected {
            status: 422,
            detail: detail.into(),
        }
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Error::Rejected {
            status: 403,
            detail: detail.into(),
        }
    }
    pub fn bad_input(path: &Path, msg: impl Into<String>) -> Self {
        Error::BadInput {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            // An id that names nothing is a wrong command line, whichever
            // command gave it (`msg read 999` as `msg reply 999`).
            Error::Usage(_) | Error::Rejected { status: 404, .. } => exit::USAGE,
            Error::Conflict { .. } => exit::LOCK_HELD,
            _ => exit::FAILED,
        }
    }

    /// The HTTP status `coord serve` answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Usage(_) => 400,
            Error::Rejected { status, .. } => *status,
            Error::Conflict { .. } => 409,
            Error::Unavailable(_) => 503,
            _ => 500,
        }
    }

    /// The `detail` text for an HTTP error body.
    pub fn detail(&self) -> String {
        match self {
            Error::Rejected { detail, .. } | Error::Conflict { detail, .. } => detail.clone(),
            // Never leak local paths or internals over the wire.
            Error::Store { .. } => "internal store error".into(),
            Error::Unavailable(_) => "the coord store is unavailable; try again".into(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m}"),
            Error::BadInput { path, msg } => write!(f, "{}: {msg}", path.display()),
            Error::Unreachable { url, reason } => {
                write!(f, "coord API unreachable at {url}: {reason}")
            }
            Error::Untrusted { url, reason } => write!(
                f,
                "the coord server at {url} has a TLS certificate this machine does not trust ({reason}): \
                 set coord_ca in identity.json (or COORD_CA) to the PEM certificate of the CA that signed it"
            ),
            Error::Rejected { detail, .. } => write!(f, "{detail}"),
            Error::Conflict { detail, lock } => match lock {
                Some(l) => write!(
                    f,
                    "{}/{} is held by {} until {}",
                    l.project,
                    l.resource,
                    l.session_id,
                    format_time(&l.expires_at)
                ),
                None => write!(f, "{detail}"),
            },
            Error::Server {
                status,
                url,
                detail,
            } => {
                write!(f, "coord API failed with HTTP {status} at {url}: {detail}")
            }
            Error::Protocol { endpoint, msg } => {
                write!(f, "unexpected answer from {endpoint}: {msg}")
            }
            Error::Store { path, msg } if path.to_string_lossy().starts_with("postgres") => {
                write!(f, "PostgreSQL store {}: {msg}", path.display())
            }
            Error::Store { path, msg } => write!(f, "local store {}: {msg}", path.display()),
            Error::Failed(m) | Error::Unavailable(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

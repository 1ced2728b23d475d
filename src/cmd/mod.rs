//! One file per command family; this file holds what they share: the
//! context (identity, output mode, backend) and the output helpers.

pub mod lock;
pub mod msg;
pub mod state;
pub mod todo;

use std::io::{IsTerminal, Read, Write as _};
use std::path::Path;

use serde::Serialize;

use crate::backend::http::{self, HttpCoord};
use crate::backend::{Coord, local::LocalStore};
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::model::Written;
use crate::render::Style;

pub struct Ctx {
    pub identity: Identity,
    pub json: bool,
    pub style: Style,
}

impl Ctx {
    pub fn new(identity: Identity, json: bool, no_color: bool) -> Ctx {
        Ctx {
            identity,
            json,
            style: Style::detect(no_color, std::io::stdout().is_terminal()),
        }
    }

    pub fn session_id(&self) -> String {
        self.identity.session_id()
    }

    /// The backend the identity asks for.
    pub fn backend(&self) -> Result<Box<dyn Coord>> {
        open_backend(&self.identity)
    }

    /// Runs a write. (Offline queueing hooks in here.)
    pub fn write(&self, w: &crate::model::Write) -> Result<Written> {
        self.backend()?.write(w, None)
    }

    /// Prints either the JSON value or the human text.
    pub fn emit<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(s) => out(&format!("{s}\n")),
                Err(e) => note(&format!("cannot encode JSON: {e}")),
            }
        } else {
            out(&human());
        }
    }
}

pub fn open_backend(identity: &Identity) -> Result<Box<dyn Coord>> {
    match &identity.api {
        None => Ok(Box::new(LocalStore::open(&identity.db_path)?)),
        Some(url) => Ok(Box::new(HttpCoord::new(
            url,
            identity.token.clone(),
            http::COMMAND_TIMEOUT,
        ))),
    }
}

/// Writes to stdout; a closed pipe (`coord … | head`) is not an error.
pub fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes()).and_then(|_| o.flush());
}

/// A one-line note on stderr.
pub fn note(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}

/// Text from an argument (`-` = stdin) or a file, exactly as given.
pub fn read_text(arg: Option<String>, file: Option<&Path>, what: &str) -> Result<String> {
    let text = match (arg, file) {
        (Some(a), None) if a == "-" => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(|e| {
                Error::bad_input(Path::new("<stdin>"), format!("cannot read {what}: {e}"))
            })?;
            String::from_utf8(buf).map_err(|_| {
                Error::bad_input(Path::new("<stdin>"), format!("{what} is not valid UTF-8"))
            })?
        }
        (Some(a), None) => a,
        (None, Some(f)) => {
            let bytes = std::fs::read(f)
                .map_err(|e| Error::bad_input(f, format!("cannot read {what}: {e}")))?;
            String::from_utf8(bytes)
                .map_err(|_| Error::bad_input(f, format!("{what} is not valid UTF-8")))?
        }
        (None, None) => String::new(),
        (Some(_), Some(_)) => return Err(Error::Usage(format!("give the {what} once, not twice"))),
    };
    if text.trim().is_empty() {
        return Err(Error::Usage(format!(
            "the {what} is empty: give it as an argument, - for stdin, or a file"
        )));
    }
    Ok(text)
}

/// Runs `f` for each id; with several ids a failure is reported on its own
/// line and the rest still run. Fails (exit 1) when any failed.
pub fn for_each_id<T>(ids: &[i64], mut f: impl FnMut(i64) -> Result<T>) -> (Vec<T>, Option<Error>) {
    if let [id] = ids {
        return match f(*id) {
            Ok(v) => (vec![v], None),
            Err(e) => (Vec::new(), Some(e)),
        };
    }
    let mut done = Vec::new();
    let mut failed = 0;
    for &id in ids {
        match f(id) {
            Ok(v) => done.push(v),
            Err(e) => {
                note(&format!("error: {e}"));
                failed += 1;
            }
        }
    }
    let err = (failed > 0).then(|| Error::Reported(format!("{failed} of {} failed", ids.len())));
    (done, err)
}

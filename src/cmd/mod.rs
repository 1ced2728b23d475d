//! One file per command family; this file holds what they share: the
//! context (identity, output mode, backend) and the output helpers.

pub mod copy;
pub mod delivery;
pub mod lock;
pub mod msg;
pub mod sessions;
pub mod state;
pub mod sync;
pub mod todo;

use std::io::{IsTerminal, Read};
use std::path::Path;

use serde::Serialize;

use crate::backend::Coord;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::model::{NewMessage, Write, Written};
use crate::out::{note, out};
use crate::render::Style;

pub struct Ctx {
    pub identity: Identity,
    pub json: bool,
    pub style: Style,
    /// Opened on first use and kept: `msg read 1 2 3` opens the store (or
    /// builds the HTTP agent) once, not once per id.
    backend: std::cell::OnceCell<Box<dyn Coord>>,
}

impl Ctx {
    pub fn new(identity: Identity, json: bool, no_color: bool) -> Ctx {
        // A typo in identity.json must not pass unseen.
        for w in &identity.warnings {
            note(&format!("warning: {w}"));
        }
        Ctx {
            identity,
            json,
            style: Style::detect(no_color, std::io::stdout().is_terminal()),
            backend: std::cell::OnceCell::new(),
        }
    }

    pub fn session_id(&self) -> String {
        self.identity.session_id()
    }

    /// A message from this session to `to`.
    pub fn message(
        &self,
        to: String,
        subject: Option<String>,
        body: String,
        in_reply_to: Option<i64>,
    ) -> Write {
        let id = &self.identity;
        Write::SendMessage(NewMessage {
            to_session: to,
            body,
            subject,
            from_session: id.session_id(),
            created_by_user: id.user.clone(),
            created_by_machine: id.machine.clone(),
            in_reply_to,
        })
    }

    /// The backend the identity asks for.
    pub fn backend(&self) -> Result<&dyn Coord> {
        if let Some(b) = self.backend.get() {
            return Ok(b.as_ref());
        }
        let opened = crate::connect::for_command(&self.identity)?;
        Ok(self.backend.get_or_init(|| opened).as_ref())
    }

    /// Runs a write now, or queues it (see `delivery::write`).
    pub fn write(&self, w: &Write) -> Result<Option<Written>> {
        crate::delivery::write(&self.identity, self.backend()?, w)
    }

    /// Runs a write and prints its object (JSON) or `human` (text). A write
    /// that was queued prints nothing on stdout.
    pub fn write_and_emit(&self, w: &Write, human: impl FnOnce(&Written) -> String) -> Result<()> {
        if let Some(written) = self.write(w)? {
            self.emit(&written.to_json(), || human(&written));
        }
        Ok(())
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
/// line and the rest still run. Fails (exit 1) when any failed. Writes that
/// were queued (`None`) are not in the answer.
pub fn for_each_id<T>(
    ids: &[i64],
    mut f: impl FnMut(i64) -> Result<Option<T>>,
) -> (Vec<T>, Option<Error>) {
    if let [id] = ids {
        return match f(*id) {
            Ok(v) => (v.into_iter().collect(), None),
            Err(e) => (Vec::new(), Some(e)),
        };
    }
    let mut done = Vec::new();
    let mut failed = 0;
    for &id in ids {
        match f(id) {
            Ok(v) => done.extend(v),
            Err(e) => {
                note(&format!("error: {e}"));
                failed += 1;
            }
        }
    }
    let err = (failed > 0).then(|| Error::Failed(format!("{failed} of {} failed", ids.len())));
    (done, err)
}

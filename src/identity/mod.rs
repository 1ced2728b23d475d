//! Finding and reading identity.json, applying environment overrides, and
//! deriving the session id and the local file paths that hang off it.

use std::env;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};
use crate::model::{ALL_SESSIONS, DEFAULT_SESSION};

mod account;
mod file;

use account::*;
use file::*;
pub use file::{check, edit_distance, fleet_urls, validate_api, validate_fleet};

pub const FILE_NAME: &str = "identity.json";
pub const DB_FILE: &str = "coord.db";
pub const QUEUE_FILE: &str = "coord-queue.jsonl";

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    File(PathBuf),
    Defaults,
}

/// The resolved identity: file, then environment overrides, then defaults.
#[derive(Clone)]
pub struct Identity {
    pub user: String,
    pub machine: String,
    /// The session's name (the part after `MACHINE/`).
    pub session: String,
    pub api: Option<String>,
    pub token: Option<String>,
    pub hook_timeout_ms: Option<u64>,
    /// The CA certificates (PEM) an https coord_api is checked against,
    /// instead of the public roots (`coord_ca`, `COORD_CA`).
    pub ca_pem: Option<Vec<u8>>,
    pub db_path: PathBuf,
    /// The `.claude` folder that holds the queue (beside the identity file).
    pub state_dir: PathBuf,
    /// The user-level identity file, the only one trusted with where to
    /// connect and as whom.
    pub source: Source,
    /// A project's `.claude/identity.json` (found walking up from the
    /// working directory): it may name the session and nothing else.
    pub project_file: Option<PathBuf>,
    /// Fields of the project file that were ignored, by name.
    pub ignored: Vec<&'static str>,
    /// Why an identity-file token was not sent (it belongs to another
    /// address than the one in use).
    pub token_withheld: Option<String>,
    /// One line per unknown key in the identity files, with the key it
    /// probably meant.
    pub warnings: Vec<String>,
    /// True when the session name was set (COORD_SESSION or an identity
    /// file), not defaulted: the hook then does not pick one per window.
    pub session_explicit: bool,
    /// True when the session name came from a project's identity file (a
    /// stranger's repository may have written it).
    pub session_from_project: bool,
}

impl std::fmt::Debug for Identity {
    // Hand-written so the token can never reach a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user)
            .field("machine", &self.machine)
            .field("session", &self.session)
            .field("api", &self.api)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("db_path", &self.db_path)
            .field("source", &self.source)
            .finish()
    }
}

impl Identity {
    /// `MACHINE/SESSION`.
    pub fn session_id(&self) -> String {
        format!("{}/{}", self.machine, self.session)
    }

    /// The API address as it may be shown: without any password.
    pub fn api_shown(&self) -> Option<String> {
        self.api.as_deref().map(redact_url)
    }

    /// One line naming what a project identity file tried to set and was
    /// not allowed to (None when nothing was ignored).
    pub fn ignored_note(&self) -> Option<String> {
        let file = self.project_file.as_ref()?;
        if self.ignored.is_empty() {
            return None;
        }
        Some(format!(
            "{} is a project identity file, which may set only \"session\"; ignored: {} (set them in ~/.claude/identity.json)",
            file.display(),
            self.ignored.join(", ")
        ))
    }

    pub fn queue_path(&self) -> PathBuf {
        match env_var("COORD_QUEUE") {
            Some(p) => PathBuf::from(p),
            None => self.state_dir.join(QUEUE_FILE),
        }
    }

    /// Finds and reads the identity. `explicit` is `--identity`; `cwd` is
    /// where the walk up for a project's `.claude/identity.json` starts.
    pub fn load(explicit: Option<&Path>, cwd: &Path) -> Result<Identity> {
        let (file, source) = match find_user(explicit)? {
            Some(path) => (read_file(&path)?, Source::File(path)),
            None => (IdentityFile::default(), Source::Defaults),
        };
        let state_dir = match &source {
            Source::File(p) => p
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            Source::Defaults => home_claude_dir(),
        };
        // A project file may name the session; everything else in it is
        // ignored (a cloned repository must not redirect the connection or
        // change who we are), and said so.
        let user_file = match &source {
            Source::File(p) => Some(p.as_path()),
            Source::Defaults => None,
        };
        // A file named with --identity or COORD_IDENTITY is the whole
        // identity: the person chose it.
        let named = explicit.is_some() || env_var("COORD_IDENTITY").is_some();
        let found = if named {
            None
        } else {
            find_project(cwd, user_file)
        };
        let (project_file, project) = match found {
            Some(p) => {
                let f = read_file(&p)?;
                (Some(p), Some(f))
            }
            None => (None, None),
        };
        let ignored = project
            .as_ref()
            .map(IdentityFile::set_fields)
            .unwrap_or_default();
        let ignored: Vec<&'static str> = ignored.into_iter().filter(|f| *f != "session").collect();

        let mut warnings = Vec::new();
        for (f, path) in [
            (Some(&file), user_file),
            (project.as_ref(), found_path(&project_file)),
        ] {
            if let (Some(f), Some(path)) = (f, path) {
                // A misspelt key the person meant (`coord_apl`) would
                // quietly change where or as whom everything runs: an
                // error. A key far from any known one is only named.
                let (typos, others) = unknown_keys(f, path);
                if let Some(t) = typos.into_iter().next() {
                    return Err(Error::Usage(format!("{t}; fix the key, nothing was done")));
                }
                warnings.extend(others);
            }
        }
        let user = match file.user {
            Some(u) => u,
            None => default_user().ok_or_else(|| {
                let file = match &source {
                    Source::File(p) => p.display().to_string(),
                    Source::Defaults => home_claude_dir().join(FILE_NAME).display().to_string(),
                };
                Error::Usage(format!(
                    "no user: USER and USERNAME are unset and {file} has no \"user\"; set one of them (e.g. {{\"user\": \"howard\"}})"
                ))
            })?,
        };
        // Machine names are written upper-case, as Windows shows them.
        let machine = file
            .machine
            .map(|m| m.to_uppercase())
            .unwrap_or_else(default_machine);
        let project_session = project.and_then(|p| p.session);
        let mut session_from_project = project_session.is_some();
        let named_session = project_session.or(file.session);
        let mut session_explicit = named_session.is_some();
        let mut session = named_session.unwrap_or_else(|| DEFAULT_SESSION.into());
        let mut machine_override = None;
        if let Some(s) = env_var("COORD_SESSION") {
            session_explicit = true;
            session_from_project = false;
            // A full id (`MACHINE/NAME`) is accepted as well as a bare name.
            match s.split_once('/') {
                Some((m, n)) if !m.is_empty() && !n.is_empty() => {
                    check_address_name("COORD_SESSION's machine", m)?;
                    machine_override = Some(m.to_ascii_uppercase());
                    session = n.to_string();
                }
                _ => session = s,
            }
        }
        let machine = machine_override.unwrap_or(machine);
        check_address_name("COORD_SESSION", &session)?;

        // A token goes only to the address that came from the same place:
        // COORD_TOKEN with any address the person set; identity.json's
        // token only with identity.json's own coord_api.
        let env_api = match env_var("COORD_API") {
            Some(a) => {
                Some(validate_fleet(&a).map_err(|m| Error::Usage(format!("COORD_API: {m}")))?)
            }
            None => None,
        };
        let file_token = file.coord_token.filter(|t| !t.is_empty());
        let mut token_withheld = None;
        let token = match env_var("COORD_TOKEN") {
            Some(t) => {
                check_token("COORD_TOKEN", &t)?;
                Some(t)
            }
            None => match (&env_api, file_token) {
                (Some(env), Some(_)) if file.coord_api.as_deref() != Some(env.as_str()) => {
                    token_withheld = Some(format!(
                        "the coord_token in the identity file is not sent to {} (COORD_API), which is not the file's coord_api; set COORD_TOKEN for it",
                        redact_url(env)
                    ));
                    None
                }
                (_, Some(t)) => {
                    let path = match &source {
                        Source::File(p) => p.clone(),
                        Source::Defaults => PathBuf::from(FILE_NAME),
                    };
                    if let Some(p) = token_problem(&t) {
                        return Err(Error::bad_input(
                            &path,
                            format!("field \"coord_token\": {p}"),
                        ));
                    }
                    Some(t)
                }
                (_, None) => None,
            },
        };
        let api = env_api.or(file.coord_api);
        let db_path = env_var("COORD_DB")
            .map(PathBuf::from)
            // A relative coord_db is relative to the identity file, not to
            // wherever a command happens to run.
            .or(file.coord_db.map(|p| state_dir.join(p)))
            .unwrap_or_else(|| state_dir.join(DB_FILE));

        let ca_pem = match env_var("COORD_CA")
            .map(|p| ("COORD_CA", PathBuf::from(p)))
            .or(file.coord_ca.map(|p| ("coord_ca", state_dir.join(p))))
        {
            Some((name, path)) => Some(read_ca(name, &path)?),
            None => None,
        };

        Ok(Identity {
            user,
            machine,
            session,
            api,
            token,
            hook_timeout_ms: file.hook_timeout_ms,
            ca_pem,
            db_path,
            state_dir,
            source,
            project_file,
            ignored,
            token_withheld,
            warnings,
            session_explicit,
            session_from_project,
        })
    }
}

/// A CA file's bytes, when it holds at least one PEM certificate.
fn read_ca(name: &str, path: &Path) -> Result<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    let bad = |what: String| {
        Error::Usage(format!(
            "{name} {}: {what}; point it at the PEM certificate of the CA that signed the coord server's certificate",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM ({e})")))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(pem)
}

/// `http://user:password@host/…` as `http://***@host/…`: a URL's
/// credentials never reach a screen, a log, a model or a file.
pub fn redact_url(url: &str) -> String {
    if url.contains(',') {
        // A fleet: each of its URLs.
        return fleet_urls(url)
            .map(redact_url)
            .collect::<Vec<_>>()
            .join(",");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}{tail}", &authority[at + 1..]),
        None => url.to_string(),
    }
}

/// The same URL with no credentials at all, for comparing addresses and
/// for what the queue remembers.
pub fn strip_credentials(url: &str) -> String {
    let shown = redact_url(url);
    shown.replace("://***@", "://")
}

/// Why a token cannot go into an HTTP header, if it cannot.
fn token_problem(t: &str) -> Option<&'static str> {
    if t.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
        None
    } else {
        Some(
            "contains characters an HTTP header cannot carry (line breaks, controls or non-ASCII); copy the token again",
        )
    }
}

fn check_token(what: &str, t: &str) -> Result<()> {
    match token_problem(t) {
        Some(p) => Err(Error::Usage(format!("{what}: {p}"))),
        None => Ok(()),
    }
}

/// Non-empty environment variable.
pub fn env_var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The user-level identity file: `--identity`, `COORD_IDENTITY`,
/// `$CLAUDETOOLS_ROOT/.claude/identity.json`, `~/.claude/identity.json`.
fn find_user(explicit: Option<&Path>) -> Result<Option<PathBuf>> {
    // A path the person named must exist: falling back silently would make
    // a typo look like a different identity.
    let named = explicit
        .map(|p| ("--identity", p.to_path_buf()))
        .or_else(|| env_var("COORD_IDENTITY").map(|p| ("COORD_IDENTITY", PathBuf::from(p))));
    if let Some((what, path)) = named {
        if !path.is_file() {
            return Err(Error::bad_input(
                &path,
                format!("no identity file here (from {what})"),
            ));
        }
        return Ok(Some(path));
    }
    if let Some(root) = env_var("CLAUDETOOLS_ROOT") {
        let p = Path::new(&root).join(".claude").join(FILE_NAME);
        if p.is_file() {
            return Ok(Some(p));
        }
    }
    let p = home_claude_dir().join(FILE_NAME);
    Ok(p.is_file().then_some(p))
}

/// The nearest `.claude/identity.json` up from `cwd` that is not the
/// user-level file itself (a session started in the home folder finds that).
fn find_project(cwd: &Path, user_file: Option<&Path>) -> Option<PathBuf> {
    let same = |p: &Path| {
        user_file.is_some_and(|u| {
            u == p || matches!((u.canonicalize(), p.canonicalize()), (Ok(a), Ok(b)) if a == b)
        })
    };
    let home = home_claude_dir().join(FILE_NAME);
    for dir in cwd.ancestors() {
        let p = dir.join(".claude").join(FILE_NAME);
        if p.is_file() {
            if same(&p) || p == home {
                return None;
            }
            return Some(p);
        }
    }
    None
}

pub fn home_claude_dir() -> PathBuf {
    env::home_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".claude")
}

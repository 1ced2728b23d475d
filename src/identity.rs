//! Finding and reading identity.json, applying environment overrides, and
//! deriving the session id and the local file paths that hang off it.

use std::env;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};
use crate::model::{ALL_SESSIONS, DEFAULT_SESSION};

pub const FILE_NAME: &str = "identity.json";
pub const DB_FILE: &str = "coord.db";
pub const QUEUE_FILE: &str = "coord-queue.jsonl";

/// identity.json as written by a person. Every field is optional; unknown
/// fields are ignored.
#[derive(Debug, Default, Deserialize)]
struct IdentityFile {
    #[serde(default, deserialize_with = "name")]
    user: Option<String>,
    #[serde(default, deserialize_with = "address_name")]
    machine: Option<String>,
    #[serde(default, deserialize_with = "api_url")]
    coord_api: Option<String>,
    #[serde(default, deserialize_with = "address_name")]
    session: Option<String>,
    #[serde(default)]
    coord_token: Option<String>,
    #[serde(default)]
    hook_timeout_ms: Option<u64>,
    #[serde(default)]
    coord_db: Option<PathBuf>,
    /// Keys this version does not know: named in a warning, never silently
    /// dropped (a typo must not change who you are).
    #[serde(flatten)]
    unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The keys identity.json may hold.
const KNOWN_KEYS: &[&str] = &[
    "user",
    "machine",
    "coord_api",
    "session",
    "coord_token",
    "hook_timeout_ms",
    "coord_db",
];

/// Where the identity came from.
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
            Some(a) => Some(validate_api(&a).map_err(|m| Error::Usage(format!("COORD_API: {m}")))?),
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

        Ok(Identity {
            user,
            machine,
            session,
            api,
            token,
            hook_timeout_ms: file.hook_timeout_ms,
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

impl IdentityFile {
    /// The names of the fields this file sets.
    fn set_fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut add = |set: bool, name: &'static str| {
            if set {
                out.push(name);
            }
        };
        add(self.user.is_some(), "user");
        add(self.machine.is_some(), "machine");
        add(self.coord_api.is_some(), "coord_api");
        add(self.session.is_some(), "session");
        add(self.coord_token.is_some(), "coord_token");
        add(self.hook_timeout_ms.is_some(), "hook_timeout_ms");
        add(self.coord_db.is_some(), "coord_db");
        out
    }
}

fn found_path(p: &Option<PathBuf>) -> Option<&Path> {
    p.as_deref()
}

/// The unknown keys of a file, each in one line: those close to a known
/// key ("unknown key "machin" — did you mean "machine"?"), then the rest.
fn unknown_keys(f: &IdentityFile, path: &Path) -> (Vec<String>, Vec<String>) {
    let mut typos = Vec::new();
    let mut others = Vec::new();
    for k in f.unknown.keys() {
        let near = KNOWN_KEYS
            .iter()
            .map(|known| (edit_distance(&k.to_ascii_lowercase(), known), *known))
            .min()
            .filter(|(d, _)| *d <= 2 || k.eq_ignore_ascii_case("token"));
        let key = crate::text::cell(k, 40);
        match near {
            Some((_, known)) => typos.push(format!(
                "{}: unknown key \"{key}\" — did you mean \"{known}\"?",
                path.display()
            )),
            None => others.push(format!(
                "{}: unknown key \"{key}\" is ignored (known keys: {})",
                path.display(),
                KNOWN_KEYS.join(", ")
            )),
        }
    }
    (typos, others)
}

/// Levenshtein distance, for "did you mean" and "closest known".
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `http://user:password@host/…` as `http://***@host/…`: a URL's
/// credentials never reach a screen, a log, a model or a file.
pub fn redact_url(url: &str) -> String {
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
    shown.replacen("://***@", "://", 1)
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

fn read_file(path: &Path) -> Result<IdentityFile> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::bad_input(path, format!("cannot read identity file: {e}")))?;
    parse_file(path, bytes)
}

/// Checks identity.json bytes the way `load` reads them; `path` only names
/// the file in the error. (The fuzz target calls this.)
pub fn check(path: &Path, bytes: &[u8]) -> Result<()> {
    parse_file(path, bytes.to_vec()).map(|_| ())
}

fn parse_file(path: &Path, bytes: Vec<u8>) -> Result<IdentityFile> {
    if bytes.starts_with(&[0xff, 0xfe])
        || bytes.starts_with(&[0xfe, 0xff])
        || (bytes.len() >= 2 && (bytes[0] == 0 || bytes[1] == 0))
    {
        // What Windows PowerShell 5's `>` and `Out-File` write.
        return Err(Error::bad_input(
            path,
            "identity file is UTF-16; save it as UTF-8 (in PowerShell: Set-Content -Encoding utf8)",
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::bad_input(path, "identity file is not valid UTF-8"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text); // Windows editors
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.inner();
        let msg = inner.to_string();
        let msg = msg
            .rsplit_once(" at line ")
            .map_or(msg.as_str(), |(m, _)| m);
        let location = format!("line {}", inner.line());
        let what = if field == "." {
            format!("{location}: {msg}")
        } else {
            format!("{location}, field \"{field}\": {msg}")
        };
        Error::bad_input(path, format!("broken identity file: {what}"))
    })
}

pub fn home_claude_dir() -> PathBuf {
    env::home_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".claude")
}

/// `USER`, `USERNAME`, else the account this process runs as (containers,
/// cron and services often set neither variable).
fn default_user() -> Option<String> {
    env_var("USER")
        .or_else(|| env_var("USERNAME"))
        .or_else(account_name)
        .filter(|u| name_problem(u).is_none())
}

/// The name of the account this process runs as, as `whoami` prints it.
#[cfg(unix)]
fn account_name() -> Option<String> {
    // SAFETY: getpwuid_r writes into the buffers we own; the result points
    // into `buf`, which outlives its use here.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::getuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(pwd.pw_name)
            .to_string_lossy()
            .into_owned();
        (!name.is_empty()).then_some(name)
    }
}

/// The name of the account this process runs as (GetUserNameW).
#[cfg(windows)]
fn account_name() -> Option<String> {
    #[link(name = "advapi32")]
    unsafe extern "system" {
        fn GetUserNameW(buffer: *mut u16, size: *mut u32) -> i32;
    }
    let mut buf = [0u16; 257];
    let mut len = buf.len() as u32;
    // SAFETY: the buffer and its length are ours; on success `len` counts
    // the characters written, with the terminating zero.
    let ok = unsafe { GetUserNameW(buf.as_mut_ptr(), &mut len) };
    if ok == 0 || len == 0 {
        return None;
    }
    let name = String::from_utf16_lossy(&buf[..(len as usize).saturating_sub(1)]);
    (!name.is_empty()).then_some(name)
}

#[cfg(not(any(unix, windows)))]
fn account_name() -> Option<String> {
    None
}

fn default_machine() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let host = host.split('.').next().unwrap_or("").trim().to_string();
    if crate::model::name_problem(&host).is_some() {
        "LOCALHOST".into()
    } else {
        host.to_ascii_uppercase()
    }
}

fn check_address_name(what: &str, v: &str) -> Result<()> {
    match address_name_problem(v) {
        Some(p) => Err(Error::Usage(format!(
            "{what}: {:?} {p}",
            crate::text::clip(v, 80)
        ))),
        None => Ok(()),
    }
}

/// A machine or session name: the address grammar, and not the broadcast.
fn address_name_problem(v: &str) -> Option<String> {
    if v == ALL_SESSIONS {
        return Some("is reserved for broadcasts".into());
    }
    crate::model::name_problem(v)
}

fn address_name<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    if let Some(s) = &v
        && let Some(p) = address_name_problem(s)
    {
        return Err(serde::de::Error::custom(p));
    }
    Ok(v)
}

fn name_problem(v: &str) -> Option<&'static str> {
    if v.is_empty() {
        Some("must not be empty")
    } else if v.contains('/') {
        Some("must not contain '/'")
    } else if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("must not contain spaces or control characters")
    } else if v == ALL_SESSIONS {
        Some("ALL_SESSIONS is reserved for broadcasts")
    } else {
        None
    }
}

fn name<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    if let Some(s) = &v
        && let Some(p) = name_problem(s)
    {
        return Err(serde::de::Error::custom(p));
    }
    Ok(v)
}

fn api_url<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => validate_api(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

/// An API base must be an http(s) URL; the trailing slash is dropped.
pub fn validate_api(s: &str) -> std::result::Result<String, String> {
    let t = s.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() => Ok(t.to_string()),
        _ => Err(format!("{s:?} is not an http:// or https:// URL")),
    }
}

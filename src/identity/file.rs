//! identity.json as written by a person: its fields, what each may hold,
//! and the errors that name the file, line and field.

use super::*;

/// identity.json as written by a person. Every field is optional; unknown
/// fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub(super) struct IdentityFile {
    #[serde(default, deserialize_with = "name")]
    pub(super) user: Option<String>,
    #[serde(default, deserialize_with = "address_name")]
    pub(super) machine: Option<String>,
    #[serde(default, deserialize_with = "api_url")]
    pub(super) coord_api: Option<String>,
    #[serde(default, deserialize_with = "address_name")]
    pub(super) session: Option<String>,
    #[serde(default)]
    pub(super) coord_token: Option<String>,
    #[serde(default)]
    pub(super) hook_timeout_ms: Option<u64>,
    #[serde(default)]
    pub(super) coord_db: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for an https coord_api, for a fleet
    /// whose server has a certificate of its own making.
    #[serde(default)]
    pub(super) coord_ca: Option<PathBuf>,
    /// Keys this version does not know: named in a warning, never silently
    /// dropped (a typo must not change who you are).
    #[serde(flatten)]
    pub(super) unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The keys identity.json may hold.
pub(super) const KNOWN_KEYS: &[&str] = &[
    "user",
    "machine",
    "coord_api",
    "session",
    "coord_token",
    "hook_timeout_ms",
    "coord_db",
    "coord_ca",
];

/// Where the identity came from.
impl IdentityFile {
    /// The names of the fields this file sets.
    pub(super) fn set_fields(&self) -> Vec<&'static str> {
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
        add(self.coord_ca.is_some(), "coord_ca");
        out
    }
}

pub(super) fn found_path(p: &Option<PathBuf>) -> Option<&Path> {
    p.as_deref()
}

/// The unknown keys of a file, each in one line: those close to a known
/// key ("unknown key "machin" — did you mean "machine"?"), then the rest.
pub(super) fn unknown_keys(f: &IdentityFile, path: &Path) -> (Vec<String>, Vec<String>) {
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
pub(super) fn read_file(path: &Path) -> Result<IdentityFile> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::bad_input(path, format!("cannot read identity file: {e}")))?;
    parse_file(path, bytes)
}

/// Checks identity.json bytes the way `load` reads them; `path` only names
/// the file in the error. (The fuzz target calls this.)
pub fn check(path: &Path, bytes: &[u8]) -> Result<()> {
    parse_file(path, bytes.to_vec()).map(|_| ())
}

pub(super) fn parse_file(path: &Path, bytes: Vec<u8>) -> Result<IdentityFile> {
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

pub(super) fn check_address_name(what: &str, v: &str) -> Result<()> {
    match address_name_problem(v) {
        Some(p) => Err(Error::Usage(format!(
            "{what}: {:?} {p}",
            crate::text::clip(v, 80)
        ))),
        None => Ok(()),
    }
}

/// A machine or session name: the address grammar, and not the broadcast.
pub(super) fn address_name_problem(v: &str) -> Option<String> {
    if v == ALL_SESSIONS {
        return Some("is reserved for broadcasts".into());
    }
    crate::model::name_problem(v)
}

pub(super) fn address_name<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    if let Some(s) = &v
        && let Some(p) = address_name_problem(s)
    {
        return Err(serde::de::Error::custom(p));
    }
    Ok(v)
}

pub(super) fn name_problem(v: &str) -> Option<&'static str> {
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

pub(super) fn name<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    if let Some(s) = &v
        && let Some(p) = name_problem(s)
    {
        return Err(serde::de::Error::custom(p));
    }
    Ok(v)
}

/// `coord_api`: one URL, or a list of the replicas of one fleet (tried in
/// order). Kept as one string, the URLs joined by commas.
pub(super) fn api_url<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let urls = match Option::<OneOrMany>::deserialize(d)? {
        None => return Ok(None),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    let urls: Vec<String> = urls.into_iter().filter(|s| !s.trim().is_empty()).collect();
    if urls.is_empty() {
        return Ok(None);
    }
    validate_fleet(&urls.join(","))
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A fleet: one or more API bases, comma-separated; each must be an
/// http(s) URL (its trailing slash dropped).
pub fn validate_fleet(s: &str) -> std::result::Result<String, String> {
    let urls = s
        .split(',')
        .filter(|u| !u.trim().is_empty())
        .map(validate_api)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err(format!("{s:?} is not an http:// or https:// URL"));
    }
    Ok(urls.join(","))
}

/// The URLs of a fleet (one for a single server).
pub fn fleet_urls(api: &str) -> impl Iterator<Item = &str> {
    api.split(',').map(str::trim).filter(|u| !u.is_empty())
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

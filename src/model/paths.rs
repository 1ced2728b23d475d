//! Path claims (issue 24): the globs a lock may carry, checked once for
//! everyone, and matched the same way on every machine.
//!
//! A glob is repository-relative and `/`-separated on every OS. `*` and `?`
//! stay within one folder, `**` crosses folders, and a glob without a
//! wildcard also covers everything under it (`db/migrations` claims
//! `db/migrations/0042.sql`). Case is folded on Windows and macOS, whose
//! file systems fold it.

use super::Lock;

/// At most this many globs on one lock, each at most this long.
pub const MAX_PATHS: usize = 50;
pub const MAX_PATH_LEN: usize = 256;

/// Why `glob` cannot be a claim's path, if it cannot.
pub fn path_problem(glob: &str) -> Option<String> {
    let g = glob;
    if g.trim().is_empty() {
        return Some("a path must not be empty".into());
    }
    if g.len() > MAX_PATH_LEN {
        return Some(format!("a path is at most {MAX_PATH_LEN} characters"));
    }
    if g.contains('\\') {
        return Some(format!("{g:?}: write paths with / on every OS"));
    }
    if g.starts_with('/') || g.as_bytes().get(1) == Some(&b':') {
        return Some(format!(
            "{g:?}: a path is relative to the repository's root, not absolute"
        ));
    }
    if g.split('/').any(|s| s == "..") {
        return Some(format!("{g:?}: a path may not leave the repository (..)"));
    }
    if g.chars().any(char::is_control) {
        return Some(format!(
            "{:?}: a path holds a control character",
            g.escape_debug().to_string()
        ));
    }
    None
}

/// Whether file systems here fold case (Windows, macOS).
pub const FOLD_CASE: bool = cfg!(any(windows, target_os = "macos"));

/// Whether `glob` claims the repository-relative `path`.
pub fn glob_matches(glob: &str, path: &str, fold_case: bool) -> bool {
    let norm = |s: &str| {
        let s = s.trim_start_matches("./").trim_end_matches('/');
        if fold_case {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let (g, p) = (norm(glob), norm(path));
    let (g, p): (Vec<char>, Vec<char>) = (g.chars().collect(), p.chars().collect());
    if !g.iter().any(|c| matches!(c, '*' | '?')) {
        // A plain path: itself, or anything under it.
        return p == g || (p.len() > g.len() && p[..g.len()] == g[..] && p[g.len()] == '/');
    }
    wild(&g, &p)
}

/// `*` and `?` within one segment, `**` across segments (`a/**/b` also
/// matches `a/b`).
fn wild(g: &[char], p: &[char]) -> bool {
    match g.first() {
        None => p.is_empty(),
        Some('*') if g.get(1) == Some(&'*') => {
            let rest = &g[2..];
            let rest_after_slash = rest.strip_prefix(&['/']).unwrap_or(rest);
            (0..=p.len()).any(|i| wild(rest, &p[i..]) || wild(rest_after_slash, &p[i..]))
        }
        Some('*') => (0..=p.len())
            .take_while(|i| *i == 0 || p[i - 1] != '/')
            .any(|i| wild(&g[1..], &p[i..])),
        Some('?') => p.first().is_some_and(|c| *c != '/') && wild(&g[1..], &p[1..]),
        Some(c) => p.first() == Some(c) && wild(&g[1..], &p[1..]),
    }
}

/// The first of the lock's globs that claims `path`.
pub fn claiming<'a>(lock: &'a Lock, path: &str) -> Option<&'a str> {
    lock.paths
        .iter()
        .map(String::as_str)
        .find(|g| glob_matches(g, path, FOLD_CASE))
}

/// The globs as a store keeps them: JSON, or NULL for none.
pub fn paths_column(paths: &[String]) -> Option<String> {
    (!paths.is_empty()).then(|| serde_json::to_string(paths).unwrap_or_default())
}

/// The globs from a store's column.
pub fn paths_from_column(col: Option<String>) -> Vec<String> {
    col.and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or_default()
}

/// Every glob of a claim checked, or the first problem (a 422 naming it).
pub fn check_paths(paths: &[String]) -> std::result::Result<(), String> {
    if paths.len() > MAX_PATHS {
        return Err(format!("paths: at most {MAX_PATHS} on one lock"));
    }
    match paths.iter().find_map(|p| path_problem(p)) {
        Some(why) => Err(format!("paths: {why}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_documented() {
        let m = |g: &str, p: &str| glob_matches(g, p, false);
        assert!(m("db/migrations", "db/migrations/0042.sql"));
        assert!(m("db/migrations/", "db/migrations/a/b.sql"));
        assert!(!m("db/migrations", "db/migrations2/x.sql"));
        assert!(m("src/*.rs", "src/main.rs"));
        assert!(!m("src/*.rs", "src/a/main.rs"));
        assert!(m("src/**/*.rs", "src/a/b/main.rs"));
        assert!(m("src/**/*.rs", "src/main.rs"));
        assert!(m("**/Cargo.toml", "crates/x/Cargo.toml"));
        assert!(m("**", "anything/at/all"));
        assert!(m("a?c.txt", "abc.txt"));
        assert!(!m("a?c.txt", "a/c.txt"));
        assert!(!m("SRC/main.rs", "src/main.rs"));
        assert!(glob_matches("SRC/main.rs", "src/main.rs", true));
    }

    #[test]
    fn paths_that_cannot_be_claims_are_named() {
        assert!(path_problem("src/**").is_none());
        for bad in ["", "/etc/passwd", "C:/x", "a\\b", "../up", "a/../../b"] {
            assert!(path_problem(bad).is_some(), "{bad}");
        }
    }
}

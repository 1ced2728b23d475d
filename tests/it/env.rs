//! The environment the binaries read, cleared for every test and bench run
//! so that a developer's own setup never leaks in. Shared by the
//! integration suite and the bench (`#[path]`), so both clear the same.

/// Variables the binaries read; cleared so the developer's own setup never
/// leaks into a test.
pub const VARS: &[&str] = &[
    "COORD_API",
    "COORD_SESSION",
    "COORD_TOKEN",
    "COORD_DB",
    "COORD_IDENTITY",
    "COORD_QUEUE",
    "COORD_HOOK_TIMEOUT_MS",
    "CLAUDETOOLS_ROOT",
    "CLAUDE_PROJECT_DIR",
    "CLAUDE_CODE_SESSION_ID",
    "COORD_CA",
    "COORD_SERVE_MMAP_MB",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLROOTCERT",
];

/// Removes every variable above from `c`'s environment.
pub fn clear(c: &mut std::process::Command) {
    for v in VARS {
        c.env_remove(v);
    }
}

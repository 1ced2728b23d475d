//! `coord serve --tls-cert/--tls-key` (issue 22): the fleet over HTTPS, the
//! clients trusting the fleet's own CA (`coord_ca`), and the failures a
//! person meets named plainly.

use std::path::PathBuf;

use crate::common::{Machine, Server, stderr};
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn tls_server(extra: &[&str]) -> Server {
    let (cert, key) = (fixture("server.pem"), fixture("server.key"));
    let mut args = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A machine whose identity trusts the test CA, copied beside its
/// identity.json and named relative to it (as a person would).
fn trusting(name: &str, url: &str, token: Option<&str>) -> Machine {
    let mut id = json!({
        "user": name.to_lowercase(),
        "machine": name,
        "coord_api": url,
        "coord_ca": "fleet-ca.pem",
    });
    if let Some(t) = token {
        id["coord_token"] = json!(t);
    }
    let m = Machine::with_identity(name, &id);
    std::fs::copy(fixture("ca.pem"), m.claude_dir().join("fleet-ca.pem")).unwrap();
    m
}

#[test]
fn a_fleet_talks_over_https_to_a_server_its_ca_signed() {
    let s = tls_server(&["--token", "s3cret-fleet"]);
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let a = trusting("ALPHA", &s.url, Some("s3cret-fleet"));
    let b = trusting("BRAVO", &s.url, Some("s3cret-fleet"));
    b.arrive(None);
    let sent = a.json(None, &["msg", "send", "BRAVO", "over TLS"]);
    assert_eq!(sent["to_session"], "BRAVO/claude-main");
    // The hook reads through the same client.
    let (_, ctx) = b.hook_context(None);
    assert!(ctx.contains("over TLS"), "{ctx}");
    // Nothing waits in a queue: it was delivered.
    assert!(!a.claude_dir().join("coord-queue.jsonl").exists());
}

#[test]
fn a_certificate_the_client_does_not_trust_is_named_and_nothing_is_sent_in_clear() {
    let s = tls_server(&[]);
    // No coord_ca: the public roots do not know the fleet's own CA.
    let a = Machine::remote("ALPHA", &s.url);
    let out = a.coord(&["status"]).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("does not trust") && err.contains("coord_ca"),
        "{err}"
    );
    // A send is refused now, not queued to fail later: the fix is a setting.
    let out = a
        .coord(&["msg", "send", "--force", "BRAVO", "hello"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("coord_ca"), "{}", stderr(&out));
    assert!(!a.claude_dir().join("coord-queue.jsonl").exists());
    // The hook goes on, saying why.
    let (_, ctx) = a.hook_context(None);
    assert!(ctx.contains("does not trust"), "{ctx}");
    // Plain HTTP to the TLS port gets no answer it could mistake for one.
    let plain = s.url.replacen("https://", "http://", 1);
    let p = Machine::remote("PLAIN", &plain);
    let out = p.coord(&["status"]).output().unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_missing_certificate_or_ca_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("coord"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("s.db"))
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(fixture("server.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("nope.pem") && err.contains("PEM"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // The key of another certificate.
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("coord"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("s.db"))
        .arg("--tls-cert")
        .arg(fixture("ca.pem"))
        .arg("--tls-key")
        .arg(fixture("server.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A coord_ca that is not a certificate: the identity names it.
    let m = Machine::with_identity(
        "ALPHA",
        &json!({"user": "a", "machine": "ALPHA", "coord_api": "https://coord.example.internal", "coord_ca": fixture("README.md")}),
    );
    let out = m.coord(&["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("coord_ca"), "{}", stderr(&out));
}

#[test]
fn a_postgres_url_nobody_answers_is_one_line_without_the_password_and_no_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let url = format!("postgres://coord:hunter2@127.0.0.1:{port}/coord");
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("coord"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("PostgreSQL") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "the password is shown: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Not a SQLite file named `postgres:/…` in the working folder.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

//! Test helpers: a temporary home with an identity, and the real binaries
//! run inside it with a clean environment.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// A machine: a temporary folder that is both HOME and the working
/// directory, with `.claude/identity.json` in it.
pub struct Machine {
    pub dir: TempDir,
    pub name: String,
}

impl Machine {
    pub fn new(name: &str) -> Machine {
        Self::with_identity(
            name,
            &serde_json::json!({"user": "howard", "machine": name}),
        )
    }

    pub fn with_identity(name: &str, identity: &Value) -> Machine {
        let dir = tempfile::tempdir().expect("temp dir");
        let m = Machine {
            dir,
            name: name.to_string(),
        };
        std::fs::create_dir_all(m.claude_dir()).expect("mkdir .claude");
        std::fs::write(m.identity_path(), identity.to_string()).expect("write identity");
        m
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn claude_dir(&self) -> PathBuf {
        self.root().join(".claude")
    }
    pub fn identity_path(&self) -> PathBuf {
        self.claude_dir().join("identity.json")
    }
    pub fn db_path(&self) -> PathBuf {
        self.claude_dir().join("coord.db")
    }

    /// `coord ARGS` as session `claude-main` of this machine.
    pub fn coord(&self, args: &[&str]) -> Command {
        self.bin("coord", None, args)
    }

    /// `coord ARGS` as another session of this machine.
    pub fn session(&self, session: &str, args: &[&str]) -> Command {
        self.bin("coord", Some(session), args)
    }

    pub fn bin(&self, bin: &str, session: Option<&str>, args: &[&str]) -> Command {
        Command::from_std(self.std_bin(bin, session, args))
    }

    /// Another program (git) run as this machine's user: its HOME and
    /// folder, none of the coord or Claude Code variables of the test's.
    pub fn bin_cmd(&self, program: &str, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(program);
        crate::env::clear(&mut c);
        c.current_dir(self.root())
            .env("HOME", self.root())
            .env("USERPROFILE", self.root())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .args(args);
        c
    }

    /// The same as a plain `std::process::Command`, for spawning many.
    pub fn std_bin(
        &self,
        bin: &str,
        session: Option<&str>,
        args: &[&str],
    ) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin(bin));
        crate::env::clear(&mut c);
        c.current_dir(self.root())
            .env("HOME", self.root())
            .env("USERPROFILE", self.root())
            .env("NO_COLOR", "1")
            .args(args);
        if let Some(s) = session {
            c.env("COORD_SESSION", s);
        }
        c
    }

    /// A session of this machine starts: its hook runs once, so the fleet
    /// knows the address (presence).
    pub fn arrive(&self, session: Option<&str>) {
        let out = self
            .bin("coord-hook", session, &[])
            .write_stdin("{}")
            .output()
            .expect("run the hook");
        assert!(out.status.success());
    }

    /// The session-start hook with `--format json`: its answer, and the
    /// text it gives the model.
    pub fn hook_context(&self, session: Option<&str>) -> (Value, String) {
        let out = self
            .bin("coord-hook", session, &["--format", "json"])
            .output()
            .expect("run the hook");
        let v: Value = serde_json::from_slice(&out.stdout).expect("the hook printed JSON");
        let ctx = context(&v);
        (v, ctx)
    }

    /// Runs with `--json`, expects success, and parses stdout.
    pub fn json(&self, session: Option<&str>, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.bin("coord", session, &all).output().expect("run");
        assert!(
            out.status.success(),
            "coord {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("stdout is JSON")
    }
}

/// Runs `c` with `input` on its stdin (as Claude Code runs a hook) and
/// returns what it did.
pub fn run_with_input(c: &mut std::process::Command, input: &[u8]) -> Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The text a hook's JSON answer gives the model.
pub fn context(v: &Value) -> String {
    v["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .expect("additionalContext")
        .to_string()
}

/// A message from `A/x` to `to`.
pub fn message(to: &str, body: &str) -> coord_hook::model::Write {
    coord_hook::model::Write::SendMessage(coord_hook::model::NewMessage {
        to_session: to.into(),
        body: body.into(),
        subject: None,
        from_session: "A/x".into(),
        created_by_user: "u".into(),
        created_by_machine: "A".into(),
        in_reply_to: None,
    })
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A real `coord serve` on an ephemeral loopback port, killed on drop.
pub struct Server {
    child: std::process::Child,
    pub url: String,
    pub log: PathBuf,
    _dir: Option<TempDir>,
}

impl Server {
    /// Serves a fresh temporary database: a SQLite file, or with
    /// `COORD_TEST_BACKEND=postgres` a new PostgreSQL database (the same
    /// tests against either store).
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s = if std::env::var("COORD_TEST_BACKEND").is_ok_and(|b| b == "postgres") {
            let url = crate::pg::fresh_database()
                .expect("COORD_TEST_BACKEND=postgres needs COORD_TEST_PG");
            Server::start_arg(
                std::ffi::OsStr::new(&url),
                dir.path().join("served.log"),
                "127.0.0.1:0",
                extra,
            )
        } else {
            Server::start_with(&dir.path().join("served.db"), "127.0.0.1:0", extra)
        };
        s._dir = Some(dir);
        s
    }

    /// Serves `db` on `listen` (port 0 for any).
    pub fn start_with(db: &Path, listen: &str, extra: &[&str]) -> Server {
        Server::start_arg(db.as_os_str(), db.with_extension("log"), listen, extra)
    }

    /// Serves `--db DB` (a file or a URL), logging to `log`.
    pub fn start_arg(db: &std::ffi::OsStr, log: PathBuf, listen: &str, extra: &[&str]) -> Server {
        Server::start_env(db, log, listen, extra, &[])
    }

    /// The same with variables set for it.
    pub fn start_env(
        db: &std::ffi::OsStr,
        log: PathBuf,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        use std::io::BufRead;
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("coord"));
        crate::env::clear(&mut cmd);
        cmd.env_remove("COORD_SERVE_TOKEN");
        cmd.envs(env.iter().copied());
        let mut child = cmd
            .args(["serve", "--listen", listen, "--db"])
            .arg(db)
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn coord serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("coord serve printed its address");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        Server {
            child,
            url,
            log,
            _dir: None,
        }
    }

    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    #[cfg(unix)]
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: signals our own child, which has not been waited for yet.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "kill(SIGTERM) failed");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// Stops the server and waits for it to exit.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Machine {
    /// A machine whose identity points at `api`.
    pub fn remote(name: &str, api: &str) -> Machine {
        Self::with_identity(
            name,
            &serde_json::json!({"user": name.to_lowercase(), "machine": name, "coord_api": api}),
        )
    }
}

/// A loopback URL where nothing listens (the port was just freed).
pub fn dead_url() -> String {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}", dead.local_addr().expect("addr"))
}

/// Starts `n` `coord lock claim db migrate` processes at once, each as its
/// own session, and checks that exactly one wins and every loser exits 3
/// naming the holder.
pub fn race_for_one_lock(m: &Machine, n: usize) {
    let children: Vec<_> = (0..n)
        .map(|i| {
            m.std_bin(
                "coord",
                Some(&format!("s{i}")),
                &["lock", "claim", "db", "migrate"],
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
        })
        .collect();
    let mut codes = Vec::new();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        if out.status.code() != Some(0) {
            assert!(stderr(&out).contains("is held by"), "{}", stderr(&out));
        }
        codes.push(out.status.code());
    }
    assert_eq!(
        codes.iter().filter(|c| **c == Some(0)).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == Some(3)).count(),
        n - 1,
        "{codes:?}"
    );
}

/// Forwards each request to `target`; for the first `drop` requests it then
/// closes the client's connection instead of answering (the answer is lost
/// after the server committed).
pub fn lossy_proxy(target: String, drop: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { return };
            let (target, dropped) = (target.clone(), dropped.clone());
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(client.try_clone().unwrap());
                let mut client = client;
                loop {
                    let Some(req) = read_http(&mut reader) else {
                        return;
                    };
                    let mut upstream = std::net::TcpStream::connect(&target).unwrap();
                    upstream.write_all(&req).unwrap();
                    let mut up = std::io::BufReader::new(upstream);
                    let Some(resp) = read_http(&mut up) else {
                        return;
                    };
                    // Only writes lose their answer (reads, such as the
                    // address check, pass).
                    if req.starts_with(b"POST")
                        && dropped.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < drop
                    {
                        let _ = client.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    if client.write_all(&resp).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// One HTTP/1.1 message (headers and a Content-Length body), raw.
pub fn read_http(r: &mut impl std::io::BufRead) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        raw.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    raw.extend_from_slice(&body);
    Some(raw)
}

/// A hostile or foreign server: records every request it gets and answers
/// each with `answer(request)`.
pub struct Fake {
    pub url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Fake {
    pub fn start(answer: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Fake {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (log, answer) = (seen.clone(), std::sync::Arc::new(answer));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { return };
                let (log, answer) = (log.clone(), answer.clone());
                std::thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(client.try_clone().unwrap());
                    while let Some(req) = read_http(&mut reader) {
                        let text = String::from_utf8_lossy(&req).into_owned();
                        log.lock().unwrap().push(text.clone());
                        if client.write_all(&answer(&text)).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Fake { url, seen }
    }

    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

pub fn http_answer(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A stand-in for a Claude Code window's process: a real process that
/// lives until dropped (what the registry checks is only that it runs).
pub struct Window {
    child: std::process::Child,
    pub env_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Window {
    pub fn open() -> Window {
        let child = if cfg!(windows) {
            // Waits for a key on a stdin that never sends one.
            std::process::Command::new("cmd")
                .args(["/c", "pause"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        } else {
            std::process::Command::new("sleep")
                .arg("300")
                .spawn()
                .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        Window {
            child,
            env_file: dir.path().join("sessionstart-hook-0.sh"),
            _dir: dir,
        }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// The SessionStart hook of this window, as Claude Code runs it.
    pub fn start(
        &self,
        m: &Machine,
        project: &std::path::Path,
        source: &str,
        claude_session: &str,
    ) -> Value {
        let mut c = m.std_bin("coord-hook", None, &["--format", "json"]);
        c.env("CLAUDE_PID", self.pid())
            .env("CLAUDE_ENV_FILE", &self.env_file)
            .env("CLAUDE_PROJECT_DIR", project);
        let input = serde_json::json!({"session_id": claude_session, "cwd": project,
                           "hook_event_name": "SessionStart", "source": source});
        let out = run_with_input(&mut c, input.to_string().as_bytes());
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The session id the hook last wrote for the model's commands.
    pub fn exported(&self) -> String {
        let text = std::fs::read_to_string(&self.env_file).unwrap_or_default();
        let last = text.lines().last().unwrap_or("").to_string();
        last.trim_start_matches("export COORD_SESSION=")
            .trim_matches('\'')
            .to_string()
    }

    pub fn close(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

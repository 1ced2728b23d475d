//! A scratch home for the binaries (the same variables cleared as the
//! tests clear), a bare process for the control, and `coord serve`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{COORD, HOOK};

pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    pub fn new(root: &Path, name: &str, identity: serde_json::Value) -> Home {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join(".claude")).unwrap();
        std::fs::write(dir.join(".claude/identity.json"), identity.to_string()).unwrap();
        Home { dir }
    }
    /// `coord-hook ARGS` in this home, with the variables the tests clear
    /// cleared here too.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HOOK);
        c.args(args).current_dir(&self.dir).env("HOME", &self.dir);
        crate::test_env::clear(&mut c);
        c
    }
    pub fn hook(&self, extra: &[&str]) -> Command {
        let mut c = self.command(&["--format", "json"]);
        c.args(extra);
        c
    }
    /// The waiter of the window whose process is `window`, interactive.
    pub fn waiter(&self, window: &str) -> Command {
        let mut c = self.command(&["wait"]);
        c.env("CLAUDE_PID", window)
            .env("CLAUDE_CODE_SESSION_ATTENDED", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }
    pub fn input(&self) -> Vec<u8> {
        serde_json::json!({
            "session_id": "0b5e-bench", "transcript_path": "/tmp/x.jsonl",
            "cwd": self.dir, "hook_event_name": "SessionStart", "source": "startup"
        })
        .to_string()
        .into_bytes()
    }
}

/// A bare process: `coord --version`, no identity, no network.
pub fn bare() -> Command {
    let mut c = Command::new(COORD);
    c.arg("--version");
    c
}

pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    pub fn start(db: &Path, log: &Path) -> Server {
        Server::start_with(db, log, &[], &[])
    }

    /// With more arguments to `coord serve`, and variables.
    pub fn start_with(db: &Path, log: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(COORD)
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("coord serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().trim_start_matches("listening on ").to_string();
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

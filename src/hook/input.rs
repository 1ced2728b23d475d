//! Claude Code's input on stdin: read only when it is not a terminal,
//! bounded in size and time, and parsed leniently.

use super::*;

/// What Claude Code writes on stdin. Every field is optional; unknown ones
/// are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct HookInput {
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub hook_event_name: Option<String>,
    /// SessionEnd: why (`clear`, `resume`, `logout`, `prompt_input_exit`,
    /// `other`).
    #[serde(default)]
    pub reason: Option<String>,
}

impl HookInput {
    /// Parses the input leniently: anything unreadable means defaults.
    pub fn parse(bytes: &[u8]) -> HookInput {
        serde_json::from_slice(bytes).unwrap_or_default()
    }
}

/// Reads stdin only when it is not a terminal, with a size and time bound,
/// so an open pipe never holds the session up.
pub(crate) fn read_input(wait: Duration) -> HookInput {
    if std::io::stdin().is_terminal() {
        return HookInput::default();
    }
    read_bounded(wait)
        .map(|b| HookInput::parse(&b))
        .unwrap_or_default()
}

/// Unix: poll(2) before every read, so no thread is needed (this runs on
/// every session start, and a thread costs more than the read).
#[cfg(unix)]
pub(crate) fn read_bounded(wait: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut stdin = std::io::stdin().lock();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd, owned by this frame, and its count.
        let ready = unsafe { libc::poll(&mut fd, 1, ms) };
        if ready < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if ready <= 0 {
            return None; // time is up, or stdin cannot be polled
        }
        // Readable (or closed): one read returns without blocking.
        match stdin.read(&mut chunk) {
            Ok(0) => return Some(buf),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() as u64 >= MAX_INPUT {
                    return Some(buf);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Some(buf),
        }
    }
}

/// Elsewhere: read on a helper thread and stop waiting at the bound.
#[cfg(not(unix))]
pub(crate) fn read_bounded(wait: Duration) -> Option<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::stdin().take(MAX_INPUT).read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx.recv_timeout(wait).ok()
}

//! Timing processes: medians, percentiles, peak memory.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

pub struct Stats {
    pub min: f64,
    pub median: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub n: usize,
}

pub fn stats(mut ms: Vec<f64>) -> Stats {
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        min: ms[0],
        median: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
        max: ms[ms.len() - 1],
        n: ms.len(),
    }
}

/// Wall time of one process, from spawn to exit, stdin given, stdout dropped.
pub fn time_once(cmd: &mut Command, input: &[u8]) -> f64 {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let status = child.wait().expect("wait");
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    assert!(status.success(), "{cmd:?} failed");
    ms
}

pub fn time_many(runs: u64, mut make: impl FnMut() -> Command, input: &[u8]) -> Stats {
    // Warm the page cache and the server first.
    for _ in 0..5 {
        time_once(&mut make(), input);
    }
    stats((0..runs).map(|_| time_once(&mut make(), input)).collect())
}

/// Peak RSS in KiB of one run of `cmd`, measured in a fresh child of this
/// program so that nothing else counts (getrusage of the children).
#[cfg(target_os = "linux")]
pub fn peak_rss_kib(args: &[&str], envs: &[(&str, &str)]) -> Option<u64> {
    let out = Command::new(std::env::current_exe().ok()?)
        .arg("--measure-rss")
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[cfg(not(target_os = "linux"))]
pub fn peak_rss_kib(_: &[&str], _: &[(&str, &str)]) -> Option<u64> {
    None
}

#[cfg(target_os = "linux")]
pub fn measure_rss_child(args: &[String]) {
    let status = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if status.is_ok() {
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct we own.
        if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } == 0 {
            println!("{}", usage.ru_maxrss);
        }
    }
}

/// VmHWM of a running process (Linux).
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// A process's resident memory now, in KiB (Linux).
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

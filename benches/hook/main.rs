//! The benchmark: hook wall time (against `coord serve` and on the embedded
//! store), the Python baseline, failure modes against the deadline, `coord
//! serve` under load, peak memory and binary size. Prints a table and writes
//! BENCHMARKS.md. Run with `cargo bench` (or `scripts/bench`).
//!
//! Environment: COORD_BENCH_RUNS (default 300 hook runs per case),
//! COORD_BENCH_LOAD_SECS (default 10), COORD_BENCH_CLIENTS (default 32).
//! Everything talks to servers this program starts on 127.0.0.1.

mod dashboard;
mod delivery;
mod fixtures;
mod guard;
mod home;
mod load;
mod measure;
mod million;
mod pg;
mod report;
mod run;
#[path = "../../tests/it/env.rs"]
mod test_env;

pub const HOOK: &str = env!("CARGO_BIN_EXE_coord-hook");
pub const COORD: &str = env!("CARGO_BIN_EXE_coord");
pub const SESSION: &str = "BENCH/claude-main";
pub const DEADLINE_MS: u64 = 500;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

use load::long_polls;
#[cfg(target_os = "linux")]
use measure::measure_rss_child;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    #[cfg(target_os = "linux")]
    if args.first().map(String::as_str) == Some("--measure-rss") {
        measure_rss_child(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("--sleep") {
        // A stand-in for a Claude Code window (delivery states).
        let secs = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(600);
        std::thread::sleep(std::time::Duration::from_secs(secs));
        return;
    }
    if args.first().map(String::as_str) == Some("--long-polls") {
        long_polls(
            &args[1],
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000),
        );
        return;
    }
    if args.first().map(String::as_str) == Some("--load") {
        let Some(url) = args.get(1).filter(|u| u.starts_with("http")) else {
            eprintln!(
                "usage: cargo bench --bench hook -- --load http://HOST:PORT [SECS] [fleet] [CLIENTS]"
            );
            std::process::exit(2);
        };
        #[cfg(unix)]
        coord_hook::server::raise_fd_limit();
        let mix = if args.get(3).is_some_and(|m| m == "fleet") {
            load::Mix::Fleet
        } else {
            load::Mix::Inbox
        };
        let l = load::load_mix(
            url,
            args.get(4).and_then(|n| n.parse().ok()).unwrap_or(32),
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(5),
            mix,
        );
        println!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors; sends p50 {:.2} ms, p99 {:.2} ms",
            l.requests as f64 / l.secs,
            l.lat.median,
            l.lat.p99,
            l.errors,
            l.sends.median,
            l.sends.p99
        );
        return;
    }
    // `cargo bench -- NAME` filters; `cargo test --benches` runs with --test.
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    // 1,000 long-polls need more sockets than the default 1,024 file
    // descriptors (with the load clients and the children beside them).
    #[cfg(unix)]
    coord_hook::server::raise_fd_limit();
    let runs = env_num("COORD_BENCH_RUNS", 300);
    let load_secs = env_num("COORD_BENCH_LOAD_SECS", 10);
    let clients = env_num("COORD_BENCH_CLIENTS", 32) as usize;
    if std::env::var("COORD_BENCH_GUARD").is_ok_and(|v| v == "only") {
        let tmp = std::env::temp_dir().join(format!("coord-bench-g-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("bench folder");
        println!("{}", guard::run(&tmp, runs.min(100)));
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    }
    if std::env::var("COORD_BENCH_DASHBOARD").is_ok_and(|v| v == "only") {
        let tmp = std::env::temp_dir().join(format!("coord-bench-ui-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("bench folder");
        println!("{}", dashboard::run(&tmp, clients, load_secs));
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    }
    if std::env::var("COORD_BENCH_DELIVERY").is_ok_and(|v| v == "only") {
        let tmp = std::env::temp_dir().join(format!("coord-bench-d-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("bench folder");
        println!("{}", delivery::run(&tmp, runs.min(100)));
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    }
    if std::env::var("COORD_BENCH_PG").is_ok_and(|v| v == "only") {
        // The PostgreSQL section alone, printed, BENCHMARKS.md untouched.
        let tmp = std::env::temp_dir().join(format!("coord-bench-pg-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("bench folder");
        println!("{}", pg::run(&tmp, runs.min(100), clients, load_secs));
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    }
    let million_only = std::env::var("COORD_BENCH_MILLION").is_ok_and(|v| v == "only");
    if million_only {
        // The 1M section alone, printed, BENCHMARKS.md untouched.
        let tmp = std::env::temp_dir().join(format!("coord-bench-m-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("bench folder");
        println!("{}", million::run(&tmp, runs.min(100), clients, load_secs));
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    }
    let r = run::all(runs, load_secs, clients);
    let tmp = r.tmp.clone();
    report::write(r);
    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
    let append = |md: &str| {
        println!("{md}");
        let mut all = std::fs::read_to_string(out).unwrap_or_default();
        all.push_str(md);
        if let Err(e) = std::fs::write(out, all) {
            eprintln!("cannot write {out}: {e}");
        }
    };
    std::fs::create_dir_all(&tmp).expect("bench folder");
    append(&guard::run(&tmp, runs.min(100)));
    std::fs::create_dir_all(&tmp).expect("bench folder");
    append(&delivery::run(&tmp, runs.min(100)));
    std::fs::create_dir_all(&tmp).expect("bench folder");
    append(&dashboard::run(&tmp, clients, load_secs));
    // PostgreSQL (issue 22): on when the machine has it, COORD_BENCH_PG=0 off.
    if !std::env::var("COORD_BENCH_PG").is_ok_and(|v| v == "0") {
        std::fs::create_dir_all(&tmp).expect("bench folder");
        append(&pg::run(&tmp, runs.min(100), clients, load_secs));
    }
    if std::env::var("COORD_BENCH_MILLION").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(&tmp).expect("bench folder");
        append(&million::run(&tmp, runs.min(100), clients, load_secs));
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

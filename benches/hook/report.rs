//! The report: the table printed and written to BENCHMARKS.md.

use std::fmt::Write as _;

use crate::{COORD, DEADLINE_MS, HOOK};
use crate::{load::*, measure::*};

pub struct Row {
    pub case: String,
    pub s: Stats,
    pub target: String,
    pub met: Option<bool>,
}

/// Prints the table and writes BENCHMARKS.md.
pub fn write(r: crate::run::Results) {
    let crate::run::Results {
        mut rows,
        http,
        embedded,
        python,
        refused,
        blackholed,
        http_history,
        embedded_history,
        idle_quiet,
        idle_loaded,
        bare_quiet,
        bare_loaded,
        clients,
        l,
        lh,
        lp,
        lp_waiting,
        lp_returned,
        rss_http,
        rss_local,
        server_rss,
        prompt_rows,
        wake_rows,
        idle_cpu,
        version,
        tmp,
    } = r;

    let ratio = python.as_ref().map(|p| p.median / http.median);
    rows.push(Row {
        case: "hook → coord serve (loopback)".into(),
        met: Some(http.median <= 5.0),
        target: "median ≤ 5 ms".into(),
        s: http,
    });
    rows.push(Row {
        case: "hook → embedded store".into(),
        met: Some(embedded.median <= 3.0),
        target: "median ≤ 3 ms".into(),
        s: embedded,
    });
    if let Some(p) = python {
        rows.push(Row {
            case: "Python urllib script → coord serve".into(),
            met: ratio.map(|r| r >= 25.0),
            target: format!("hook ≥ 25× faster (is {:.1}×)", ratio.unwrap_or(0.0)),
            s: p,
        });
    }
    rows.push(Row {
        case: "hook, API refused".into(),
        met: Some(refused.median <= 30.0),
        target: "≤ 30 ms".into(),
        s: refused,
    });
    rows.push(Row {
        case: format!("hook, API black-holed ({DEADLINE_MS} ms deadline)"),
        met: Some(blackholed.max <= DEADLINE_MS as f64 + 50.0),
        target: format!("max ≤ {} ms", DEADLINE_MS + 50),
        s: blackholed,
    });

    let h_http = http_history.median / rows[0].s.median;
    let h_local = embedded_history.median / rows[1].s.median;
    let history_rows = [
        Row {
            case: "hook → coord serve, history store".into(),
            met: Some(h_http <= 1.3),
            target: format!("≤ 1.3× the fresh store (is {h_http:.2}×)"),
            s: http_history,
        },
        Row {
            case: "hook → embedded store, history store".into(),
            met: Some(h_local <= 1.3),
            target: format!("≤ 1.3× the fresh store (is {h_local:.2}×)"),
            s: embedded_history,
        },
    ];
    let loaded_ratio = idle_loaded.median / idle_quiet.median;
    let bare_ratio = bare_loaded.median / bare_quiet.median;
    let idle_rows = [
        Row {
            case: "empty-inbox hook → history server, unloaded".into(),
            met: None,
            target: String::new(),
            s: idle_quiet,
        },
        Row {
            case: format!("empty-inbox hook → history server under {clients}-client load"),
            met: Some(loaded_ratio <= 2.0),
            target: format!("≤ 2× unloaded (is {loaded_ratio:.2}×)"),
            s: idle_loaded,
        },
        Row {
            case: "control: bare `coord --version`, unloaded".into(),
            met: None,
            target: String::new(),
            s: bare_quiet,
        },
        Row {
            case: "control: bare `coord --version` under the same load".into(),
            met: None,
            target: format!("(is {bare_ratio:.2}× unloaded)"),
            s: bare_loaded,
        },
    ];
    let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let kib = |k: Option<u64>| {
        k.map_or("n/a".to_string(), |k| {
            format!("{:.1} MB", k as f64 / 1024.0)
        })
    };
    let yes = |m: Option<bool>| match m {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    };

    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `cargo bench` (benches/hook.rs) on {}; {} cores; {}. Hook runs: process spawn to exit, \
         stdin JSON given, output discarded; data: 20 unread messages, 5 todos, 2 locks.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::OS
    );
    let _ = writeln!(
        md,
        "| case | runs | min ms | median ms | p95 ms | max ms | target | met |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|---|");
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.case,
            r.s.n,
            r.s.min,
            r.s.median,
            r.s.p95,
            r.s.max,
            r.target,
            yes(r.met)
        );
    }
    let _ = writeln!(
        md,
        "\n## History\n\nThe same hook against stores with history (100,000 read messages to the session, 10,000 \
         read broadcasts, 50,000 expired locks, and the same 20 unread, 5 todos and 2 locks on top), in the same run \
         as the fresh cases above.\n\n| case | runs | min ms | median ms | p95 ms | max ms | target | met |\n\
         |---|---:|---:|---:|---:|---:|---|---|"
    );
    for r in history_rows.iter().chain(idle_rows.iter()) {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.case,
            r.s.n,
            r.s.min,
            r.s.median,
            r.s.p95,
            r.s.max,
            r.target,
            yes(r.met)
        );
    }
    let rps = l.requests as f64 / l.secs;
    let rps_h = lh.requests as f64 / lh.secs;
    let h_ratio = rps_h / rps;
    let h_ok = h_ratio >= 0.8 && lh.lat.p99 < 50.0 && lh.errors == 0;
    let _ = writeln!(
        md,
        "\n| coord serve under load | requests/s | p50 ms | p99 ms | max ms | errors | target | met |\n|---|---:|---:|---:|---:|---:|---|---|\n\
         | fresh store | {rps:.0} | {:.2} | {:.2} | {:.2} | {} | | |\n\
         | history store | {rps_h:.0} | {:.2} | {:.2} | {:.2} | {} | ≥ 0.8× fresh (is {h_ratio:.2}×), p99 < 50 ms, 0 errors | {} |",
        l.lat.median,
        l.lat.p99,
        l.lat.max,
        l.errors,
        lh.lat.median,
        lh.lat.p99,
        lh.lat.max,
        lh.errors,
        if h_ok { "yes" } else { "NO" }
    );
    let rps_lp = lp.requests as f64 / lp.secs;
    let lp_ratio = lp.lat.p99 / l.lat.p99;
    let _ = writeln!(
        md,
        "\n| coord serve, {clients} clients | requests/s | p50 ms | p99 ms | errors | target | met |\n|---|---:|---:|---:|---:|---|---|\n\
         | no long-polls waiting | {rps:.0} | {:.2} | {:.2} | {} | | |\n\
         | 1,000 long-polls waiting ({lp_waiting} held, {lp_returned} returned early) | {rps_lp:.0} | {:.2} | {:.2} | {} | p99 ≤ 1.5× none waiting (is {lp_ratio:.2}×) | {} |",
        l.lat.median,
        l.lat.p99,
        l.errors,
        lp.lat.median,
        lp.lat.p99,
        lp.errors,
        yes(Some(
            lp_ratio <= 1.5 && lp.errors == 0 && lp_waiting == 1000 && lp_returned == 0
        ))
    );
    let load_ok = rps >= 5000.0 && l.lat.p99 <= 20.0 && l.errors == 0;
    let _ = writeln!(
        md,
        "\n## coord serve under load\n\n{clients} concurrent keep-alive clients (3 inbox reads : 1 message send), {:.1} s, \
         load generator in the same process on the same 2 cores.\n\n\
         | requests/s | p50 ms | p99 ms | max ms | errors | server peak RSS | target | met |\n|---:|---:|---:|---:|---:|---:|---|---|\n\
         | {rps:.0} | {:.2} | {:.2} | {:.2} | {} | {} | ≥ 5,000 req/s, p99 ≤ 20 ms, 0 errors | {} |",
        l.secs,
        l.lat.median,
        l.lat.p99,
        l.lat.max,
        l.errors,
        kib(server_rss),
        if load_ok { "yes" } else { "NO" }
    );
    let _ = writeln!(
        md,
        "\n## Mid-session (prompt hook and waiter)\n\n| case | runs | median ms | p95 ms | max ms | target | met |\n|---|---:|---:|---:|---:|---|---|\n\
         | `coord --version` (a bare process) | {} | {:.2} | {:.2} | {:.2} | | |",
        version.n, version.median, version.p95, version.max
    );
    for (label, p) in &prompt_rows {
        let ratio = p.median / version.median;
        let _ = writeln!(
            md,
            "| prompt hook, nothing new → {label} | {} | {:.2} | {:.2} | {:.2} | ≤ 2.5× `coord --version` (is {ratio:.2}×) | {} |",
            p.n,
            p.median,
            p.p95,
            p.max,
            yes(Some(ratio <= 2.5))
        );
    }
    for (label, w) in &wake_rows {
        let _ = writeln!(
            md,
            "| send → waiter exit → {label} | {} | {:.1} | {:.1} | {:.1} | median ≤ 1,000 ms | {} |",
            w.n,
            w.median,
            w.p95,
            w.max,
            yes(Some(w.median <= 1000.0))
        );
    }
    for (label, c) in &idle_cpu {
        let _ = writeln!(
            md,
            "| idle waiter → {label}, CPU over 5 s | | {} | | | < 1% of a core | {} |",
            c.map_or("n/a".into(), |c| format!("{c:.2}%")),
            yes(c.map(|c| c < 1.0))
        );
    }
    let rss_ok = rss_http.max(rss_local).map(|k| k <= 10 * 1024);
    let _ = writeln!(
        md,
        "\n## Memory and size\n\n| what | value | target | met |\n|---|---:|---|---|\n\
         | hook peak RSS → coord serve | {} | ≤ 10 MB | {} |\n| hook peak RSS → embedded store | {} | ≤ 10 MB | {} |\n\
         | `coord-hook` binary | {:.1} MB | | |\n| `coord` binary | {:.1} MB | | |",
        kib(rss_http),
        yes(rss_ok),
        kib(rss_local),
        yes(rss_ok),
        size(HOOK) as f64 / 1e6,
        size(COORD) as f64 / 1e6
    );
    md.push_str(&notes());

    println!("{md}");
    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
    if let Err(e) = std::fs::write(out, &md) {
        eprintln!("cannot write {out}: {e}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

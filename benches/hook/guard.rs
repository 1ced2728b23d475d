//! The PreToolUse guard (issue 24): it runs before every edit, so it is
//! measured against a bare process (`coord --version`) in the same run,
//! with nothing claimed and with 100 claims in the fleet, on both backends;
//! and against a server that accepts and never answers (it must allow
//! within its 300 ms).

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::Path;

use coord_hook::backend::Coord;
use coord_hook::model::*;
use coord_hook::store::LocalStore;

use crate::{home::*, measure::*};

pub fn input(home: &Home) -> Vec<u8> {
    input_for(home, "PreToolUse")
}

fn input_for(home: &Home, event: &str) -> Vec<u8> {
    let repo = home.dir.join("shop");
    let _ = std::fs::create_dir_all(repo.join(".git"));
    let _ = std::fs::create_dir_all(repo.join("src"));
    serde_json::json!({
        "session_id": "0b5e-guard", "cwd": repo, "hook_event_name": event,
        "tool_name": "Edit", "tool_input": {"file_path": repo.join("src/main.rs")}
    })
    .to_string()
    .into_bytes()
}

/// 100 claims of other sessions on project `shop`, none covering the file.
pub fn claims(b: &dyn Coord) {
    for i in 0..100 {
        b.write(
            &Write::ClaimLock(NewLock {
                project: "shop".into(),
                resource: format!("r{i}"),
                session_id: format!("OTHER{i}/claude-main"),
                ttl_hours: Some(2.0),
                note: None,
                paths: vec![format!("area{i}/**")],
            }),
            None,
        )
        .expect("claim");
    }
}

pub fn run(tmp: &Path, runs: u64) -> String {
    let bare_ms = time_many(runs, bare, b"").median;
    let mut rows = Vec::new();
    for remote in [false, true] {
        let db = tmp.join(format!("guard-{remote}.db"));
        drop(LocalStore::open(&db).expect("store"));
        let srv = remote.then(|| Server::start(&db, &tmp.join("guard.log")));
        let identity = match &srv {
            Some(s) => serde_json::json!({"user": "bench", "machine": "BENCH", "coord_api": s.url}),
            None => serde_json::json!({"user": "bench", "machine": "BENCH", "coord_db": db}),
        };
        let home = Home::new(tmp, &format!("guard-home-{remote}"), identity);
        let inp = input(&home);
        let none = time_many(runs, || home.command(&["guard"]), &inp).median;
        let store = LocalStore::open(&db).expect("store");
        claims(&store);
        let hundred = time_many(runs, || home.command(&["guard"]), &inp).median;
        // After an edit: recorded (the once-a-minute stamp removed before
        // each run, outside the timing, so every run writes).
        let post = input_for(&home, "PostToolUse");
        let stamps = home.dir.join(".claude").join("coord-touched");
        let recorded = time_many(
            runs,
            || {
                let _ = std::fs::remove_dir_all(&stamps);
                home.command(&["guard"])
            },
            &post,
        )
        .median;
        rows.push((
            if remote {
                "coord serve"
            } else {
                "embedded store"
            },
            none,
            hundred,
            recorded,
        ));
    }
    // A server that accepts and never answers.
    let hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", hole.local_addr().expect("addr"));
    let home = Home::new(
        tmp,
        "guard-hole",
        serde_json::json!({"user": "bench", "machine": "BENCH", "coord_api": url}),
    );
    let inp = input(&home);
    let hole_ms = time_many(runs.min(20), || home.command(&["guard"]), &inp);
    drop(hole);
    let mut md = String::from("\n## The edit guard (issue 24)\n\n");
    let _ = writeln!(
        md,
        "`coord-hook guard` on an edit of an unclaimed file, against a bare `coord --version` ({bare_ms:.2} ms) in the same run.\n"
    );
    let _ = writeln!(
        md,
        "| backend | nothing claimed (ms) | ÷ bare | 100 claims in the fleet (ms) | ÷ bare | target | after an edit, recorded (ms) | ÷ bare |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|---:|---:|");
    for (b, none, hundred, recorded) in rows {
        let _ = writeln!(
            md,
            "| {b} | {none:.2} | {:.2}× | {hundred:.2} | {:.2}× | ≤ 2×, ≤ 2.5× | {recorded:.2} | {:.2}× |",
            none / bare_ms,
            hundred / bare_ms,
            recorded / bare_ms
        );
    }
    let _ = writeln!(
        md,
        "\nBefore an edit the guard asks for the project's claims and who else edited the file in the last 10 minutes, in one answer (`GET /claims` on coord serve; two indexed reads on the embedded store). After an edit it records the file at most once a minute per file; the column times the write itself."
    );
    let _ = writeln!(
        md,
        "\nAgainst a server that accepts and never answers: allowed after median {:.0} ms, max {:.0} ms (target: within 300 ms).",
        hole_ms.median, hole_ms.max
    );
    md
}

#![no_main]
//! What `coord serve` does with a request body: decode it as each write's
//! body and apply it to a real (in-memory) store. Every outcome is an answer
//! or an error with an HTTP status below 500 — never a panic, never a 5xx
//! for bad input.
use std::sync::Mutex;
use std::sync::OnceLock;

use coord_hook::backend::Coord;
use coord_hook::store::LocalStore;
use coord_hook::model::*;
use libfuzzer_sys::fuzz_target;

fn store() -> &'static Mutex<LocalStore> {
    static STORE: OnceLock<Mutex<LocalStore>> = OnceLock::new();
    STORE.get_or_init(|| {
        Mutex::new(LocalStore::open(std::path::Path::new(":memory:")).expect("store"))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut writes = Vec::new();
    if let Ok(m) = serde_json::from_slice::<NewMessage>(data) {
        writes.push(Write::SendMessage(m));
    }
    if let Ok(t) = serde_json::from_slice::<NewTodo>(data) {
        writes.push(Write::AddTodo(t));
    }
    if let Ok(l) = serde_json::from_slice::<NewLock>(data) {
        writes.push(Write::ClaimLock(l));
    }
    if let Ok(u) = serde_json::from_slice::<ComponentUpdate>(data) {
        writes.push(Write::SetComponent {
            project: "p".into(),
            component: "c".into(),
            update: u,
        });
    }
    if let Ok(u) = serde_json::from_slice::<WorkflowUpdate>(data) {
        writes.push(Write::SetWorkflow {
            name: "w".into(),
            update: u,
        });
    }
    let s = store().lock().unwrap();
    for w in writes {
        if let Err(e) = s.write(&w, None) {
            assert!(e.http_status() < 500, "{w:?} gave {e}");
        }
    }
});

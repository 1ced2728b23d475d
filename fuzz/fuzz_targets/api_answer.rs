#![no_main]
//! Bodies from an API server: every contract object, lists of them, and the
//! error `detail`, read without a panic; whatever parses renders into a hook
//! block that stays bounded and free of raw control characters.
use coord_hook::hook::{self, Snapshot};
use coord_hook::model::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = coord_hook::client::detail_of(data);
    let _ = serde_json::from_slice::<Status>(data);
    let _ = serde_json::from_slice::<Lock>(data);
    let _ = serde_json::from_slice::<Component>(data);
    let _ = serde_json::from_slice::<Workflow>(data);
    let todos = serde_json::from_slice::<Vec<Todo>>(data).ok();
    let messages = serde_json::from_slice::<Vec<Message>>(data).ok();
    if messages.is_some() || todos.is_some() {
        let snap = Snapshot {
            session: "A/b".into(),
            user: "u".into(),
            messages,
            message_total: None,
            todos,
            locks: Some(vec![]),
            notes: vec![],
            queue: None,
            earlier: 0,
        };
        let now = chrono::Utc::now();
        let block = hook::render_block(&snap, &now, hook::MAX_OUTPUT);
        assert!(hook::js_len(&block) <= hook::MAX_OUTPUT);
        assert!(
            !block
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        );
    }
});

#![no_main]
//! What Claude Code writes on the hook's stdin: anything parses (to defaults
//! at worst) without a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = coord_hook::hook::HookInput::parse(data);
});

#![no_main]
//! identity.json: any bytes give an identity or a one-line error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = coord_hook::identity::check(std::path::Path::new("identity.json"), data) {
        let line = e.to_string();
        assert!(!line.contains('\n') || line.contains("identity.json"));
    }
});

#![no_main]
//! A queue line: parses or is refused with a reason; what parses writes back
//! to a line that parses to the same entry.
use coord_hook::delivery::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Ok(entry) = Entry::from_line(&line) {
        let again = entry.to_line();
        assert!(!again.contains('\n'));
        assert_eq!(Entry::from_line(&again).ok(), Some(entry));
    }
});

//! Writing to the person: stdout for answers, stderr for one-line notes.
//! A closed pipe (`coord … | head`) is never an error. A leaf.

use std::io::Write as _;

/// Writes to stdout.
pub fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes()).and_then(|_| o.flush());
}

/// A one-line note on stderr.
pub fn note(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}

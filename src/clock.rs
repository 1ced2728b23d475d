//! The one place the current time comes from. A leaf.

use chrono::{DateTime, Utc};

/// Now, in UTC.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Now, in milliseconds since the epoch (what the stores keep).
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

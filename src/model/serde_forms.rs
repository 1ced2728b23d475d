//! The contract's times and ids as real servers send them: RFC 3339 or an
//! offset-less ISO time read as UTC, ids as numbers or strings.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serializer};

use super::Time;

// Time and id (de)serialisers.

/// Formats a time the way the contract writes it: RFC 3339, UTC, `Z`.
pub fn format_time(t: &Time) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Reads RFC 3339, or an offset-less ISO 8601 time (with or without
/// fractional seconds, `T` or space) as UTC, as Python servers send it.
pub fn parse_time(s: &str) -> Option<Time> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    None
}

pub fn from_millis(ms: i64) -> Time {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub mod time_serde {
    use super::*;
    pub fn serialize<S: Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let s = String::deserialize(d)?;
        parse_time(&s).ok_or_else(|| serde::de::Error::custom(format!("not a time: {s:?}")))
    }
}

pub mod opt_time {
    use super::*;
    pub fn serialize<S: Serializer>(t: &Option<Time>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_time(t)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => parse_time(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("not a time: {s:?}"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdRepr {
    Int(i64),
    Str(String),
}

fn id_from(r: IdRepr) -> Result<i64, String> {
    match r {
        IdRepr::Int(i) => Ok(i),
        IdRepr::Str(s) => s.trim().parse().map_err(|_| format!("not an id: {s:?}")),
    }
}

/// Ids are integers; a server may send them as JSON strings.
pub fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    id_from(IdRepr::deserialize(d)?).map_err(serde::de::Error::custom)
}

pub fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<IdRepr>::deserialize(d)? {
        None => Ok(None),
        Some(r) => id_from(r).map(Some).map_err(serde::de::Error::custom),
    }
}

//! What a damaged registry file still says: the whole windows in it.

use super::registry::Window;

/// The whole windows (a pid and a name) that damaged registry bytes still
/// name, with nothing shown: showing a message again is the safe side.
pub(super) fn salvage(bytes: &[u8]) -> Vec<Window> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(i) = rest.find("\"pid\"") {
        rest = &rest[i + 5..];
        let num = rest.trim_start_matches([':', ' ', '\n', '\r', '\t']);
        let digits: String = num.chars().take_while(char::is_ascii_digit).collect();
        let after = &num[digits.len()..];
        // The number must be whole: followed by a separator, not cut off.
        if !after.starts_with([',', '}', ' ', '\n', '\r']) {
            continue;
        }
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        // This window's name, before the next window starts.
        let own = after.split("\"pid\"").next().unwrap_or("");
        let Some(j) = own.find("\"name\"") else {
            continue;
        };
        let value = own[j + 6..].trim_start_matches([':', ' ', '\n', '\r', '\t']);
        let mut de = serde_json::Deserializer::from_str(value).into_iter::<String>();
        if let Some(Ok(name)) = de.next()
            && crate::model::name_problem(&name).is_none()
        {
            out.push(Window {
                pid,
                name,
                project: None,
                shown: Vec::new(),
                waiter: None,
                conversations: Vec::new(),
                block_at_ms: 0,
                seen_ms: crate::clock::now_ms(),
                unreported: Vec::new(),
            });
        }
    }
    out
}

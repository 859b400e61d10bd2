//! A relayed message between parsing and delivery, as the text its target will receive minus
//! the fields only the server sets. The frame is cut from the sender's own text once, at parse
//! time, and the hub finishes it with the sender's name: no JSON tree, one string per message
//! (issue 9). Building the text here is also where the spoofing rules live: a member the
//! server sets (`name`, `from`, and `target` when it fills it in) is dropped from the sender's
//! text however it was spelt (`"fr\u006fm"` is `from`), and of duplicate keys only the last
//! stays, the one serde_json's `Map` and every browser's `JSON.parse` keep, so the target can
//! never read a value the server did not check or set.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::json_scan::{self, push_str_literal, Member};
use super::protocol::TutorialKind;

/// Room kept at the end of a frame for the server's fields, so that a usual sender name fits
/// without growing the string.
const SERVER_FIELDS: usize = 64;

/// Up to this many members, duplicates are found by comparing keys pairwise.
const FEW_MEMBERS: usize = 16;

/// An object's braces, escaped (a bare one in a char literal would unbalance the brace count of
/// tests/layers.rs).
const OPEN: char = '\u{7b}';
const CLOSE: char = '\u{7d}';

/// A relayed frame waiting for the server's fields: an open JSON object (no closing brace).
/// Two are equal if they carry the same JSON object (key order and spacing aside).
#[derive(Debug, Clone)]
pub struct Relayed {
    text: String,
    /// Tutorial dialect: where the payload (the value of the member named like the type)
    /// starts in `text`, if there is one.
    payload_at: Option<usize>,
    /// `path` of a call message when it is `relay` or `direct` (the call log's only reading
    /// of a body).
    path: Option<&'static str>,
}

impl Relayed {
    /// A call message (MDN dialect, callbox call control), relayed whole: every member of
    /// `members` once (the last of duplicates), without `name` and `from`, and without
    /// `target` when `keep_target` is false (the server fills it in).
    pub fn call(members: &[Member<'_>], keep_target: bool) -> Relayed {
        let size: usize = members
            .iter()
            .map(|m| m.key_literal.len() + m.value.len() + 2)
            .sum();
        let mut text = String::with_capacity(1 + size + SERVER_FIELDS);
        text.push(OPEN);
        // Where each key last appears: by comparing with the members after it when there are
        // few, through a map when there are many (a 64 KiB frame can hold ~10,000 members, and
        // comparing each with every later one would cost seconds).
        let last_of: Option<HashMap<Cow<'_, str>, usize>> =
            (members.len() > FEW_MEMBERS).then(|| {
                let keys = members.iter().enumerate();
                keys.filter_map(|(i, m)| Some((m.key()?, i))).collect()
            });
        for (i, member) in members.iter().enumerate() {
            let superseded = match &last_of {
                Some(last_of) => member.key().and_then(|k| last_of.get(&k).copied()) != Some(i),
                None => {
                    let later = members.get(i + 1..).unwrap_or(&[]);
                    later.iter().any(|m| m.same_key(member))
                }
            };
            let dropped = member.key_is("name")
                || member.key_is("from")
                || (!keep_target && member.key_is("target"));
            if dropped || superseded {
                continue;
            }
            push_separator(&mut text);
            text.push_str(member.key_literal);
            text.push(':');
            text.push_str(member.value);
        }
        let path = json_scan::last(members, "path")
            .and_then(|m| m.as_str())
            .and_then(|p| ["relay", "direct"].into_iter().find(|known| *known == p));
        Relayed {
            text,
            payload_at: None,
            path,
        }
    }

    /// A tutorial message in the tutorial's shape: `{"type":kind,kind:payload}`, the payload
    /// (the sender's value of the member named like the type) as sent.
    pub fn tutorial(kind: TutorialKind, payload: Option<&str>) -> Relayed {
        let kind = kind.as_str();
        let size = 2 * kind.len() + payload.map_or(0, str::len) + 16;
        let mut text = String::with_capacity(size + SERVER_FIELDS);
        text.push_str("{\"type\":");
        push_str_literal(&mut text, kind);
        let payload_at = payload.map(|payload| {
            text.push(',');
            push_str_literal(&mut text, kind);
            text.push(':');
            let at = text.len();
            text.push_str(payload);
            at
        });
        Relayed {
            text,
            payload_at,
            path: None,
        }
    }

    /// The frame for the target: the sender's name as `name` and `from`, and `target` when the
    /// server fills it in (a `hang-up` that named none goes to the sender's call partner).
    pub fn finish(self, sender: &str, target: Option<&str>) -> String {
        let mut text = self.text;
        for (key, value) in [
            ("name", Some(sender)),
            ("from", Some(sender)),
            ("target", target),
        ] {
            if let Some(value) = value {
                push_separator(&mut text);
                push_str_literal(&mut text, key);
                text.push(':');
                push_str_literal(&mut text, value);
            }
        }
        text.push(CLOSE);
        text
    }

    /// `path` of a call message, when it is one the call log knows.
    pub fn path(&self) -> Option<&'static str> {
        self.path
    }

    /// The members as a map (a call message forwarded to another cluster node).
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_str(&format!("{}}}", self.text)).unwrap_or_default()
    }

    /// A call message from a map (from another cluster node), under the same rules as one
    /// from a client.
    pub fn call_from_map(map: &Map<String, Value>, keep_target: bool) -> Option<Relayed> {
        let text = serde_json::to_string(map).ok()?;
        let members = json_scan::collect(&text)?;
        Some(Relayed::call(members.as_slice(), keep_target))
    }

    /// The tutorial payload as a value (forwarded to another cluster node).
    pub fn payload(&self) -> Option<Value> {
        let payload = self.text.get(self.payload_at?..)?;
        serde_json::from_str(payload).ok()
    }

    /// A tutorial message from a payload value (from another cluster node).
    pub fn tutorial_from_value(kind: TutorialKind, payload: Option<&Value>) -> Relayed {
        let payload = payload.map(Value::to_string);
        Relayed::tutorial(kind, payload.as_deref())
    }
}

impl PartialEq for Relayed {
    fn eq(&self, other: &Relayed) -> bool {
        self.to_map() == other.to_map() && self.path == other.path
    }
}

/// A comma unless the object is still empty.
fn push_separator(text: &mut String) {
    if !text.ends_with(OPEN) {
        text.push(',');
    }
}

#[cfg(test)]
#[path = "relayed_tests.rs"]
mod tests;

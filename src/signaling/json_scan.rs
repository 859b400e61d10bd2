//! JSON frames read without building a tree. Parsing every relayed frame into a
//! `serde_json::Map` and writing it out again cost a fifth of the relay's CPU per message, and
//! its allocations much of the rest (issue 9), while the relay needs only a few top-level
//! fields and passes everything else on as the sender wrote it.
//!
//! Two steps, so that what is refused does not change: [`validate`] runs serde_json's own
//! parser over the whole frame keeping nothing, so a frame is `invalid-json` exactly when
//! `serde_json::from_str::<Value>` fails on it (escapes, surrogates, number range, nesting
//! limit, trailing characters); [`members`] then walks the top level of the validated text by
//! hand, which only has to find where strings and brackets end. The one text read differently
//! from `Value` is an object whose first key is serde_json's private raw-value marker, which
//! `Value` (with the `raw_value` feature axum turns on) expands as embedded JSON; here it is an
//! ordinary key, as it is to every browser.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// True if `text` is one JSON value as serde_json reads it. Allocates nothing except
/// serde_json's scratch buffer, once, when a string has escapes.
pub fn validate(text: &str) -> bool {
    let mut de = serde_json::Deserializer::from_str(text);
    Valid::deserialize(&mut de).is_ok() && de.end().is_ok()
}

/// Any JSON value, checked and dropped. `deserialize_any` (not `deserialize_ignored_any`,
/// which skips strings and numbers without decoding them) so strings and numbers get the
/// checks `Value` gets.
struct Valid;

impl<'de> Deserialize<'de> for Valid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Valid, D::Error> {
        deserializer.deserialize_any(Valid)
    }
}

impl<'de> Visitor<'de> for Valid {
    type Value = Valid;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_str<E>(self, _: &str) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_unit<E>(self) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Valid, A::Error> {
        while seq.next_element::<Valid>()?.is_some() {}
        Ok(Valid)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Valid, A::Error> {
        while map.next_key::<ValidKey>()?.is_some() {
            map.next_value::<Valid>()?;
        }
        Ok(Valid)
    }
}

/// An object key, decoded as `Value` decodes its keys (so its escapes are checked too).
struct ValidKey;

impl<'de> Deserialize<'de> for ValidKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ValidKey, D::Error> {
        deserializer.deserialize_str(ValidKey)
    }
}

impl<'de> Visitor<'de> for ValidKey {
    type Value = ValidKey;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, _: &str) -> Result<ValidKey, E> {
        Ok(ValidKey)
    }
}

/// One top-level member of a validated object, as text: the key as a JSON string literal
/// (quotes and escapes as sent) and the value as sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Member<'a> {
    pub key_literal: &'a str,
    pub value: &'a str,
}

impl<'a> Member<'a> {
    /// The key, decoded (borrowed when it has no escapes, as keys almost always do).
    pub fn key(&self) -> Option<Cow<'a, str>> {
        decode(self.key_literal)
    }

    /// True if the key, decoded, is `name`.
    pub fn key_is(&self, name: &str) -> bool {
        self.key().is_some_and(|key| key == name)
    }

    /// True if both keys decode to the same string.
    pub fn same_key(&self, other: &Member<'_>) -> bool {
        let escaped = |m: &Member<'_>| m.key_literal.contains('\\');
        if !escaped(self) && !escaped(other) {
            return self.key_literal == other.key_literal;
        }
        matches!((self.key(), other.key()), (Some(a), Some(b)) if a == b)
    }

    /// The value, decoded, if it is a string.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        decode(self.value)
    }
}

/// A string literal from validated text, decoded; None if `literal` is not a string.
fn decode(literal: &str) -> Option<Cow<'_, str>> {
    let inner = literal.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(literal).ok().map(Cow::Owned)
}

/// The top-level members of `text`, which [`validate`] accepted, in order (duplicates
/// included); None if it is not an object.
pub fn members(text: &str) -> Option<Members<'_>> {
    // An opening brace (a byte literal of it would unbalance tests/layers.rs's brace count).
    const OPEN: u8 = 0x7b;
    let start = skip_ws(text.as_bytes(), 0);
    (text.as_bytes().get(start) == Some(&OPEN)).then_some(Members {
        text,
        pos: start + 1,
    })
}

pub struct Members<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        let member = self.step();
        if member.is_none() {
            self.pos = self.text.len();
        }
        member
    }
}

impl<'a> Members<'a> {
    fn step(&mut self) -> Option<Member<'a>> {
        let bytes = self.text.as_bytes();
        let mut at = skip_ws(bytes, self.pos);
        if bytes.get(at) == Some(&b',') {
            at = skip_ws(bytes, at + 1);
        }
        if bytes.get(at) != Some(&b'"') {
            return None; // the closing brace
        }
        let key_end = string_end(bytes, at)?;
        let colon = skip_ws(bytes, key_end);
        if bytes.get(colon) != Some(&b':') {
            return None;
        }
        let value = skip_ws(bytes, colon + 1);
        let value_end = value_end(bytes, value)?;
        self.pos = value_end;
        Some(Member {
            key_literal: self.text.get(at..key_end)?,
            value: self.text.get(value..value_end)?,
        })
    }
}

/// The members of `text` in a slice, on the stack unless there are more than a frame usually
/// has. None if `text` is not an object.
pub fn collect(text: &str) -> Option<Collected<'_>> {
    let mut out = Collected {
        inline: [Member::default(); INLINE],
        len: 0,
        heap: Vec::new(),
    };
    for member in members(text)? {
        if out.len < INLINE {
            out.inline[out.len] = member;
        } else {
            if out.heap.is_empty() {
                out.heap.extend_from_slice(&out.inline);
            }
            out.heap.push(member);
        }
        out.len += 1;
    }
    Some(out)
}

const INLINE: usize = 16;

pub struct Collected<'a> {
    inline: [Member<'a>; INLINE],
    len: usize,
    heap: Vec<Member<'a>>,
}

impl<'a> Collected<'a> {
    pub fn as_slice(&self) -> &[Member<'a>] {
        match self.heap.is_empty() {
            true => &self.inline[..self.len],
            false => &self.heap,
        }
    }
}

/// The last member named `key`, as a parser that keeps the last of duplicate keys reads it
/// (serde_json's `Map` and the browsers' `JSON.parse` both do).
pub fn last<'a>(members: &[Member<'a>], key: &str) -> Option<Member<'a>> {
    members.iter().rev().find(|m| m.key_is(key)).copied()
}

fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// Where the string literal starting at `at` (its opening quote) ends, past the closing quote.
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut at = at + 1;
    loop {
        at += quote_or_escape(bytes.get(at..)?)?;
        match bytes.get(at)? {
            b'"' => return Some(at + 1),
            _ => at += 2, // an escape: its next byte is never the closing quote
        }
    }
}

/// Index of the first `"` or `\\` in `bytes`, eight bytes at a time (most of a relayed
/// frame is string content: SDP lines, ICE candidates).
fn quote_or_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Nonzero if some byte of `word` is `byte` (the classic has-zero-byte test on the XOR).
    let has = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let mut skipped = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        if has(word, b'"') | has(word, b'\\') != 0 {
            break;
        }
        skipped += 8;
    }
    let rest = bytes.get(skipped..)?;
    let found = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    Some(skipped + found)
}

/// Where the value starting at `at` ends.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => {
            let (mut depth, mut at) = (0usize, at);
            loop {
                match bytes.get(at)? {
                    b'"' => {
                        at = string_end(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            let len = bytes
                .get(at..)?
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'));
            Some(len.map_or(bytes.len(), |len| at + len))
        }
    }
}

/// Appends `s` as a JSON string literal, escaped as serde_json escapes it.
pub fn push_str_literal(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b < b' ' || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let low = usize::from(c as u8 & 0xf);
                let high = usize::from(c as u8 >> 4);
                out.push_str("\\u00");
                out.push(char::from(HEX[high]));
                out.push(char::from(HEX[low]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
#[path = "json_scan_tests.rs"]
mod tests;

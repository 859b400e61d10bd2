//! Who is online, told at a cost that does not grow with the room per login. A login gets the
//! room's list once (a `userlist` frame cached until the next flush, so a burst of logins
//! shares one serialisation); everybody else learns of joins and leaves from one batched frame
//! per room per [`PRESENCE_INTERVAL_MS`]: a `presence` delta for clients that asked for deltas,
//! a full `userlist` for the tutorials' clients. Each frame is serialised once and shared by
//! every recipient. Plain state: the hub calls [`Presence::flush`] with the time from one
//! room-level tick, no timer per connection.

use std::collections::BTreeMap;

use axum::extract::ws::Utf8Bytes;
use serde_json::json;

/// Shortest time between two presence frames to the same room.
pub const PRESENCE_INTERVAL_MS: u64 = 200;

/// Most bytes of names in one frame of a delta client's login list.
const CHUNK_BYTES: usize = 2048;

/// What a logged-in user is told about the room's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceMode {
    /// The whole `userlist` after every batch of changes (MDN's demo, the Spanish tutorial).
    Full,
    /// `presence` deltas after the login's `userlist` (the callbox page asks for these).
    Delta,
}

/// One name key's changes since the last flush.
#[derive(Debug)]
struct Change {
    /// Display name at the last flush (None: not in the room then).
    was: Option<String>,
    /// Latest display name seen under this key (a reclaim may change its case).
    last: String,
}

/// The frames one flush sends.
pub struct Batch {
    pub delta: Utf8Bytes,
    pub full: Utf8Bytes,
}

/// A room's pending presence changes and its cached login snapshot.
#[derive(Debug, Default)]
pub struct Presence {
    changed: BTreeMap<String, Change>,
    last_flush_ms: Option<u64>,
    /// The `userlist` frame handed to logins since the last flush.
    snapshot: Option<Utf8Bytes>,
    /// The same list in frames of at most [`CHUNK_BYTES`] of names, for delta clients.
    chunks: Option<Vec<Utf8Bytes>>,
}

/// The `userlist` frame for these names.
pub fn user_list_frame<'a>(names: impl Iterator<Item = &'a str>) -> Utf8Bytes {
    let users: Vec<&str> = names.collect();
    json!({"type": "userlist", "users": users})
        .to_string()
        .into()
}

impl Presence {
    /// Notes that `key` is about to change; `was` is its display name before the change.
    pub fn note(&mut self, key: &str, was: Option<&str>, last: &str) {
        let change = self.changed.entry(key.to_string()).or_insert(Change {
            was: was.map(str::to_string),
            last: String::new(),
        });
        change.last = last.to_string();
    }

    pub fn is_dirty(&self) -> bool {
        !self.changed.is_empty()
    }

    /// The list for a new login: cached, so logins between two flushes share one frame. It may
    /// lag behind by the changes of this interval, which the next flush sends.
    pub fn snapshot<'a>(&mut self, names: impl Iterator<Item = &'a str>) -> Utf8Bytes {
        self.snapshot
            .get_or_insert_with(|| user_list_frame(names))
            .clone()
    }

    /// The login list in small frames: a `userlist` with the first names, then `presence`
    /// frames that join the rest. Cached like [`Presence::snapshot`].
    pub fn snapshot_chunks<'a>(&mut self, names: impl Iterator<Item = &'a str>) -> Vec<Utf8Bytes> {
        self.chunks
            .get_or_insert_with(|| {
                let mut frames = Vec::new();
                let mut chunk: Vec<&str> = Vec::new();
                let mut bytes = 0;
                let emit = |chunk: &mut Vec<&str>, frames: &mut Vec<Utf8Bytes>| {
                    let frame = if frames.is_empty() {
                        json!({"type": "userlist", "users": chunk})
                    } else {
                        json!({"type": "presence", "joined": chunk, "left": []})
                    };
                    frames.push(frame.to_string().into());
                    chunk.clear();
                };
                for name in names {
                    if bytes + name.len() > CHUNK_BYTES && !chunk.is_empty() {
                        emit(&mut chunk, &mut frames);
                        bytes = 0;
                    }
                    bytes += name.len() + 3;
                    chunk.push(name);
                }
                if !chunk.is_empty() || frames.is_empty() {
                    emit(&mut chunk, &mut frames);
                }
                frames
            })
            .clone()
    }

    /// Whether a flush at `now_ms` would keep to one frame per interval.
    pub fn due(&self, now_ms: u64) -> bool {
        self.is_dirty()
            && self
                .last_flush_ms
                .is_none_or(|last| now_ms.saturating_sub(last) >= PRESENCE_INTERVAL_MS)
    }

    /// The batch of changes since the last flush, given each changed key's current display
    /// name (`current`) and the room's names now. Every changed key is in it, even one that
    /// came and went, since a login in between may have seen it in its snapshot.
    pub fn flush<'a>(
        &mut self,
        now_ms: u64,
        current: impl Fn(&str) -> Option<&'a str>,
        names: impl Iterator<Item = &'a str>,
    ) -> Option<Batch> {
        if !self.due(now_ms) {
            return None;
        }
        self.last_flush_ms = Some(now_ms);
        let mut joined = Vec::new();
        let mut left: Vec<String> = Vec::new();
        for (key, change) in std::mem::take(&mut self.changed) {
            let now = current(&key);
            for gone in [change.was, Some(change.last)].into_iter().flatten() {
                if Some(gone.as_str()) != now && !left.contains(&gone) {
                    left.push(gone);
                }
            }
            if let Some(now) = now {
                joined.push(now);
            }
        }
        let delta = json!({"type": "presence", "joined": joined, "left": left});
        let full = user_list_frame(names);
        // The list now is what a login until the next flush should see first.
        self.snapshot = Some(full.clone());
        self.chunks = None;
        Some(Batch {
            delta: delta.to_string().into(),
            full,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flush(p: &mut Presence, now: u64, room: &[&'static str]) -> Option<serde_json::Value> {
        let lookup = |key: &str| room.iter().copied().find(|n| n.to_lowercase() == key);
        let batch = p.flush(now, lookup, room.iter().copied())?;
        serde_json::from_str(batch.delta.as_str()).ok()
    }

    #[test]
    fn many_changes_in_one_interval_make_one_delta() {
        let mut p = Presence::default();
        for name in ["ann", "bob", "cat"] {
            p.note(name, None, name);
        }
        p.note("bob", Some("bob"), "bob");
        let delta = flush(&mut p, 1000, &["ann", "cat"]).unwrap();
        assert_eq!(delta["joined"], json!(["ann", "cat"]));
        assert_eq!(delta["left"], json!(["bob"]), "came and went: still told");
        assert!(
            flush(&mut p, 1001, &["ann", "cat"]).is_none(),
            "nothing new"
        );
    }

    #[test]
    fn a_second_batch_waits_for_the_interval() {
        let mut p = Presence::default();
        p.note("ann", None, "ann");
        assert!(flush(&mut p, 1000, &["ann"]).is_some());
        p.note("bob", None, "bob");
        assert!(flush(&mut p, 1000 + PRESENCE_INTERVAL_MS - 1, &["ann", "bob"]).is_none());
        let delta = flush(&mut p, 1000 + PRESENCE_INTERVAL_MS, &["ann", "bob"]).unwrap();
        assert_eq!(delta["joined"], json!(["bob"]));
    }

    #[test]
    fn a_new_case_for_a_name_removes_the_old_one() {
        let mut p = Presence::default();
        p.note("bob", Some("Bob"), "Bob");
        p.note("bob", None, "BOB");
        let delta = flush(&mut p, 0, &["BOB"]).unwrap();
        assert_eq!(delta["left"], json!(["Bob"]));
        assert_eq!(delta["joined"], json!(["BOB"]));
    }

    #[test]
    fn logins_between_flushes_share_one_snapshot() {
        let mut p = Presence::default();
        let first = p.snapshot(["ann"].into_iter());
        let second = p.snapshot(["ann", "bob"].into_iter());
        assert_eq!(first, second);
        p.note("bob", None, "bob");
        let batch = p.flush(0, |_| Some("bob"), ["ann", "bob"].into_iter());
        assert!(batch.is_some());
        let third = p.snapshot(["ignored"].into_iter());
        assert_eq!(
            third.as_str(),
            r#"{"type":"userlist","users":["ann","bob"]}"#
        );
    }

    #[test]
    fn a_big_login_list_comes_in_small_frames() {
        let mut p = Presence::default();
        let names: Vec<String> = (0..2000).map(|i| format!("user{i:05}")).collect();
        let frames = p.snapshot_chunks(names.iter().map(String::as_str));
        assert!(frames.len() > 5, "{}", frames.len());
        let mut seen = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            assert!(frame.len() <= CHUNK_BYTES + 100, "{}", frame.len());
            let v: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
            let (kind, list) = if i == 0 {
                ("userlist", "users")
            } else {
                ("presence", "joined")
            };
            assert_eq!(v["type"], kind);
            let list = v[list].as_array().unwrap();
            seen.extend(list.iter().map(|n| n.as_str().unwrap().to_string()));
        }
        assert_eq!(seen, names);
        let empty = Presence::default().snapshot_chunks(std::iter::empty());
        assert_eq!(empty.len(), 1, "an empty room is one empty userlist");
    }
}

//! One room's users and who is in a call with whom, as plain state for the [`super::hub::Hub`].
//! The call record is what lets the server tell a peer `hang-up`/`leave` when its partner
//! vanishes, and route a `hang-up` that names no target (MDN's client sends those).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;

use super::hub::{ConnId, Delivery, Outbound};
use super::presence::{Presence, PresenceMode};
use super::protocol::{CallEffect, Dialect, ServerMsg};

pub(super) struct User {
    pub name: String,
    pub conn: ConnId,
    pub dialect: Dialect,
    pub token: String,
    pub presence: PresenceMode,
    /// Name key of the user this one is in a call with.
    pub peer: Option<String>,
}

#[derive(Default)]
pub(super) struct Room {
    /// Name key -> user.
    pub users: BTreeMap<String, User>,
    pub presence: Presence,
}

pub(super) fn send(to: ConnId, msg: ServerMsg) -> Delivery {
    Delivery {
        to,
        out: Outbound::Msg(Box::new(msg)),
    }
}

impl Room {
    pub fn user_list(&self) -> Arc<[String]> {
        self.users.values().map(|u| u.name.clone()).collect()
    }

    /// One frame to everyone, serialised once and shared.
    pub fn broadcast(&self, msg: &ServerMsg, out: &mut Vec<Delivery>) {
        let frame: Utf8Bytes = msg.to_text().into();
        out.extend(self.users.values().map(|u| Delivery {
            to: u.conn,
            out: Outbound::Frame(frame.clone()),
        }));
    }

    /// Adds (or replaces) a user; the room hears of it at the next flush.
    pub fn insert_user(&mut self, key: String, user: User) {
        let was = self.users.get(&key).map(|u| u.name.as_str());
        self.presence.note(&key, was, &user.name);
        self.users.insert(key, user);
    }

    pub fn remove_user(&mut self, key: &str) -> Option<User> {
        let gone = self.users.remove(key)?;
        self.presence.note(key, Some(&gone.name), &gone.name);
        Some(gone)
    }

    /// The list a new login is sent first, as one `userlist`.
    pub fn snapshot(&mut self) -> Utf8Bytes {
        let names = self.users.values().map(|u| u.name.as_str());
        self.presence.snapshot(names)
    }

    /// The same list for a delta client, in frames of a few KiB (a `userlist`, then
    /// `presence` joins): every frame a connection ever sends sizes its write buffer for good.
    pub fn snapshot_chunks(&mut self) -> Vec<Utf8Bytes> {
        let names = self.users.values().map(|u| u.name.as_str());
        self.presence.snapshot_chunks(names)
    }

    /// The batched presence frame to everyone, if one is due at `now_ms`.
    pub fn flush_presence(&mut self, now_ms: u64, out: &mut Vec<Delivery>) {
        let users = &self.users;
        let current = |key: &str| users.get(key).map(|u| u.name.as_str());
        let names = users.values().map(|u| u.name.as_str());
        let Some(batch) = self.presence.flush(now_ms, current, names) else {
            return;
        };
        out.extend(users.values().map(|u| Delivery {
            to: u.conn,
            out: Outbound::Frame(match u.presence {
                PresenceMode::Delta => batch.delta.clone(),
                PresenceMode::Full => batch.full.clone(),
            }),
        }));
    }

    /// Name key of the user `key` is in a call with.
    pub fn peer_of(&self, key: &str) -> Option<&str> {
        self.users.get(key)?.peer.as_deref()
    }

    /// Records what a signal between `a` (sender) and `b` (target) says about their call.
    pub fn apply(&mut self, effect: CallEffect, a: &str, b: &str) {
        match effect {
            CallEffect::Starts => self.note_call(a, b),
            CallEffect::Relearns => self.relearn_call(a, b),
            CallEffect::Ends => self.end_call(a, b),
            CallEffect::None => {}
        }
    }

    /// Notes a call; each side's previous call partner (if any) is forgotten.
    fn note_call(&mut self, a: &str, b: &str) {
        if a == b {
            return;
        }
        for (me, other) in [(a, b), (b, a)] {
            let previous = self
                .users
                .get_mut(me)
                .and_then(|u| u.peer.replace(other.to_string()));
            if let Some(previous) = previous.filter(|p| p != other) {
                self.clear_peer_if(&previous, me);
            }
        }
    }

    /// Notes a call only if neither side is in a call with someone else.
    fn relearn_call(&mut self, a: &str, b: &str) {
        let free_for = |me: &str, other: &str| {
            self.users
                .get(me)
                .is_some_and(|u| u.peer.as_deref().is_none_or(|p| p == other))
        };
        if free_for(a, b) && free_for(b, a) {
            self.note_call(a, b);
        }
    }

    fn end_call(&mut self, a: &str, b: &str) {
        self.clear_peer_if(a, b);
        self.clear_peer_if(b, a);
    }

    pub fn clear_peer_if(&mut self, user: &str, peer: &str) {
        if let Some(u) = self.users.get_mut(user) {
            if u.peer.as_deref() == Some(peer) {
                u.peer = None;
            }
        }
    }
}

//! One room's users and who is in a call with whom, as plain state for the [`super::hub::Hub`].
//! The call record is what lets the server tell a peer `hang-up`/`leave` when its partner
//! vanishes, and route a `hang-up` that names no target (MDN's client sends those).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::hub::{ConnId, Delivery, Outbound};
use super::protocol::{CallEffect, Dialect, ServerMsg};

pub(super) struct User {
    pub name: String,
    pub conn: ConnId,
    pub dialect: Dialect,
    pub token: String,
    /// Name key of the user this one is in a call with.
    pub peer: Option<String>,
}

#[derive(Default)]
pub(super) struct Room {
    /// Name key -> user.
    pub users: BTreeMap<String, User>,
}

pub(super) fn send(to: ConnId, msg: ServerMsg) -> Delivery {
    Delivery {
        to,
        out: Outbound::Msg(msg),
    }
}

impl Room {
    pub fn user_list(&self) -> Arc<[String]> {
        self.users.values().map(|u| u.name.clone()).collect()
    }

    pub fn broadcast(&self, msg: &ServerMsg, out: &mut Vec<Delivery>) {
        out.extend(self.users.values().map(|u| send(u.conn, msg.clone())));
    }

    pub fn broadcast_user_list(&self, out: &mut Vec<Delivery>) {
        self.broadcast(&ServerMsg::UserList(self.user_list()), out);
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

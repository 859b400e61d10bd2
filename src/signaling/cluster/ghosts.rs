//! The other nodes' side of [`Cluster`]: their events turn into ghosts joining, leaving,
//! chatting and sending in this node's hub.

use std::collections::HashSet;

use super::{login_ok, Cluster, NameKey, Op, PLACEHOLDER_PREFIX};
use crate::signaling::cluster::wire::{ClaimRecord, Event, EVENTS};
use crate::signaling::hub::{ConnId, Delivery, Hub};
use crate::signaling::protocol::{Dialect, LoginRequest, Routed};

impl Cluster {
    /// What another node said. Events from this node (echoes of our own publishes) are ignored.
    pub fn remote(&mut self, hub: &mut Hub, event: Event, now_ms: u64) -> Vec<Delivery> {
        if event.node() == self.node {
            return Vec::new();
        }
        match event {
            Event::Joined {
                node,
                room,
                key,
                name,
            } => self.ghost_joined(hub, node, room, key, name),
            Event::Left { node, room, key } => self.ghost_left(hub, &node, room, key),
            Event::Chat {
                node,
                room,
                key,
                text,
                date,
            } => match self.ghost(&node, room, key) {
                Some(ghost) => hub.route(ghost, Routed::Chat { text }, date),
                None => Vec::new(),
            },
            Event::Routed {
                node,
                room,
                key,
                msg,
            } => match (self.ghost(&node, room, key), msg.into_routed()) {
                (Some(ghost), Some(msg)) => hub.route(ghost, msg, now_ms),
                _ => Vec::new(),
            },
        }
    }

    fn ghost(&self, node: &str, room: String, key: String) -> Option<ConnId> {
        let holder = self.holders.get(&(room, key))?;
        (holder.node.as_deref() == Some(node)).then_some(holder.conn)
    }

    /// A user on `node` holds `name` now: a ghost for it joins this node's hub, taking the name
    /// over from whoever held it here.
    fn ghost_joined(
        &mut self,
        hub: &mut Hub,
        node: String,
        room: String,
        key: String,
        name: String,
    ) -> Vec<Delivery> {
        let slot = (room.clone(), key);
        let existing = self.holders.get(&slot);
        if existing.is_some_and(|h| h.node.as_deref() == Some(node.as_str()) && h.name == name) {
            return Vec::new();
        }
        let ghost = ConnId(self.next_ghost);
        self.next_ghost += 1;
        let mut out = hub.connect(ghost, &room);
        let req = LoginRequest {
            dialect: Dialect::Tutorial,
            name,
            access_code: hub.config().required_code(&room).map(str::to_string),
            token: existing.map(|h| h.token.clone()),
            presence_deltas: false,
        };
        let (more, _) = hub.login(ghost, req);
        let logged_in = login_ok(&more, ghost);
        out.extend(more);
        match logged_in {
            Some((name, token)) => self.replace_holder(hub, &slot, ghost, Some(node), token, name),
            None => {
                tracing::warn!(%node, room = %slot.0, "cluster: a user of another node does not fit this node's rules (config differs?)");
                out.extend(hub.disconnect(ghost));
            }
        }
        out
    }

    pub(super) fn ghost_left(
        &mut self,
        hub: &mut Hub,
        node: &str,
        room: String,
        key: String,
    ) -> Vec<Delivery> {
        let slot = (room, key);
        match self.holders.get(&slot) {
            Some(h) if h.node.as_deref() == Some(node) => {
                let conn = h.conn;
                self.holders.remove(&slot);
                self.by_conn.remove(&conn);
                hub.disconnect(conn)
            }
            _ => Vec::new(),
        }
    }

    /// `node` stopped renewing its liveness: its users are gone (their call partners here are
    /// told, as for any disconnect).
    pub fn node_gone(&mut self, hub: &mut Hub, node: &str) -> Vec<Delivery> {
        let gone: Vec<NameKey> = self
            .holders
            .iter()
            .filter(|(_, h)| h.node.as_deref() == Some(node))
            .map(|(slot, _)| slot.clone())
            .collect();
        let mut out = Vec::new();
        for (room, key) in gone {
            out.extend(self.ghost_left(hub, node, room, key));
        }
        out
    }

    /// Claims read from Redis after (re)subscribing: every name held elsewhere gets its ghost.
    /// Claims under this node's id that it does not hold are a previous run's (a restart
    /// within the TTL): they are released and their users announced gone, so the names are
    /// free at once. A placeholder claim may be a login of ours in flight, so it is left alone.
    pub fn resync(&mut self, hub: &mut Hub, records: Vec<ClaimRecord>) -> (Vec<Delivery>, Vec<Op>) {
        let mut out = Vec::new();
        let mut ops = Vec::new();
        for r in records {
            if r.node != self.node {
                out.extend(self.ghost_joined(hub, r.node, r.room, r.key, r.name));
                continue;
            }
            let slot = (r.room.clone(), r.key.clone());
            if self.holders.contains_key(&slot) || r.token.starts_with(PLACEHOLDER_PREFIX) {
                continue;
            }
            let left = Event::Left {
                node: r.node,
                room: r.room.clone(),
                key: r.key.clone(),
            };
            ops.push(Op::Release {
                room: r.room,
                key: r.key,
                token: r.token,
            });
            ops.push(Op::Publish {
                channel: EVENTS.into(),
                event: left,
            });
        }
        (out, ops)
    }

    /// Drops ghosts whose claims are gone from Redis (a logout whose event was lost while the
    /// subscription was down).
    pub fn reconcile(&mut self, hub: &mut Hub, records: &[ClaimRecord]) -> Vec<Delivery> {
        let present: HashSet<(&str, &str, &str)> = records
            .iter()
            .map(|r| (r.node.as_str(), r.room.as_str(), r.key.as_str()))
            .collect();
        let stale: Vec<(String, NameKey)> = self
            .holders
            .iter()
            .filter_map(|(slot, h)| Some((h.node.clone()?, slot.clone())))
            .filter(|(node, (room, key))| {
                !present.contains(&(node.as_str(), room.as_str(), key.as_str()))
            })
            .collect();
        let mut out = Vec::new();
        for (node, (room, key)) in stale {
            out.extend(self.ghost_left(hub, &node, room, key));
        }
        out
    }
}

//! The cluster's routing rules as plain state. Every node keeps the whole cluster's presence in
//! its own [`Hub`]: users on other nodes sit there as "ghost" connections without a mailbox, so
//! the hub's rules (names, presence batches, who is in a call with whom, the hang-up for a
//! vanished partner) apply unchanged, and deliveries to ghosts fall away. What a local user does
//! that other nodes must hear comes back as [`Op`]s for the Redis driver; what other nodes
//! say comes in as [`Event`]s. No sockets or clocks here.

use std::collections::{BTreeSet, HashMap};

use super::wire::{node_channel, ClaimRecord, Event, WireRouted, EVENTS};
use crate::signaling::hub::{ConnId, Delivery, Hub, Outbound};
use crate::signaling::names;
use crate::signaling::protocol::{LoginFailure, LoginRequest, Routed, ServerMsg};

/// How a claim's placeholder token starts (a login of this node not yet confirmed).
pub const PLACEHOLDER_PREFIX: &str = "pending-";

/// Ghost ids start here, far above any local connection id.
const FIRST_GHOST: u64 = 1 << 62;

/// Redis I/O the driver does, in this order.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Publish {
        channel: String,
        event: Event,
    },
    /// Replace our placeholder claim with the real record (the login's token).
    Confirm {
        record: ClaimRecord,
        expect: String,
    },
    /// Delete our claim if it still carries `token`.
    Release {
        room: String,
        key: String,
        token: String,
    },
}

/// Who holds a name on this node's view.
#[derive(Debug, Clone)]
struct Holder {
    conn: ConnId,
    /// None: a user on this node.
    node: Option<String>,
    /// The token this node's hub gave the holder (a local user's real login token).
    token: String,
    name: String,
}

/// A login that passed the local checks and whose name Redis granted.
#[derive(Debug, Clone)]
pub struct Granted {
    /// The name as claimed (an MDN client's numbered variant if its own was taken).
    pub name: String,
    /// The placeholder token the claim carries until the login is confirmed.
    pub placeholder: String,
    /// `name` is a numbered variant of the requested one (the client is told).
    pub variant: bool,
    /// Redis matched the login's token against the name's claim (a takeover). Only then may
    /// the login take over this node's holder of the name, and with it the holder's call: a
    /// free name with a holder here is a lapsed claim (its node died) or one Redis lost.
    pub reclaimed: bool,
}

type NameKey = (String, String);

pub struct Cluster {
    node: String,
    next_ghost: u64,
    /// Local connections (logged in or not) and their room keys.
    rooms: HashMap<ConnId, String>,
    holders: HashMap<NameKey, Holder>,
    by_conn: HashMap<ConnId, NameKey>,
}

impl Cluster {
    pub fn new(node: String) -> Cluster {
        Cluster {
            node,
            next_ghost: FIRST_GHOST,
            rooms: HashMap::new(),
            holders: HashMap::new(),
            by_conn: HashMap::new(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn connected(&mut self, conn: ConnId, room: &str) {
        self.rooms.insert(conn, names::key(room));
    }

    /// The room key and name key to claim for this login, or None when the hub alone decides
    /// (the login fails on a local rule, or the connection is unknown).
    pub fn claim_for(&self, hub: &Hub, conn: ConnId, req: &LoginRequest) -> Option<NameKey> {
        let room = self.rooms.get(&conn)?;
        if self.by_conn.contains_key(&conn) {
            return None;
        }
        if let Some(code) = hub.config().required_code(room) {
            if !names::code_matches(code, req.access_code.as_deref()) {
                return None;
            }
        }
        let name = names::valid_name(&req.name, hub.config().name_max_chars)?;
        Some((room.clone(), names::key(&name)))
    }

    /// Logs in a local connection whose name Redis granted. A current holder of the name on
    /// this node (a local user or a ghost) is taken over only if Redis checked the login's
    /// token against the claim (see [`Cluster::make_way`]).
    pub fn login(
        &mut self,
        hub: &mut Hub,
        conn: ConnId,
        mut req: LoginRequest,
        granted: Granted,
    ) -> (Vec<Delivery>, Result<(), LoginFailure>, Vec<Op>) {
        let Some(room) = self.rooms.get(&conn).cloned() else {
            return (Vec::new(), Err(LoginFailure::AlreadyLoggedIn), Vec::new());
        };
        let key = names::key(&granted.name);
        let slot = (room.clone(), key.clone());
        let mut out = variant_notice(&granted, conn);
        req.name = granted.name;
        let (more, result) = match self.make_way(hub, &slot, granted.reclaimed, &mut req) {
            Ok(told) => {
                out.extend(told);
                hub.login(conn, req)
            }
            Err(reason) => (vec![refusal(hub, conn, reason)], Err(reason)),
        };
        let logged_in = login_ok(&more, conn);
        out.extend(more);
        let Some((name, token)) = logged_in else {
            let release = Op::Release {
                room,
                key,
                token: granted.placeholder,
            };
            return (out, result, vec![release]);
        };
        self.replace_holder(hub, &slot, conn, None, token.clone(), name.clone());
        let record = ClaimRecord {
            node: self.node.clone(),
            room: room.clone(),
            key: key.clone(),
            name: name.clone(),
            token,
        };
        let joined = Event::Joined {
            node: self.node.clone(),
            room,
            key,
            name,
        };
        let ops = vec![
            Op::Confirm {
                record,
                expect: granted.placeholder,
            },
            Op::Publish {
                channel: EVENTS.into(),
                event: joined,
            },
        ];
        (out, result, ops)
    }

    /// Readies this node's holder of `slot`, if any, for a login Redis granted the name to.
    /// A reclaim (Redis checked the token) takes it over, call and all, through the hub's
    /// reclaim path. Otherwise the name was free in Redis: a ghost there is a user whose claim
    /// lapsed (its node died), gone as far as the cluster knows, so it leaves and its partner
    /// is told, as `node_gone` would; a user of this node whose claim Redis lost keeps the
    /// name unless the login carries its token.
    fn make_way(
        &mut self,
        hub: &mut Hub,
        slot: &NameKey,
        reclaimed: bool,
        req: &mut LoginRequest,
    ) -> Result<Vec<Delivery>, LoginFailure> {
        let Some(holder) = self.holders.get(slot) else {
            return Ok(Vec::new());
        };
        match &holder.node {
            _ if reclaimed => req.token = Some(holder.token.clone()),
            Some(node) => {
                let node = node.clone();
                return Ok(self.ghost_left(hub, &node, slot.0.clone(), slot.1.clone()));
            }
            None if !names::code_matches(&holder.token, req.token.as_deref()) => {
                return Err(LoginFailure::NameTaken);
            }
            None => {}
        }
        Ok(Vec::new())
    }

    /// Records the new holder of `slot`; a ghost it replaced is dropped from the hub (its user
    /// is already gone there, so nobody is told anything).
    fn replace_holder(
        &mut self,
        hub: &mut Hub,
        slot: &NameKey,
        conn: ConnId,
        node: Option<String>,
        token: String,
        name: String,
    ) {
        let holder = Holder {
            conn,
            node,
            token,
            name,
        };
        if let Some(old) = self.holders.insert(slot.clone(), holder) {
            self.by_conn.remove(&old.conn);
            if old.node.is_some() {
                hub.disconnect(old.conn);
            }
        }
        self.by_conn.insert(conn, slot.clone());
    }

    /// A local connection is gone.
    pub fn logout(&mut self, hub: &mut Hub, conn: ConnId) -> (Vec<Delivery>, Vec<Op>) {
        self.rooms.remove(&conn);
        let out = hub.disconnect(conn);
        let Some(slot) = self.by_conn.remove(&conn) else {
            return (out, Vec::new());
        };
        let Some(holder) = self.holders.remove(&slot) else {
            return (out, Vec::new());
        };
        let (room, key) = slot;
        let left = Event::Left {
            node: self.node.clone(),
            room: room.clone(),
            key: key.clone(),
        };
        let ops = vec![
            Op::Release {
                room,
                key,
                token: holder.token,
            },
            Op::Publish {
                channel: EVENTS.into(),
                event: left,
            },
        ];
        (out, ops)
    }

    /// Chat and targeted messages from a local connection: the hub routes them here; chat also
    /// goes to every node, a message for a ghost to the ghost's node.
    pub fn route(
        &mut self,
        hub: &mut Hub,
        conn: ConnId,
        msg: Routed,
        now_ms: u64,
    ) -> (Vec<Delivery>, Vec<Op>) {
        let Some((room, key)) = self.by_conn.get(&conn).cloned() else {
            return (hub.route(conn, msg, now_ms), Vec::new());
        };
        let remote = match &msg {
            Routed::Chat { text } => Some((
                EVENTS.to_string(),
                Event::Chat {
                    node: self.node.clone(),
                    room: room.clone(),
                    key: key.clone(),
                    text: text.clone(),
                    date: now_ms,
                },
            )),
            Routed::Call { target, .. } | Routed::Tutorial { target, .. } => {
                let target_key = match target {
                    Some(t) => Some(names::key(t.trim())),
                    None => hub.peer_of(&room, &key),
                };
                let ghost_node = target_key
                    .and_then(|t| self.holders.get(&(room.clone(), t)))
                    .and_then(|h| h.node.clone());
                ghost_node.map(|node| {
                    let event = Event::Routed {
                        node: self.node.clone(),
                        room: room.clone(),
                        key: key.clone(),
                        msg: WireRouted::from(&msg),
                    };
                    (node_channel(&node), event)
                })
            }
        };
        let out = hub.route(conn, msg, now_ms);
        let refused = out.iter().any(|d| {
            d.to == conn
                && matches!(&d.out, Outbound::Msg(m) if matches!(**m, ServerMsg::Error { .. }))
        });
        let ops = match remote {
            Some((channel, event)) if !refused => vec![Op::Publish { channel, event }],
            _ => Vec::new(),
        };
        (out, ops)
    }

    /// This node's names, to renew.
    pub fn local_claims(&self) -> Vec<ClaimRecord> {
        self.holders
            .iter()
            .filter(|(_, h)| h.node.is_none())
            .map(|((room, key), h)| ClaimRecord {
                node: self.node.clone(),
                room: room.clone(),
                key: key.clone(),
                name: h.name.clone(),
                token: h.token.clone(),
            })
            .collect()
    }

    /// Nodes whose users this node shows.
    pub fn remote_nodes(&self) -> BTreeSet<String> {
        self.holders
            .values()
            .filter_map(|h| h.node.clone())
            .collect()
    }
}

/// The tutorial dialect's `rejectusername` when the name granted is a variant of the one asked.
fn variant_notice(granted: &Granted, conn: ConnId) -> Vec<Delivery> {
    if !granted.variant {
        return Vec::new();
    }
    let name = granted.name.clone();
    vec![Delivery {
        to: conn,
        out: Outbound::Msg(Box::new(ServerMsg::RejectUsername { name })),
    }]
}

/// The login reply that refuses `conn`'s login for `reason`.
pub(super) fn refusal(hub: &Hub, conn: ConnId, reason: LoginFailure) -> Delivery {
    let limits = hub.config().limits();
    let msg = ServerMsg::LoginFailed { reason, limits };
    Delivery {
        to: conn,
        out: Outbound::Msg(Box::new(msg)),
    }
}

/// The name and token of a successful login, read from its reply.
fn login_ok(out: &[Delivery], conn: ConnId) -> Option<(String, String)> {
    out.iter().find_map(|d| match &d.out {
        Outbound::Msg(msg) if d.to == conn => match &**msg {
            ServerMsg::LoginOk { name, token, .. } => Some((name.clone(), token.clone())),
            _ => None,
        },
        _ => None,
    })
}

#[path = "ghosts.rs"]
mod ghosts;

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

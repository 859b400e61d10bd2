//! Rooms, names, login tokens and who is in a call with whom, as plain state. Every operation
//! takes a connection id and a parsed message and returns the deliveries to make, so all routing
//! rules are unit-tested without a socket (the socket edge only moves frames).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine;

use super::names;
use super::protocol::{
    Dialect, ErrorCode, LoginFailure, LoginRequest, Routed, ServerMsg, TutorialKind,
};
use crate::config::RoomConfig;
use crate::signaling::SignalingConfig;

/// One WebSocket connection, unique within the process (and, with a node prefix, a cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Close code for a connection whose name was reclaimed with its token.
pub const CLOSE_REPLACED: u16 = 4001;

/// Something to send to one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub to: ConnId,
    pub out: Outbound,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Msg(ServerMsg),
    /// Close the connection with this code once the messages before it are sent.
    Close {
        code: u16,
        reason: &'static str,
    },
}

/// The parts of the configuration the routing rules need.
#[derive(Debug, Clone, Default)]
pub struct HubConfig {
    pub chat_max_chars: usize,
    pub global_code: Option<String>,
    /// Room key -> that room's own code.
    pub room_codes: HashMap<String, String>,
}

impl HubConfig {
    pub fn new(config: &SignalingConfig, rooms: &[RoomConfig]) -> HubConfig {
        let non_empty = |code: &Option<String>| code.clone().filter(|c| !c.is_empty());
        HubConfig {
            chat_max_chars: config.chat_max_chars,
            global_code: non_empty(&config.access_code),
            room_codes: rooms
                .iter()
                .filter_map(|room| {
                    Some((names::key(room.name.trim()), non_empty(&room.access_code)?))
                })
                .collect(),
        }
    }

    /// A room's own code wins over the global one.
    fn required_code(&self, room: &str) -> Option<&str> {
        self.room_codes
            .get(room)
            .or(self.global_code.as_ref())
            .map(String::as_str)
    }
}

struct Conn {
    room: String,
    /// Name key once logged in.
    user: Option<String>,
}

struct User {
    name: String,
    conn: ConnId,
    dialect: Dialect,
    token: String,
    /// Name key of the user this one is in a call with.
    peer: Option<String>,
}

#[derive(Default)]
struct Room {
    users: BTreeMap<String, User>,
}

impl Room {
    fn user_list(&self) -> Arc<[String]> {
        self.users.values().map(|u| u.name.clone()).collect()
    }

    fn broadcast(&self, msg: &ServerMsg, out: &mut Vec<Delivery>) {
        out.extend(self.users.values().map(|u| send(u.conn, msg.clone())));
    }

    fn broadcast_user_list(&self, out: &mut Vec<Delivery>) {
        self.broadcast(&ServerMsg::UserList(self.user_list()), out);
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

    fn clear_peer_if(&mut self, user: &str, peer: &str) {
        if let Some(u) = self.users.get_mut(user) {
            if u.peer.as_deref() == Some(peer) {
                u.peer = None;
            }
        }
    }
}

fn send(to: ConnId, msg: ServerMsg) -> Delivery {
    Delivery {
        to,
        out: Outbound::Msg(msg),
    }
}

fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>())
}

/// What [`Hub::stats`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    pub connections: usize,
    pub users: usize,
    pub rooms: usize,
    pub calls: usize,
}

/// All rooms of one process.
pub struct Hub {
    config: HubConfig,
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<String, Room>,
}

impl Hub {
    pub fn new(config: HubConfig) -> Hub {
        Hub {
            config,
            conns: HashMap::new(),
            rooms: HashMap::new(),
        }
    }

    /// New access codes and chat limit (a config reload); logged-in users stay logged in.
    pub fn set_config(&mut self, config: HubConfig) {
        self.config = config;
    }

    /// A new connection in `room` (already validated); it is told its id.
    pub fn connect(&mut self, conn: ConnId, room: &str) -> Vec<Delivery> {
        let room = names::key(room);
        self.conns.insert(conn, Conn { room, user: None });
        vec![send(conn, ServerMsg::Id { id: conn.0 })]
    }

    pub fn login(&mut self, conn: ConnId, req: LoginRequest) -> Vec<Delivery> {
        let fail = |reason| vec![send(conn, ServerMsg::LoginFailed(reason))];
        let Some(c) = self.conns.get(&conn) else {
            return Vec::new();
        };
        if c.user.is_some() {
            return fail(LoginFailure::AlreadyLoggedIn);
        }
        let room_key = c.room.clone();
        if let Some(code) = self.config.required_code(&room_key) {
            if !names::code_matches(code, req.access_code.as_deref()) {
                return fail(LoginFailure::BadAccessCode);
            }
        }
        let Some(mut name) = names::valid_name(&req.name) else {
            return fail(LoginFailure::InvalidName);
        };
        let room = self.rooms.entry(room_key).or_default();
        let mut out = Vec::new();
        let mut peer = None;
        if let Some(holder) = room.users.get(&names::key(&name)) {
            if names::code_matches(&holder.token, req.token.as_deref()) {
                // Reclaim: the same person on a new connection. The call (if any) carries over,
                // since the peer addresses it by name.
                let stale = holder.conn;
                out.push(send(
                    stale,
                    ServerMsg::error(
                        ErrorCode::Replaced,
                        "This name was taken over by a new connection.",
                    ),
                ));
                out.push(Delivery {
                    to: stale,
                    out: Outbound::Close {
                        code: CLOSE_REPLACED,
                        reason: "replaced",
                    },
                });
                if let Some(stale_conn) = self.conns.get_mut(&stale) {
                    stale_conn.user = None;
                }
                peer = room.users.remove(&names::key(&name)).and_then(|u| u.peer);
            } else if req.dialect == Dialect::Mdn {
                // Bounded: among users.len() + 1 candidates at least one is free.
                let free = (2..=room.users.len() as u32 + 2)
                    .map(|n| names::variant(&name, n))
                    .find(|v| !room.users.contains_key(&names::key(v)));
                let Some(free) = free else {
                    return fail(LoginFailure::NameTaken);
                };
                out.push(send(conn, ServerMsg::RejectUsername { name: free.clone() }));
                name = free;
            } else {
                return fail(LoginFailure::NameTaken);
            }
        }
        let token = new_token();
        let key = names::key(&name);
        room.users.insert(
            key.clone(),
            User {
                name: name.clone(),
                conn,
                dialect: req.dialect,
                token: token.clone(),
                peer,
            },
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.user = Some(key);
        }
        out.push(send(
            conn,
            ServerMsg::LoginOk {
                name,
                token,
                ice: None,
            },
        ));
        room.broadcast_user_list(&mut out);
        out
    }

    /// Chat and targeted messages from a logged-in connection.
    pub fn route(&mut self, conn: ConnId, msg: Routed, now_ms: u64) -> Vec<Delivery> {
        let error = |code, message: String| vec![send(conn, ServerMsg::error(code, message))];
        let (room_key, sender_key) = match self.conns.get(&conn) {
            Some(Conn {
                room,
                user: Some(user),
            }) => (room.clone(), user.clone()),
            Some(_) => return error(ErrorCode::NotLoggedIn, "Log in first.".into()),
            None => return Vec::new(),
        };
        let Some(room) = self.rooms.get_mut(&room_key) else {
            return Vec::new();
        };
        let Some(sender) = room.users.get(&sender_key).map(|u| u.name.clone()) else {
            return Vec::new();
        };
        let target = match &msg {
            Routed::Chat { text } => {
                let max = self.config.chat_max_chars;
                if text.chars().count() > max {
                    return error(
                        ErrorCode::TooLong,
                        format!("Chat messages are at most {max} characters."),
                    );
                }
                let mut out = Vec::new();
                let chat = ServerMsg::Chat {
                    name: sender,
                    text: text.clone(),
                    date: now_ms,
                };
                room.broadcast(&chat, &mut out);
                return out;
            }
            Routed::Relay { target, .. } | Routed::Tutorial { target, .. } => target,
        };
        let target_key = names::key(target.trim());
        let Some(to) = room.users.get(&target_key).map(|u| u.conn) else {
            let shown = super::protocol::truncate(target);
            return error(
                ErrorCode::UnknownTarget,
                format!("No user named \"{shown}\" is online in this room."),
            );
        };
        let delivered = match msg {
            Routed::Chat { .. } => return Vec::new(),
            Routed::Relay { kind, mut body, .. } => {
                match kind.as_str() {
                    "video-offer" | "video-answer" | "call-accept" => {
                        room.note_call(&sender_key, &target_key)
                    }
                    // The web client sends it after logging back in mid-call, so a restarted
                    // server relearns the call; a stray one must not break up another call.
                    "call-media" => room.relearn_call(&sender_key, &target_key),
                    "hang-up" | "call-decline" | "call-cancel" => {
                        room.end_call(&sender_key, &target_key)
                    }
                    _ => {}
                }
                body.insert("name".into(), sender.into());
                ServerMsg::Relay(body)
            }
            Routed::Tutorial { kind, payload, .. } => {
                match kind {
                    TutorialKind::Offer | TutorialKind::Answer => {
                        room.note_call(&sender_key, &target_key)
                    }
                    TutorialKind::Leave => room.end_call(&sender_key, &target_key),
                    TutorialKind::Candidate => {}
                }
                ServerMsg::Tutorial {
                    kind,
                    name: sender,
                    payload,
                }
            }
        };
        vec![send(to, delivered)]
    }

    /// The connection is gone: its name is freed, its call partner told, the room updated.
    pub fn disconnect(&mut self, conn: ConnId) -> Vec<Delivery> {
        let mut out = Vec::new();
        let Some(Conn {
            room: room_key,
            user: Some(user_key),
        }) = self.conns.remove(&conn)
        else {
            return out;
        };
        let Some(room) = self.rooms.get_mut(&room_key) else {
            return out;
        };
        let Some(gone) = room.users.remove(&user_key) else {
            return out;
        };
        if let Some(peer) = gone.peer.as_deref().and_then(|p| room.users.get_mut(p)) {
            if peer.peer.as_deref() == Some(user_key.as_str()) {
                peer.peer = None;
                let msg = match peer.dialect {
                    Dialect::Mdn => ServerMsg::HangUp {
                        name: gone.name.clone(),
                        target: peer.name.clone(),
                    },
                    Dialect::Tutorial => ServerMsg::Tutorial {
                        kind: TutorialKind::Leave,
                        name: gone.name.clone(),
                        payload: None,
                    },
                };
                out.push(send(peer.conn, msg));
            }
        }
        room.broadcast_user_list(&mut out);
        if room.users.is_empty() {
            self.rooms.remove(&room_key);
        }
        out
    }

    pub fn user_list(&self, room: &str) -> Vec<String> {
        self.rooms
            .get(&names::key(room))
            .map(|r| r.user_list().to_vec())
            .unwrap_or_default()
    }

    /// Name of the user a connection is logged in as.
    pub fn name_of(&self, conn: ConnId) -> Option<String> {
        let c = self.conns.get(&conn)?;
        let user = c.user.as_ref()?;
        Some(self.rooms.get(&c.room)?.users.get(user)?.name.clone())
    }

    /// Name key of the user `name` is in a call with (tests and diagnostics).
    pub fn peer_of(&self, room: &str, name: &str) -> Option<String> {
        let room = self.rooms.get(&names::key(room))?;
        room.users.get(&names::key(name))?.peer.clone()
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Gauges for operators: connections, logged-in users, rooms with users, calls (two users
    /// who each name the other as their call partner).
    pub fn stats(&self) -> HubStats {
        let mut stats = HubStats {
            connections: self.conns.len(),
            rooms: self.rooms.len(),
            ..HubStats::default()
        };
        for room in self.rooms.values() {
            stats.users += room.users.len();
            let paired = room.users.iter().filter(|(key, user)| {
                let partner = user.peer.as_ref().and_then(|p| room.users.get(p));
                partner.is_some_and(|p| p.peer.as_deref() == Some(key.as_str()))
            });
            stats.calls += paired.count() / 2;
        }
        stats
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;

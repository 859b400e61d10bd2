//! Rooms, names, login tokens and who is in a call with whom, as plain state. Every operation
//! takes a connection id and a parsed message and returns the deliveries to make, so all routing
//! rules are unit-tested without a socket (the socket edge only moves frames).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use base64::Engine;

use super::names;
use super::protocol::{
    CallEffect, Dialect, ErrorCode, Limits, Relayed, Routed, ServerMsg, TutorialKind,
};
use super::room::{send, Room};
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
    /// Boxed so a queue slot stays a few words (an idle connection's queue is mostly slots).
    Msg(Box<ServerMsg>),
    /// A frame serialised once for many recipients (presence, chat), shared by reference.
    Frame(axum::extract::ws::Utf8Bytes),
    /// A relayed message's frame, built for its one recipient ([`super::protocol::Relayed`]):
    /// a plain string, written once and dropped, with no shared-buffer header to allocate.
    Text(String),
    /// Close the connection with this code once the messages before it are sent.
    Close { code: u16, reason: &'static str },
}

/// The parts of the configuration the routing rules need.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub chat_max_chars: usize,
    pub name_max_chars: usize,
    pub global_code: Option<String>,
    /// Room key -> that room's own code.
    pub room_codes: HashMap<String, String>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig::new(&SignalingConfig::default(), &[])
    }
}

impl HubConfig {
    pub fn new(config: &SignalingConfig, rooms: &[RoomConfig]) -> HubConfig {
        let non_empty = |code: &Option<String>| code.clone().filter(|c| !c.is_empty());
        HubConfig {
            chat_max_chars: config.chat_max_chars,
            name_max_chars: config.name_max_chars,
            global_code: non_empty(&config.access_code),
            room_codes: rooms
                .iter()
                .filter_map(|room| {
                    Some((names::key(room.name.trim()), non_empty(&room.access_code)?))
                })
                .collect(),
        }
    }

    /// The code a login to `room` must carry. A room's own code wins over the global one.
    pub fn required_code(&self, room: &str) -> Option<&str> {
        self.room_codes
            .get(&names::key(room))
            .or(self.global_code.as_ref())
            .map(String::as_str)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            name_max_chars: self.name_max_chars,
            chat_max_chars: self.chat_max_chars,
        }
    }
}

struct Conn {
    room: String,
    /// Name key once logged in.
    user: Option<String>,
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
    /// Rooms with presence changes not yet told.
    dirty: BTreeSet<String>,
    calls: super::call_log::CallLog,
}

impl Hub {
    pub fn new(config: HubConfig) -> Hub {
        Hub {
            config,
            conns: HashMap::new(),
            rooms: HashMap::new(),
            dirty: BTreeSet::new(),
            calls: Default::default(),
        }
    }

    /// New access codes and chat limit (a config reload); logged-in users stay logged in.
    pub fn set_config(&mut self, config: HubConfig) {
        self.config = config;
    }

    /// The rules in force (the cluster layer checks a login before claiming its name).
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// A new connection in `room` (already validated); it is told its id.
    pub fn connect(&mut self, conn: ConnId, room: &str) -> Vec<Delivery> {
        let room = names::key(room);
        self.conns.insert(conn, Conn { room, user: None });
        vec![send(conn, ServerMsg::Id { id: conn.0 })]
    }

    /// [`Hub::route_at`] on the monotonic clock read here: for the cluster layer, which passes
    /// only the wall clock so far (its owner is rewriting it); everything else passes `now`.
    pub fn route(&mut self, conn: ConnId, msg: Routed, now_ms: u64) -> Vec<Delivery> {
        self.route_at(conn, msg, now_ms, Instant::now())
    }

    /// Chat and targeted messages from a logged-in connection, at `now_ms` (the wall clock a
    /// chat is dated with) and `now` (the monotonic clock the call log measures calls by).
    pub fn route_at(
        &mut self,
        conn: ConnId,
        msg: Routed,
        now_ms: u64,
        now: Instant,
    ) -> Vec<Delivery> {
        let error = |code, message: String| vec![send(conn, ServerMsg::error(code, message))];
        // Borrowed, not cloned: this runs for every message.
        let (config, conns) = (&self.config, &self.conns);
        let (rooms, calls) = (&mut self.rooms, &mut self.calls);
        let (room_key, sender_key) = match conns.get(&conn) {
            Some(Conn {
                room,
                user: Some(user),
            }) => (room.as_str(), user.as_str()),
            Some(_) => return error(ErrorCode::NotLoggedIn, "Log in first.".into()),
            None => return Vec::new(),
        };
        let Some(room) = rooms.get_mut(room_key) else {
            return Vec::new();
        };
        let relayed = match msg {
            Routed::Chat { text } => {
                let Some(sender) = room.users.get(sender_key).map(|u| u.name.clone()) else {
                    return Vec::new();
                };
                return chat(room, sender, &text, config.chat_max_chars, now_ms)
                    .unwrap_or_else(|message| error(ErrorCode::TooLong, message));
            }
            Routed::Call { kind, target, body } => {
                let signal = (kind.as_str(), kind.effect(), true);
                relay(
                    room,
                    sender_key,
                    (signal, target, body),
                    (calls, room_key, now),
                )
            }
            Routed::Tutorial {
                kind,
                target,
                payload,
            } => {
                let signal = (kind.as_str(), kind.effect(), false);
                relay(
                    room,
                    sender_key,
                    (signal, target, payload),
                    (calls, room_key, now),
                )
            }
        };
        relayed.unwrap_or_else(|message| error(ErrorCode::UnknownTarget, message))
    }

    /// [`Hub::disconnect_at`] on the clock read here, for the cluster layer (see
    /// [`Hub::route`]).
    pub fn disconnect(&mut self, conn: ConnId) -> Vec<Delivery> {
        self.disconnect_at(conn, Instant::now())
    }

    /// The connection is gone at `now`: its name is freed, its call partner told (and the call
    /// log told the call ended), the room updated.
    pub fn disconnect_at(&mut self, conn: ConnId, now: Instant) -> Vec<Delivery> {
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
        let Some(gone) = room.remove_user(&user_key) else {
            return out;
        };
        self.calls.left(&room_key, &user_key, now);
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
        if room.users.is_empty() {
            // Nobody left to tell.
            self.rooms.remove(&room_key);
            self.dirty.remove(&room_key);
        } else {
            self.dirty.insert(room_key);
        }
        out
    }

    /// The batched presence frames due at `now_ms` (one room-level tick drives this).
    pub fn tick(&mut self, now_ms: u64) -> Vec<Delivery> {
        let mut out = Vec::new();
        let rooms = &mut self.rooms;
        self.dirty.retain(|key| {
            let Some(room) = rooms.get_mut(key) else {
                return false;
            };
            room.flush_presence(now_ms, &mut out);
            room.presence.is_dirty()
        });
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
        room.peer_of(&names::key(name)).map(str::to_string)
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

/// A chat line to everyone in the room, or why it is refused.
fn chat(
    room: &mut Room,
    name: String,
    text: &str,
    max: usize,
    now_ms: u64,
) -> Result<Vec<Delivery>, String> {
    if text.chars().count() > max {
        return Err(format!("Chat messages are at most {max} characters."));
    }
    let mut out = Vec::new();
    let chat = ServerMsg::Chat {
        name,
        text: text.to_string(),
        date: now_ms,
    };
    room.broadcast(&chat, &mut out);
    Ok(out)
}

/// A call signal from `sender_key` as the delivery to its target, its effect noted in `room`
/// and the call log (of `room_key`, at `now`); the error message if the target is offline.
fn relay(
    room: &mut Room,
    sender_key: &str,
    ((kind, effect, fills_target), target, body): (Signal, Option<String>, Relayed),
    (calls, room_key, now): (&mut super::call_log::CallLog, &str, Instant),
) -> Result<Vec<Delivery>, String> {
    let Some(sender) = room.users.get(sender_key) else {
        return Ok(Vec::new());
    };
    // A hang-up/leave without a target ends the sender's current call; without one there is
    // nothing to end and nobody to tell. A target already in key form (ASCII lower case, as
    // the web client sends) is looked up as is, without a new string.
    let target_key = match target.as_deref() {
        Some(t) => names::key_cow(t.trim()),
        None => match room.peer_of(sender_key) {
            Some(peer) => Cow::Owned(peer.to_string()),
            None => return Ok(Vec::new()),
        },
    };
    let Some(to) = room.users.get(target_key.as_ref()) else {
        let shown = super::protocol::truncate(target.as_deref().unwrap_or(""));
        return Err(format!("No user named \"{shown}\" is online in this room."));
    };
    // `target` is filled in only for a call message that named none (a hang-up).
    let filled = (fills_target && target.is_none()).then_some(to.name.as_str());
    let path = body.path();
    let delivery = Delivery {
        to: to.conn,
        out: Outbound::Text(body.finish(&sender.name, filled)),
    };
    room.apply(effect, sender_key, &target_key);
    calls.message(
        (room_key, sender_key, &target_key),
        (kind, effect),
        path,
        now,
    );
    Ok(vec![delivery])
}

/// A relayed message's type, its [`CallEffect`], and whether the server fills in its target.
type Signal = (&'static str, CallEffect, bool);

#[path = "hub_login.rs"]
mod login;

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "hub_call_tests.rs"]
mod call_tests;

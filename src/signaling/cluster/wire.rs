//! What nodes tell each other on the Redis channels, and the claim records kept in Redis keys,
//! as JSON. Call bodies cross as the sender wrote them; the receiving node routes them through
//! its own hub, so every node applies the same routing rules.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::signaling::protocol::{CallKind, Relayed, Routed, TutorialKind};

/// The channel every node hears: logins, logouts and chat.
pub const EVENTS: &str = "callbox:events";

/// The channel only `node` hears: messages for one of its users.
pub fn node_channel(node: &str) -> String {
    format!("callbox:to:{node}")
}

/// The key holding a name in a room. Lengths first, so "a:b"+"c" and "a"+"b:c" differ.
pub fn claim_key(room: &str, key: &str) -> String {
    format!("callbox:claim:{}:{room}:{key}", room.len())
}

pub const CLAIM_PATTERN: &str = "callbox:claim:*";

/// The key saying `node` is alive, with what its TURN relays look like.
pub fn node_key(node: &str) -> String {
    format!("callbox:node:{node}")
}

/// The set of node ids that have announced themselves (dead ones are removed by whoever notices).
pub const NODES: &str = "callbox:nodes";

/// The value of a claim key: who holds the name and the token that may take it over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub node: String,
    pub room: String,
    pub key: String,
    pub name: String,
    pub token: String,
}

/// The value of a node key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node: String,
    /// Relay addresses of this node's TURN server.
    pub relays: Vec<std::net::IpAddr>,
    /// Its relay port range, inclusive.
    pub ports: (u16, u16),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// `name` logged in on `node`. Redis decided the claim, so whoever held the name before
    /// (on any node) lets go of it.
    Joined {
        node: String,
        room: String,
        key: String,
        name: String,
    },
    Left {
        node: String,
        room: String,
        key: String,
    },
    Chat {
        node: String,
        room: String,
        key: String,
        text: String,
        date: u64,
    },
    /// A targeted message from `key` on `node` (sent on the target node's channel).
    Routed {
        node: String,
        room: String,
        key: String,
        msg: WireRouted,
    },
}

impl Event {
    pub fn node(&self) -> &str {
        match self {
            Event::Joined { node, .. }
            | Event::Left { node, .. }
            | Event::Chat { node, .. }
            | Event::Routed { node, .. } => node,
        }
    }
}

/// [`Routed`] on the wire: kinds as their protocol strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum WireRouted {
    Chat {
        text: String,
    },
    Call {
        kind: String,
        target: Option<String>,
        body: Map<String, Value>,
    },
    Tutorial {
        kind: String,
        target: Option<String>,
        payload: Option<Value>,
    },
}

impl From<&Routed> for WireRouted {
    fn from(msg: &Routed) -> Self {
        match msg {
            Routed::Chat { text } => WireRouted::Chat { text: text.clone() },
            Routed::Call { kind, target, body } => WireRouted::Call {
                kind: kind.as_str().into(),
                target: target.clone(),
                body: body.to_map(),
            },
            Routed::Tutorial {
                kind,
                target,
                payload,
            } => WireRouted::Tutorial {
                kind: kind.as_str().into(),
                target: target.clone(),
                payload: payload.payload(),
            },
        }
    }
}

impl WireRouted {
    /// None for a kind this node does not know (a newer node's message): dropped.
    pub fn into_routed(self) -> Option<Routed> {
        Some(match self {
            WireRouted::Chat { text } => Routed::Chat { text },
            WireRouted::Call { kind, target, body } => Routed::Call {
                kind: CallKind::parse(&kind)?,
                body: Relayed::call_from_map(&body, target.is_some())?,
                target,
            },
            WireRouted::Tutorial {
                kind,
                target,
                payload,
            } => {
                let kind = TutorialKind::parse(&kind)?;
                Routed::Tutorial {
                    kind,
                    target,
                    payload: Relayed::tutorial_from_value(kind, payload.as_ref()),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signaling::protocol::{parse, Inbound};

    #[test]
    fn routed_messages_survive_the_wire_unchanged() {
        let frames = [
            r#"{"type":"message","text":"hi"}"#,
            r#"{"type":"video-offer","target":"bob","sdp":{"sdp":"v=0"},"name":"x"}"#,
            r#"{"type":"hang-up","target":null}"#,
            r#"{"type":"candidate","name":"bob","candidate":{"candidate":"c","sdpMLineIndex":0}}"#,
            r#"{"type":"leave"}"#,
        ];
        for frame in frames {
            let Ok(Inbound::Routed(msg)) = parse(frame) else {
                panic!("{frame} should parse");
            };
            let text = serde_json::to_string(&WireRouted::from(&msg)).expect("json");
            let back: WireRouted = serde_json::from_str(&text).expect("parse");
            assert_eq!(back.into_routed(), Some(msg), "{frame}");
        }
    }

    #[test]
    fn claim_keys_of_different_rooms_and_names_never_collide() {
        assert_ne!(claim_key("a:b", "c"), claim_key("a", "b:c"));
    }
}

//! The wire format, outbound: what the server sends, as typed messages turned into JSON once
//! per recipient. One rule keeps a page's own state out of other people's hands: everything a
//! peer wrote or caused (relayed call messages, chat, the `hang-up`/`leave` for a peer that
//! vanished) carries `from`, the sender's name as the server knows it; the server's own events
//! (login replies, user lists, credentials, errors) never do. A page hands `from` messages only
//! to its call and chat code, and never takes one for a server event.

use serde_json::{json, Map, Value};

use super::protocol::{ErrorCode, TutorialKind};
use super::IceGrant;

/// The limits a client should enforce before sending, told in every login reply so the page
/// follows config.toml instead of hard-coding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub name_max_chars: usize,
    pub chat_max_chars: usize,
}

impl Limits {
    fn to_json(self) -> Value {
        json!({"name_max_chars": self.name_max_chars, "chat_max_chars": self.chat_max_chars})
    }
}

/// Why a login was refused (`reason` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    NameTaken,
    InvalidName,
    BadAccessCode,
    AlreadyLoggedIn,
    /// Too many wrong access codes from this client's network; try again after this long.
    TooManyAttempts {
        retry_after_secs: u64,
    },
    /// `[cluster]`: Redis, which decides who holds a name, is unreachable.
    ClusterUnavailable,
}

impl LoginFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::NameTaken => "name-taken",
            LoginFailure::InvalidName => "invalid-name",
            LoginFailure::BadAccessCode => "bad-access-code",
            LoginFailure::AlreadyLoggedIn => "already-logged-in",
            LoginFailure::TooManyAttempts { .. } => "too-many-attempts",
            LoginFailure::ClusterUnavailable => "cluster-unavailable",
        }
    }

    fn message(self, limits: Limits) -> String {
        match self {
            LoginFailure::NameTaken => "That name is already in use in this room.".into(),
            LoginFailure::InvalidName => format!(
                "Names are 1 to {} characters after trimming, without control or invisible \
                 formatting characters.",
                limits.name_max_chars
            ),
            LoginFailure::BadAccessCode => "The access code is missing or wrong.".into(),
            LoginFailure::AlreadyLoggedIn => "This connection is already logged in.".into(),
            LoginFailure::TooManyAttempts { retry_after_secs } => format!(
                "Too many wrong access codes from your network. Try again in {retry_after_secs} s."
            ),
            LoginFailure::ClusterUnavailable => {
                "Logins are paused: this server cannot reach the cluster's shared store. \
                 Try again in a few seconds."
                    .into()
            }
        }
    }
}

/// A message the server sends. Serialized once per recipient by the socket edge.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMsg {
    Id {
        id: u64,
    },
    /// `ice` is filled in by the socket edge, which owns the credential refresh timer.
    LoginOk {
        name: String,
        token: String,
        ice: Option<IceGrant>,
        limits: Limits,
        /// The room key (for the TURN per-room quota; never sent to the client).
        room: String,
    },
    LoginFailed {
        reason: LoginFailure,
        limits: Limits,
    },
    RejectUsername {
        name: String,
    },
    UserList(std::sync::Arc<[String]>),
    Chat {
        name: String,
        text: String,
        date: u64,
    },
    /// A tutorial message in the tutorial's shape: `{type, <type>: payload, name: sender}`.
    Tutorial {
        kind: TutorialKind,
        name: String,
        payload: Option<Value>,
    },
    HangUp {
        name: String,
        target: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    IceServers(IceGrant),
}

impl ServerMsg {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerMsg {
        crate::counters::SIGNALING.errors.bump(code.as_str());
        ServerMsg::Error {
            code,
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            ServerMsg::Id { id } => json!({"type": "id", "id": id}),
            ServerMsg::LoginOk {
                name,
                token,
                ice,
                limits,
                ..
            } => {
                let (servers, ttl) = match ice {
                    Some(grant) => (grant.ice_servers.clone(), grant.ttl.as_secs()),
                    None => (json!([]), 0),
                };
                json!({"type": "login", "success": true, "name": name,
                       "iceServers": servers, "ttl": ttl, "token": token,
                       "limits": limits.to_json()})
            }
            ServerMsg::LoginFailed { reason, limits } => {
                let mut reply = json!({"type": "login", "success": false,
                    "reason": reason.as_str(), "message": reason.message(*limits),
                    "limits": limits.to_json()});
                if let LoginFailure::TooManyAttempts { retry_after_secs } = reason {
                    reply["retry_after"] = json!(retry_after_secs);
                }
                reply
            }
            ServerMsg::RejectUsername { name } => json!({"type": "rejectusername", "name": name}),
            ServerMsg::UserList(users) => json!({"type": "userlist", "users": users.to_vec()}),
            ServerMsg::Chat { name, text, date } => {
                json!({"type": "message", "name": name, "from": name, "text": text, "date": date})
            }
            ServerMsg::Tutorial {
                kind,
                name,
                payload,
            } => {
                let mut body = Map::new();
                body.insert("type".into(), kind.as_str().into());
                if let Some(payload) = payload {
                    body.insert(kind.as_str().into(), payload.clone());
                }
                body.insert("name".into(), name.clone().into());
                body.insert("from".into(), name.clone().into());
                Value::Object(body)
            }
            ServerMsg::HangUp { name, target } => {
                json!({"type": "hang-up", "name": name, "from": name, "target": target})
            }
            ServerMsg::Error { code, message } => {
                json!({"type": "error", "code": code.as_str(), "message": message})
            }
            ServerMsg::IceServers(grant) => json!({"type": "ice-servers",
                "iceServers": grant.ice_servers, "ttl": grant.ttl.as_secs()}),
        }
    }

    pub fn to_text(&self) -> String {
        self.to_json().to_string()
    }

    /// [`ServerMsg::to_text`] appended to `buf` (the socket edge serialises straight into the
    /// frame it writes). Relayed messages are not here: they arrive as finished frames
    /// ([`super::relayed::Relayed`]).
    pub fn write_text(&self, buf: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(buf, &self.to_json())
    }
}

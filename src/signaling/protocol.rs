//! The wire format: one JSON text frame in, a typed message or a precise error out; typed
//! messages back to JSON. Two dialects share it (the MDN chat demo's `username`/`target` and the
//! Spanish tutorial's `login`/`name`-as-target), so either tutorial's client works unchanged.
//! No sockets and no state here, so every shape is unit-tested directly.

use serde_json::{json, Map, Value};

use super::IceGrant;

/// Which tutorial a client's login came from; decides the shape of what the server sends it
/// unprompted (a `hang-up` or a `leave` when its peer disappears).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `{"type":"login","name":..}` (the Spanish tutorial, and the callbox web client).
    Tutorial,
    /// `{"type":"username","name":..,"id":..}` (MDN's chat/video demo).
    Mdn,
}

/// Types only the server sends; a client sending one gets `forbidden-type`.
pub const SERVER_ONLY_TYPES: &[&str] =
    &["id", "userlist", "rejectusername", "error", "ice-servers"];

/// Longest client-chosen string echoed back in an error message.
const ECHO_MAX_CHARS: usize = 64;

/// A message a client may send, after parsing.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Login(LoginRequest),
    Routed(Routed),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoginRequest {
    pub dialect: Dialect,
    /// As sent; empty when missing or not a string (then refused as an invalid name).
    pub name: String,
    pub access_code: Option<String>,
    pub token: Option<String>,
}

/// Messages for the room or for one user, once logged in.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    /// `{"type":"message","text":..}`: chat to the whole room.
    Chat { text: String },
    /// Any other client type with a string `target`: delivered as is, with `name` overwritten.
    Relay {
        kind: String,
        target: String,
        body: Map<String, Value>,
    },
    /// The tutorial's `offer`/`answer`/`candidate`/`leave`, whose `name` is the target.
    Tutorial {
        kind: TutorialKind,
        target: String,
        payload: Option<Value>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TutorialKind {
    Offer,
    Answer,
    Candidate,
    Leave,
}

impl TutorialKind {
    fn parse(kind: &str) -> Option<TutorialKind> {
        match kind {
            "offer" => Some(TutorialKind::Offer),
            "answer" => Some(TutorialKind::Answer),
            "candidate" => Some(TutorialKind::Candidate),
            "leave" => Some(TutorialKind::Leave),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TutorialKind::Offer => "offer",
            TutorialKind::Answer => "answer",
            TutorialKind::Candidate => "candidate",
            TutorialKind::Leave => "leave",
        }
    }
}

/// The `code` of an error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidJson,
    NotAnObject,
    MissingType,
    UnknownType,
    NotLoggedIn,
    UnknownTarget,
    ForbiddenType,
    TooLong,
    RateLimited,
    Replaced,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid-json",
            ErrorCode::NotAnObject => "not-an-object",
            ErrorCode::MissingType => "missing-type",
            ErrorCode::UnknownType => "unknown-type",
            ErrorCode::NotLoggedIn => "not-logged-in",
            ErrorCode::UnknownTarget => "unknown-target",
            ErrorCode::ForbiddenType => "forbidden-type",
            ErrorCode::TooLong => "too-long",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::Replaced => "replaced",
        }
    }
}

/// Why a frame could not be understood. The connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is not valid JSON")]
    InvalidJson,
    #[error("the message must be a JSON object")]
    NotAnObject,
    #[error("the message has no string \"type\"")]
    MissingType,
    /// Wording from the Spanish tutorial's server.
    #[error("Command not found: {0}")]
    UnknownType(String),
    #[error("\"{0}\" messages are sent only by the server")]
    ForbiddenType(String),
}

impl ParseError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::InvalidJson => ErrorCode::InvalidJson,
            ParseError::NotAnObject => ErrorCode::NotAnObject,
            ParseError::MissingType => ErrorCode::MissingType,
            ParseError::UnknownType(_) => ErrorCode::UnknownType,
            ParseError::ForbiddenType(_) => ErrorCode::ForbiddenType,
        }
    }

    pub fn to_server_msg(&self) -> ServerMsg {
        ServerMsg::error(self.code(), self.to_string())
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Inbound, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|_| ParseError::InvalidJson)?;
    let Value::Object(mut body) = value else {
        return Err(ParseError::NotAnObject);
    };
    let kind = match body.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => return Err(ParseError::MissingType),
    };
    let string_field = |body: &Map<String, Value>, key: &str| match body.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let dialect = match kind.as_str() {
        "login" => Some(Dialect::Tutorial),
        "username" => Some(Dialect::Mdn),
        _ => None,
    };
    if let Some(dialect) = dialect {
        return Ok(Inbound::Login(LoginRequest {
            dialect,
            name: string_field(&body, "name").unwrap_or_default(),
            access_code: string_field(&body, "access_code"),
            token: string_field(&body, "token"),
        }));
    }
    if SERVER_ONLY_TYPES.contains(&kind.as_str()) {
        return Err(ParseError::ForbiddenType(kind));
    }
    if kind == "message" {
        let text = string_field(&body, "text").unwrap_or_default();
        return Ok(Inbound::Routed(Routed::Chat { text }));
    }
    if let Some(tutorial) = TutorialKind::parse(&kind) {
        // The tutorial puts the target in `name`; accept `target` too for clients that mix.
        if let Some(target) = string_field(&body, "name").or_else(|| string_field(&body, "target"))
        {
            let payload = body.remove(tutorial.as_str());
            return Ok(Inbound::Routed(Routed::Tutorial {
                kind: tutorial,
                target,
                payload,
            }));
        }
    }
    match string_field(&body, "target") {
        Some(target) => Ok(Inbound::Routed(Routed::Relay { kind, target, body })),
        None => Err(ParseError::UnknownType(truncate(&kind))),
    }
}

/// A client-chosen string, shortened before it is echoed back or logged.
pub fn truncate(s: &str) -> String {
    s.chars().take(ECHO_MAX_CHARS).collect()
}

/// Why a login was refused (`reason` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    NameTaken,
    InvalidName,
    BadAccessCode,
    AlreadyLoggedIn,
}

impl LoginFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::NameTaken => "name-taken",
            LoginFailure::InvalidName => "invalid-name",
            LoginFailure::BadAccessCode => "bad-access-code",
            LoginFailure::AlreadyLoggedIn => "already-logged-in",
        }
    }

    fn message(self) -> &'static str {
        match self {
            LoginFailure::NameTaken => "That name is already in use in this room.",
            LoginFailure::InvalidName => {
                "Names are 1 to 32 characters after trimming, without control characters."
            }
            LoginFailure::BadAccessCode => "The access code is missing or wrong.",
            LoginFailure::AlreadyLoggedIn => "This connection is already logged in.",
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
    },
    LoginFailed(LoginFailure),
    RejectUsername {
        name: String,
    },
    UserList(std::sync::Arc<[String]>),
    Chat {
        name: String,
        text: String,
        date: u64,
    },
    /// A targeted message, already carrying the server-set `name`.
    Relay(Map<String, Value>),
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
        ServerMsg::Error {
            code,
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            ServerMsg::Id { id } => json!({"type": "id", "id": id}),
            ServerMsg::LoginOk { name, token, ice } => {
                let (servers, ttl) = match ice {
                    Some(grant) => (grant.ice_servers.clone(), grant.ttl.as_secs()),
                    None => (json!([]), 0),
                };
                json!({"type": "login", "success": true, "name": name,
                       "iceServers": servers, "ttl": ttl, "token": token})
            }
            ServerMsg::LoginFailed(reason) => json!({"type": "login", "success": false,
                "reason": reason.as_str(), "message": reason.message()}),
            ServerMsg::RejectUsername { name } => json!({"type": "rejectusername", "name": name}),
            ServerMsg::UserList(users) => json!({"type": "userlist", "users": users.to_vec()}),
            ServerMsg::Chat { name, text, date } => {
                json!({"type": "message", "name": name, "text": text, "date": date})
            }
            ServerMsg::Relay(body) => Value::Object(body.clone()),
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
                Value::Object(body)
            }
            ServerMsg::HangUp { name, target } => {
                json!({"type": "hang-up", "name": name, "target": target})
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(text: &str) -> Routed {
        match parse(text) {
            Ok(Inbound::Routed(routed)) => routed,
            other => panic!("expected a routed message, got {other:?}"),
        }
    }

    #[test]
    fn malformed_frames_get_precise_errors() {
        assert_eq!(parse("{nope"), Err(ParseError::InvalidJson));
        assert_eq!(parse("[1,2]"), Err(ParseError::NotAnObject));
        assert_eq!(parse("\"login\""), Err(ParseError::NotAnObject));
        assert_eq!(parse("{}"), Err(ParseError::MissingType));
        assert_eq!(parse(r#"{"type":5}"#), Err(ParseError::MissingType));
        let err = parse(r#"{"type":"dance"}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnknownType);
        assert_eq!(err.to_string(), "Command not found: dance");
    }

    #[test]
    fn server_only_types_are_forbidden_even_with_a_target() {
        for kind in SERVER_ONLY_TYPES {
            let text = json!({"type": kind, "target": "bob"}).to_string();
            assert_eq!(
                parse(&text).unwrap_err().code(),
                ErrorCode::ForbiddenType,
                "{kind}"
            );
        }
    }

    #[test]
    fn both_login_dialects_parse() {
        let Ok(Inbound::Login(login)) =
            parse(r#"{"type":"login","name":"Ann","access_code":"c","token":"t"}"#)
        else {
            panic!("login")
        };
        assert_eq!(login.dialect, Dialect::Tutorial);
        assert_eq!(login.name, "Ann");
        assert_eq!(login.access_code.as_deref(), Some("c"));
        assert_eq!(login.token.as_deref(), Some("t"));
        let Ok(Inbound::Login(login)) = parse(r#"{"type":"username","name":"Bo","id":3}"#) else {
            panic!("username")
        };
        assert_eq!(login.dialect, Dialect::Mdn);
        assert_eq!(login.token, None);
        let Ok(Inbound::Login(login)) = parse(r#"{"type":"login","name":7}"#) else {
            panic!("login")
        };
        assert_eq!(
            login.name, "",
            "a non-string name is refused later as invalid"
        );
    }

    #[test]
    fn tutorial_messages_use_name_as_target() {
        let msg = routed(r#"{"type":"offer","name":"bob","offer":{"sdp":"x"}}"#);
        assert_eq!(
            msg,
            Routed::Tutorial {
                kind: TutorialKind::Offer,
                target: "bob".into(),
                payload: Some(json!({"sdp":"x"}))
            }
        );
        let msg = routed(r#"{"type":"leave","name":"bob"}"#);
        assert!(matches!(
            msg,
            Routed::Tutorial {
                kind: TutorialKind::Leave,
                payload: None,
                ..
            }
        ));
    }

    #[test]
    fn any_type_with_a_target_is_relayed_whole() {
        let msg = routed(r#"{"type":"call-request","target":"bob","extra":[1]}"#);
        let Routed::Relay { kind, target, body } = msg else {
            panic!("relay")
        };
        assert_eq!((kind.as_str(), target.as_str()), ("call-request", "bob"));
        assert_eq!(body["extra"], json!([1]));
    }

    #[test]
    fn unknown_type_echo_is_bounded() {
        let long = "x".repeat(10_000);
        let err = parse(&json!({"type": long}).to_string()).unwrap_err();
        assert!(err.to_string().len() < 100);
    }

    #[test]
    fn outbound_shapes_match_the_contract() {
        let tutorial = ServerMsg::Tutorial {
            kind: TutorialKind::Answer,
            name: "ann".into(),
            payload: Some(json!({"sdp": "y"})),
        };
        assert_eq!(
            tutorial.to_json(),
            json!({"type":"answer","answer":{"sdp":"y"},"name":"ann"})
        );
        let leave = ServerMsg::Tutorial {
            kind: TutorialKind::Leave,
            name: "ann".into(),
            payload: None,
        };
        assert_eq!(leave.to_json(), json!({"type":"leave","name":"ann"}));
        let failed = ServerMsg::LoginFailed(LoginFailure::NameTaken).to_json();
        assert_eq!(failed["success"], json!(false));
        assert_eq!(failed["reason"], json!("name-taken"));
        assert!(failed["message"].is_string());
        let ok = ServerMsg::LoginOk {
            name: "a".into(),
            token: "t".into(),
            ice: None,
        }
        .to_json();
        assert!(ok["iceServers"].is_array());
        assert_eq!(ok["token"], json!("t"));
    }
}

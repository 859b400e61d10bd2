//! The wire format, inbound: one JSON text frame in, a typed message or a precise error out.
//! Two dialects share it (the MDN chat demo's `username`/`target` and the Spanish tutorial's
//! `login`/`name`-as-target), so either tutorial's client works unchanged. Only the message
//! types those dialects and callbox's own call control define are relayed (an allow-list): a
//! client cannot push a type the receiving page would take for one of the server's own events.
//! No sockets and no state here, so every shape is unit-tested directly. What the server sends
//! back is in [`super::outbound`].

use super::json_scan::{self, Member};
pub use super::relayed::Relayed;

pub use super::outbound::{Limits, LoginFailure, ServerMsg};

/// Which tutorial a client's login came from; decides the shape of what the server sends it
/// unprompted (a `hang-up` or a `leave` when its peer disappears).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `{"type":"login","name":..}` (the Spanish tutorial, and the callbox web client).
    Tutorial,
    /// `{"type":"username","name":..,"id":..}` (MDN's chat/video demo).
    Mdn,
}

/// Types only the server sends; a client sending one gets `forbidden-type` (every other type
/// outside the allow-list gets `unknown-type`).
pub const SERVER_ONLY_TYPES: &[&str] = &[
    "id",
    "userlist",
    "presence",
    "rejectusername",
    "error",
    "ice-servers",
];

/// Longest client-chosen string echoed back in an error message.
const ECHO_MAX_CHARS: usize = 64;

/// What a relayed signal means for the hub's record of who is in a call with whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEffect {
    /// The two are in a call now (each side's previous call, if any, is forgotten).
    Starts,
    /// The two are in a call unless either is in a call with someone else (`call-media` after
    /// a reconnect relearns a call a restarted server forgot; a stray one breaks up nothing).
    Relearns,
    Ends,
    None,
}

/// The targeted messages of the MDN dialect and of callbox's call control, relayed whole
/// (with the server-set `name` and `from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    VideoOffer,
    VideoAnswer,
    NewIceCandidate,
    /// The one kind that may come without a target: MDN's client clears its target before
    /// sending it, and it then ends the sender's current call.
    HangUp,
    CallRequest,
    CallAccept,
    CallDecline,
    CallCancel,
    CallMedia,
}

impl CallKind {
    pub const ALL: [CallKind; 9] = [
        CallKind::VideoOffer,
        CallKind::VideoAnswer,
        CallKind::NewIceCandidate,
        CallKind::HangUp,
        CallKind::CallRequest,
        CallKind::CallAccept,
        CallKind::CallDecline,
        CallKind::CallCancel,
        CallKind::CallMedia,
    ];

    pub fn parse(kind: &str) -> Option<CallKind> {
        CallKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::VideoOffer => "video-offer",
            CallKind::VideoAnswer => "video-answer",
            CallKind::NewIceCandidate => "new-ice-candidate",
            CallKind::HangUp => "hang-up",
            CallKind::CallRequest => "call-request",
            CallKind::CallAccept => "call-accept",
            CallKind::CallDecline => "call-decline",
            CallKind::CallCancel => "call-cancel",
            CallKind::CallMedia => "call-media",
        }
    }

    pub fn effect(self) -> CallEffect {
        match self {
            CallKind::VideoOffer | CallKind::VideoAnswer | CallKind::CallAccept => {
                CallEffect::Starts
            }
            CallKind::CallMedia => CallEffect::Relearns,
            CallKind::HangUp | CallKind::CallDecline | CallKind::CallCancel => CallEffect::Ends,
            // A ring does not disturb a call in progress; ICE candidates say nothing new.
            CallKind::NewIceCandidate | CallKind::CallRequest => CallEffect::None,
        }
    }
}

/// The tutorial's messages, whose `name` is the target on the way in and the sender on the
/// way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TutorialKind {
    Offer,
    Answer,
    Candidate,
    /// May come without a target, like MDN's `hang-up`: it then ends the sender's call.
    Leave,
}

impl TutorialKind {
    pub fn parse(kind: &str) -> Option<TutorialKind> {
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

    pub fn effect(self) -> CallEffect {
        match self {
            TutorialKind::Offer | TutorialKind::Answer => CallEffect::Starts,
            TutorialKind::Leave => CallEffect::Ends,
            TutorialKind::Candidate => CallEffect::None,
        }
    }
}

/// Every client type the server relays to one user (docs/protocol.md lists the same).
pub fn relayed_types() -> impl Iterator<Item = &'static str> {
    let tutorial = [
        TutorialKind::Offer,
        TutorialKind::Answer,
        TutorialKind::Candidate,
        TutorialKind::Leave,
    ];
    CallKind::ALL
        .into_iter()
        .map(CallKind::as_str)
        .chain(tutorial.into_iter().map(TutorialKind::as_str))
}

/// A message a client may send, after parsing.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Login(LoginRequest),
    Routed(Routed),
}

impl Inbound {
    /// The message's `type`, from the fixed vocabulary (for the metrics).
    pub fn type_name(&self) -> &'static str {
        match self {
            Inbound::Login(_) => "login",
            Inbound::Routed(Routed::Chat { .. }) => "message",
            Inbound::Routed(Routed::Call { kind, .. }) => kind.as_str(),
            Inbound::Routed(Routed::Tutorial { kind, .. }) => kind.as_str(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoginRequest {
    pub dialect: Dialect,
    /// As sent; empty when missing or not a string (then refused as an invalid name).
    pub name: String,
    pub access_code: Option<String>,
    pub token: Option<String>,
    /// `"presence":"delta"`: the client applies `presence` deltas instead of full user lists.
    pub presence_deltas: bool,
}

/// Messages for the room or for one user, once logged in.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    /// `{"type":"message","text":..}`: chat to the whole room.
    Chat { text: String },
    /// An MDN or callbox call message: delivered as is, with `name` and `from` overwritten.
    /// `target` is None only for a `hang-up` (the sender's current call partner gets it, and
    /// the server fills `target` in).
    Call {
        kind: CallKind,
        target: Option<String>,
        body: Relayed,
    },
    /// The tutorial's `offer`/`answer`/`candidate`/`leave`, whose `name` is the target. `target`
    /// is None only for a `leave`. `payload` is the outgoing `{type, <type>: payload}`.
    Tutorial {
        kind: TutorialKind,
        target: Option<String>,
        payload: Relayed,
    },
}

/// The `code` of an error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidJson,
    NotAnObject,
    MissingType,
    UnknownType,
    MissingTarget,
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
            ErrorCode::MissingTarget => "missing-target",
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
    #[error("\"{0}\" messages need a user to go to (\"target\", or \"name\" in the tutorial's)")]
    MissingTarget(&'static str),
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
            ParseError::MissingTarget(_) => ErrorCode::MissingTarget,
            ParseError::ForbiddenType(_) => ErrorCode::ForbiddenType,
        }
    }

    pub fn to_server_msg(&self) -> ServerMsg {
        ServerMsg::error(self.code(), self.to_string())
    }
}

/// The last member named `key` if it is a string (a later duplicate wins, as in `Map`).
fn string_field(members: &[Member<'_>], key: &str) -> Option<String> {
    let value = json_scan::last(members, key)?.as_str()?;
    Some(value.into_owned())
}

/// Parses one text frame. The frame is checked as JSON in full (see [`json_scan`]), but only
/// its top-level members are taken apart, and a relayed message keeps its sender's text.
pub fn parse(text: &str) -> Result<Inbound, ParseError> {
    if !json_scan::validate(text) {
        return Err(ParseError::InvalidJson);
    }
    let members = json_scan::collect(text).ok_or(ParseError::NotAnObject)?;
    parse_members(members.as_slice())
}

fn parse_members(body: &[Member<'_>]) -> Result<Inbound, ParseError> {
    let Some(kind) = json_scan::last(body, "type").and_then(|m| m.as_str()) else {
        return Err(ParseError::MissingType);
    };
    let dialect = match kind.as_ref() {
        "login" => Some(Dialect::Tutorial),
        "username" => Some(Dialect::Mdn),
        _ => None,
    };
    if let Some(dialect) = dialect {
        return Ok(Inbound::Login(LoginRequest {
            dialect,
            name: string_field(body, "name").unwrap_or_default(),
            access_code: string_field(body, "access_code"),
            token: string_field(body, "token"),
            presence_deltas: string_field(body, "presence").as_deref() == Some("delta"),
        }));
    }
    if kind == "message" {
        let text = string_field(body, "text").unwrap_or_default();
        return Ok(Inbound::Routed(Routed::Chat { text }));
    }
    if let Some(call) = CallKind::parse(&kind) {
        let target = string_field(body, "target");
        if target.is_none() && call != CallKind::HangUp {
            return Err(ParseError::MissingTarget(call.as_str()));
        }
        return Ok(Inbound::Routed(Routed::Call {
            kind: call,
            body: Relayed::call(body, target.is_some()),
            target,
        }));
    }
    if let Some(tutorial) = TutorialKind::parse(&kind) {
        // The tutorial puts the target in `name`; accept `target` too for clients that mix.
        let target = string_field(body, "name").or_else(|| string_field(body, "target"));
        if target.is_none() && tutorial != TutorialKind::Leave {
            return Err(ParseError::MissingTarget(tutorial.as_str()));
        }
        let payload = json_scan::last(body, tutorial.as_str()).map(|m| m.value);
        return Ok(Inbound::Routed(Routed::Tutorial {
            kind: tutorial,
            target,
            payload: Relayed::tutorial(tutorial, payload),
        }));
    }
    if SERVER_ONLY_TYPES.contains(&kind.as_ref()) {
        return Err(ParseError::ForbiddenType(truncate(&kind)));
    }
    Err(ParseError::UnknownType(truncate(&kind)))
}

/// A client-chosen string, shortened before it is echoed back or logged.
pub fn truncate(s: &str) -> String {
    s.chars().take(ECHO_MAX_CHARS).collect()
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;

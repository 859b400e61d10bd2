//! The socket edge: the `/ws` upgrade (Origin, room and per-address checks first), then one
//! task per connection that moves frames between the WebSocket and the [`Switchboard`]. It owns
//! what is about the socket itself: size and rate limits, the bounded outbound queue, ping/pong,
//! TURN credential refresh, and closing with the right code.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::attempts::AccessGuard;
use super::hub::{ConnId, Outbound};
use super::limits::{PerIpLimit, RateLimit, RateVerdict};
use super::protocol::{self, ErrorCode, Inbound, LoginRequest, ServerMsg};
use super::queue;
use super::switchboard::{Mailbox, Switchboard};
use super::writer::{frame_for, write_loop};
use super::{names, IceServerSource, SignalingConfig};

/// Queue slots kept free before handling a client's frame: the most one frame can queue for
/// its own sender (rejectusername, login reply, user list).
const REPLY_ROOM: usize = 4;

/// What every connection task of the socket edge shares (the `/ws` route's state).
pub struct EdgeShared {
    /// Read once per connection, at its upgrade: SIGHUP changes the next connection's limits.
    pub config: Arc<super::live::Live<SignalingConfig>>,
    /// Wrong access codes per client address.
    pub access: AccessGuard,
    /// Lower-case `scheme://host[:port]`.
    pub allowed_origins: Vec<String>,
    pub ice: Arc<dyn IceServerSource>,
    pub switchboard: Arc<dyn Switchboard>,
    pub per_ip: PerIpLimit,
    pub shutdown: CancellationToken,
    pub tasks: tokio_util::task::TaskTracker,
    /// Every connection's ping and pong timeout.
    pub wheel: Arc<super::wheel::PingWheel>,
    /// How long each step of a closing handshake may take before the socket is dropped.
    pub close_wait: Duration,
}

#[derive(Debug, serde::Deserialize)]
pub struct WsQuery {
    room: Option<String>,
}

/// Read buffer per connection, held while idle: small (a bigger frame grows it, up to
/// `max_frame_bytes`). 512 bytes still take a relayed ICE candidate (~340 bytes) in one read;
/// 2 KiB made the read buffer the second-largest thing an idle connection held (heaptrack).
const READ_BUFFER: usize = 512;

/// `GET /ws[?room=R]`.
pub async fn upgrade(
    State(shared): State<Arc<EdgeShared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    // The web listener's slot: an upgraded socket keeps counting against its limits.
    listener_slot: Option<axum::Extension<crate::web::limits::ConnectionSlot>>,
    ws: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&headers, &shared.allowed_origins) {
        crate::counters::SIGNALING.refused.bump("origin");
        tracing::debug!(%peer, "WebSocket refused: foreign Origin");
        return (StatusCode::FORBIDDEN, "Origin not allowed\n").into_response();
    }
    let Some(room) = names::valid_room(query.room.as_deref()) else {
        return (StatusCode::BAD_REQUEST, "Invalid room name\n").into_response();
    };
    let config = shared.config.load();
    let Some(slot) = shared
        .per_ip
        .acquire(peer.ip(), config.max_connections_per_ip)
    else {
        crate::counters::SIGNALING
            .refused
            .bump("connections_per_address");
        tracing::info!(%peer, "WebSocket refused: too many connections from this address");
        return (StatusCode::TOO_MANY_REQUESTS, "Too many connections\n").into_response();
    };
    let max = config.max_frame_bytes;
    let token = shared.tasks.token();
    // tungstenite's default buffers (128 KiB each) would make every idle signaling connection
    // cost ~140 KiB; these messages are small, and the read buffer still grows to `max` for a
    // large one (benches/signaling_load.rs prints the cost per connection).
    ws.protocols(["json"])
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_failed_upgrade(move |err| tracing::debug!(%peer, "WebSocket upgrade failed: {err}"))
        .on_upgrade(move |socket| {
            // Split before the task's future is built: the WebSocket (~370 bytes) then lives
            // once, inside the halves' shared allocation, instead of as a copy in every state
            // of this future and of `run`'s (type sizes showed three).
            let halves = socket.split();
            async move {
                run(halves, shared, &config, room, peer).await;
                drop(slot);
                drop(listener_slot);
                drop(token);
            }
        })
}

/// A missing Origin (not a browser) is allowed; a browser must come from our own page.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/');
    allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
}

/// Why a connection ended, which decides how it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    ClientClosed,
    Broken,
    TooBig,
    Flood,
    Shutdown,
    /// The client did not read fast enough (or its mailbox was dropped).
    CutOff,
    PongTimeout,
    Server {
        code: u16,
        reason: &'static str,
    },
}

/// Milliseconds since the connection started when the client was last heard from.
pub(super) struct LastHeard {
    start: Instant,
    ms: AtomicU64,
}

impl LastHeard {
    fn new() -> LastHeard {
        LastHeard {
            start: Instant::now(),
            ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        self.ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub(super) fn silent_for(&self) -> Duration {
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(self.ms.load(Ordering::Relaxed)))
    }
}

type Halves = (SplitSink<WebSocket, Message>, SplitStream<WebSocket>);

async fn run(
    (mut sink, mut stream): Halves,
    shared: Arc<EdgeShared>,
    config: &SignalingConfig,
    room: String,
    peer: SocketAddr,
) {
    let (tx, mut rx) = queue::channel(config.outbound_queue);
    let overflow = CancellationToken::new();
    let mailbox = Mailbox {
        tx: tx.clone(),
        overflow: overflow.clone(),
    };
    let conn = shared.switchboard.connect(&room, mailbox).await;
    tracing::info!(conn = conn.0, %peer, room = %room, "WebSocket connected");
    let heard = LastHeard::new();
    let end = tokio::select! {
        end = read_loop(&mut stream, &tx, (conn, &room, peer), (&shared, config), &heard) => end,
        end = write_loop(&mut sink, &mut rx, conn, &shared, &heard, &overflow) => end,
    };
    shared.switchboard.logout(conn).await;
    shared.ice.revoke(conn);
    tracing::info!(conn = conn.0, ?end, "WebSocket disconnected");
    let close = match end {
        End::Shutdown => Some((1001, "going away")),
        End::TooBig => Some((1009, "message too big")),
        End::Flood => Some((1008, "rate limit exceeded")),
        End::PongTimeout => Some((1001, "ping timeout")),
        End::Server { code, reason } => Some((code, reason)),
        End::ClientClosed => {
            // Sends the close reply tungstenite queued when the client's Close arrived.
            let _ = tokio::time::timeout(shared.close_wait, sink.close()).await;
            None
        }
        End::Broken | End::CutOff => None,
    };
    let Some((code, reason)) = close else {
        return;
    };
    let closing = async {
        if matches!(end, End::TooBig | End::Flood | End::Shutdown) {
            // What was already queued (e.g. replies to the frames before the flood) goes first.
            loop {
                let frame = match rx.try_recv() {
                    Some(Outbound::Msg(msg)) => frame_for(*msg, &shared, None),
                    Some(Outbound::Frame(text)) => Message::Text(text),
                    Some(Outbound::Close { .. }) | None => break,
                };
                sink.feed(frame).await?;
            }
        }
        let reason = reason.into();
        sink.send(Message::Close(Some(CloseFrame { code, reason })))
            .await
    };
    if let Ok(Ok(())) = tokio::time::timeout(shared.close_wait, closing).await {
        // Wait (briefly) for the client's Close so the close frame is not lost to a reset.
        let drain = async { while let Some(Ok(_)) = stream.next().await {} };
        let _ = tokio::time::timeout(shared.close_wait, drain).await;
    }
}

/// Reads the client's frames until the connection ends: each passes the reply room, then the
/// rate limit, then goes to the switchboard.
async fn read_loop(
    stream: &mut SplitStream<WebSocket>,
    own_mailbox: &queue::Sender,
    (conn, room, peer): (ConnId, &str, SocketAddr),
    (shared, config): (&EdgeShared, &SignalingConfig),
    heard: &LastHeard,
) -> End {
    let mut limit = RateLimit::new(
        config.messages_per_second,
        config.message_burst,
        std::time::Instant::now(),
    );
    loop {
        let frame = match next_frame(stream, conn, heard).await {
            Ok(frame) => frame,
            Err(end) => return end,
        };
        // Replies to this client's own frames must not overflow its queue just because its
        // frames arrive faster than this task writes: wait for room (the writer times out a
        // client that stops reading altogether).
        if own_mailbox.wait_for_room(REPLY_ROOM).await.is_err() {
            return End::CutOff;
        }
        match within_rate(&mut limit, shared, conn).await {
            Ok(true) => handle_frame(frame, shared, (conn, room, peer)).await,
            Ok(false) => {}
            Err(end) => return end,
        }
    }
}

/// The next Text frame (or `None` for a Binary one), or how the connection ended. Every frame
/// counts as hearing from the client; pings and pongs only count.
async fn next_frame(
    stream: &mut SplitStream<WebSocket>,
    conn: ConnId,
    heard: &LastHeard,
) -> Result<Option<Utf8Bytes>, End> {
    loop {
        let frame = match stream.next().await {
            None | Some(Ok(Message::Close(_))) => return Err(End::ClientClosed),
            Some(Err(err)) => return Err(read_error(conn, err)),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                heard.touch();
                continue;
            }
            Some(Ok(Message::Text(text))) => Some(text),
            Some(Ok(Message::Binary(_))) => None,
        };
        heard.touch();
        return Ok(frame);
    }
}

/// True if the frame may be handled; false if it was refused (the client is told to slow
/// down); `End::Flood` for a client that keeps flooding.
async fn within_rate(
    limit: &mut RateLimit,
    shared: &EdgeShared,
    conn: ConnId,
) -> Result<bool, End> {
    match limit.check(std::time::Instant::now()) {
        RateVerdict::Accept => Ok(true),
        RateVerdict::Refuse => {
            let msg = ServerMsg::error(ErrorCode::RateLimited, "Too many messages; slow down.");
            let out = Outbound::Msg(Box::new(msg));
            shared.switchboard.deliver(conn, out).await;
            Ok(false)
        }
        RateVerdict::Flood => {
            crate::counters::SIGNALING.refused.bump("flood");
            tracing::info!(conn = conn.0, "closing a connection that keeps flooding");
            Err(End::Flood)
        }
    }
}

/// Parses one frame and hands it on: a login, a routed message, or an error frame back.
async fn handle_frame(
    frame: Option<Utf8Bytes>,
    shared: &EdgeShared,
    (conn, room, peer): (ConnId, &str, SocketAddr),
) {
    let board = &shared.switchboard;
    let Some(text) = frame else {
        let msg = ServerMsg::error(ErrorCode::InvalidJson, "Binary frames are not accepted.");
        board.deliver(conn, Outbound::Msg(Box::new(msg))).await;
        return;
    };
    let parsed = protocol::parse(text.as_str());
    if let Ok(inbound) = &parsed {
        crate::counters::SIGNALING
            .received
            .bump(inbound.type_name());
    }
    match parsed {
        Ok(Inbound::Login(req)) => login(shared, conn, room, peer, req).await,
        Ok(Inbound::Routed(msg)) => board.route(conn, msg).await,
        Err(err) => {
            board
                .deliver(conn, Outbound::Msg(Box::new(err.to_server_msg())))
                .await
        }
    }
}

/// A login, unless this client address has sent too many wrong access codes lately.
async fn login(shared: &EdgeShared, conn: ConnId, room: &str, peer: SocketAddr, req: LoginRequest) {
    let now = std::time::Instant::now();
    let board = &shared.switchboard;
    if let Some(reason) = shared.access.before_login(room, peer.ip(), now) {
        crate::counters::SIGNALING
            .refused
            .bump("access_code_backoff");
        let limits = shared.access.limits();
        let msg = ServerMsg::LoginFailed { reason, limits };
        board.deliver(conn, Outbound::Msg(Box::new(msg))).await;
        return;
    }
    let result = board.login(conn, req).await;
    shared.access.after_login(room, peer.ip(), result, now);
}

fn read_error(conn: ConnId, err: axum::Error) -> End {
    let too_big = err
        .into_inner()
        .downcast::<tungstenite::Error>()
        .is_ok_and(|e| matches!(*e, tungstenite::Error::Capacity(_)));
    if too_big {
        tracing::info!(conn = conn.0, "closing: frame over the size limit");
        End::TooBig
    } else {
        End::Broken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_is_compared_case_insensitively_and_may_be_missing() {
        let allowed = vec!["http://localhost:8080".to_string()];
        let mut headers = HeaderMap::new();
        assert!(origin_allowed(&headers, &allowed));
        headers.insert(header::ORIGIN, "HTTP://LocalHost:8080".parse().unwrap());
        assert!(origin_allowed(&headers, &allowed));
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!origin_allowed(&headers, &allowed));
        headers.insert(
            header::ORIGIN,
            "http://localhost:8080.evil.example".parse().unwrap(),
        );
        assert!(!origin_allowed(&headers, &allowed));
    }
}

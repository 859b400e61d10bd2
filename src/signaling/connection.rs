//! The socket edge: the `/ws` upgrade (Origin, room and per-address checks first), then one
//! task per connection that moves frames between the WebSocket and the [`Switchboard`]. It owns
//! what is about the socket itself: size and rate limits, the bounded outbound queue, ping/pong,
//! TURN credential refresh, and closing with the right code.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

use super::attempts::AccessGuard;
use super::handshake::Handshake;
use super::hub::{ConnId, Outbound};
use super::limits::{PerIpLimit, RateLimit, RateVerdict};
use super::protocol::{self, ErrorCode, Inbound, LoginRequest, ServerMsg};
use super::queue;
use super::switchboard::{Mailbox, Switchboard};
use super::wire::{FrameWriter, ReadSide, ReplyPipe};
use super::writer::{closing, write_loop};
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

/// The upgraded socket, as hyper hands it over.
type Io = TokioIo<hyper::upgrade::Upgraded>;
/// tungstenite reads the client's frames; its own writes go nowhere ([`ReadSide`]).
pub(super) type Reader = WebSocketStream<ReadSide<ReadHalf<Io>>>;
/// callbox writes the frames to the client.
pub(super) type Writer = FrameWriter<WriteHalf<Io>>;

/// `GET /ws[?room=R]`.
pub async fn upgrade(
    State(shared): State<Arc<EdgeShared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<WsQuery>,
    // The web listener's slot: an upgraded socket keeps counting against its limits.
    listener_slot: Option<axum::Extension<crate::web::limits::ConnectionSlot>>,
    mut req: Request,
) -> Response {
    let handshake = match Handshake::check(&mut req) {
        Ok(handshake) => handshake,
        Err(refused) => return refused.into_response(),
    };
    if !origin_allowed(req.headers(), &shared.allowed_origins) {
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
    let response = handshake.response();
    let on_upgrade = handshake.on_upgrade;
    let tasks = shared.tasks.clone();
    tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(%peer, "WebSocket upgrade failed: {err}");
                return;
            }
        };
        let (read, write) = tokio::io::split(TokioIo::new(upgraded));
        let max = config.max_frame_bytes;
        // tungstenite's default read buffer (128 KiB) would make every idle connection cost
        // that much; these messages are small, and the buffer still grows to `max` for a
        // large one (benches/signaling_vs_node.rs prints the cost per connection).
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0);
        let reader =
            WebSocketStream::from_raw_socket(ReadSide(read), Role::Server, Some(ws_config)).await;
        run(reader, FrameWriter::new(write), shared, &config, room, peer).await;
        drop(slot);
        drop(listener_slot);
    });
    response
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

/// What the reading side hands the writing side: pongs while the connection runs, and the
/// client's close (to echo) when it ends.
pub(super) struct FromReader {
    pub heard: LastHeard,
    pub replies: ReplyPipe,
}

async fn run(
    mut reader: Reader,
    mut writer: Writer,
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
    let from_reader = FromReader {
        heard: LastHeard::new(),
        replies: ReplyPipe::default(),
    };
    // The client's Close frame (its code may be absent), once it sent one.
    let mut client_close: Option<Option<CloseFrame>> = None;
    let end = tokio::select! {
        end = read_loop(
            &mut reader, &tx, (conn, &room, peer), (&shared, config), (&from_reader, &mut client_close),
        ) => end,
        end = write_loop(&mut writer, &mut rx, conn, &shared, &from_reader, &overflow) => end,
    };
    shared.switchboard.logout(conn).await;
    shared.ice.revoke(conn);
    tracing::info!(conn = conn.0, ?end, "WebSocket disconnected");
    // Boxed: only a closing connection needs this state, so idle ones do not carry its size.
    Box::pin(closing(end, client_close, (reader, writer), rx, &shared)).await;
}

/// Reads the client's frames until the connection ends: each passes the reply room, then the
/// rate limit, then goes to the switchboard.
async fn read_loop(
    stream: &mut Reader,
    own_mailbox: &queue::Sender,
    (conn, room, peer): (ConnId, &str, SocketAddr),
    (shared, config): (&EdgeShared, &SignalingConfig),
    (to_writer, client_close): (&FromReader, &mut Option<Option<CloseFrame>>),
) -> End {
    let mut limit = RateLimit::new(
        config.messages_per_second,
        config.message_burst,
        std::time::Instant::now(),
    );
    loop {
        let frame = match next_frame(stream, conn, to_writer).await {
            Ok(frame) => frame,
            Err((end, close)) => {
                *client_close = close;
                return end;
            }
        };
        // Replies to this client's own frames must not overflow its queue just because its
        // frames arrive faster than this task writes: wait for room (the writer times out a
        // client that stops reading altogether).
        if own_mailbox.wait_for_room(REPLY_ROOM).await.is_err() {
            return End::CutOff;
        }
        match within_rate(&mut limit, shared, conn).await {
            // Boxed: a login's state is large and short-lived; an idle connection waits in
            // `next_frame` without carrying it.
            Ok(true) => Box::pin(handle_frame(frame, shared, (conn, room, peer))).await,
            Ok(false) => {}
            Err(end) => return end,
        }
    }
}

/// The next Text frame (or `None` for a Binary one), or how the connection ended (with the
/// client's Close frame if it sent one). Every frame counts as hearing from the client; pings
/// and pongs only count, and a ping's pong goes to the writer.
async fn next_frame(
    stream: &mut Reader,
    conn: ConnId,
    to_writer: &FromReader,
) -> Result<Option<Utf8Bytes>, (End, Option<Option<CloseFrame>>)> {
    loop {
        let frame = match stream.next().await {
            None => return Err((End::ClientClosed, None)),
            Some(Ok(Message::Close(frame))) => return Err((End::ClientClosed, Some(frame))),
            Some(Err(err)) => return Err((read_error(conn, err), None)),
            Some(Ok(Message::Ping(payload))) => {
                to_writer.heard.touch();
                to_writer.replies.ping(payload);
                continue;
            }
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => {
                to_writer.heard.touch();
                continue;
            }
            Some(Ok(Message::Text(text))) => Some(text),
            Some(Ok(Message::Binary(_))) => None,
        };
        to_writer.heard.touch();
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

fn read_error(conn: ConnId, err: tungstenite::Error) -> End {
    if matches!(err, tungstenite::Error::Capacity(_)) {
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

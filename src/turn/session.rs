//! One client transport (a UDP source address, or a TCP/TLS connection) and the `turn` crate
//! server that serves it.
//!
//! Each transport gets its own `turn::server::Server`. That is what makes a TCP connection's
//! allocations end when it closes, and it bounds the crate's never-swept nonce map: the map
//! lives and dies with the transport, and the guard caps what goes into it. The crate sees the
//! transport as a `webrtc_util::Conn` whose `recv_from` runs every message through the guard.
//!
//! A session that never authenticated ends a fixed time after it began, whatever it sends, so
//! a squatter cannot hold a client slot by trickling junk; only correctly authenticated
//! requests count as activity for the idle timer of one that did.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use turn::allocation::AllocationInfo;
use turn::auth::AuthHandler;
use turn::server::config::{ConnConfig, ServerConfig};
use turn::server::Server;
use webrtc_util::Conn;

use super::admission::{Admission, Ticket};
use super::fastpath::FastPath;
use super::guard::{AuthCell, Guard, InboundAction, ServerState};
use super::relay::{Generator, RelaySettings};
use crate::lock::lock;

/// What the poison log calls the locks a session takes.
const GUARD: &str = "TURN session guard";
const LAST_SEEN: &str = "TURN session activity";

/// Largest message the crate reads (its read buffer); longer ones are dropped.
pub const MAX_MESSAGE: usize = 1500;

/// Where a session's replies go: a shared UDP socket or a TCP/TLS writer.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn send(&self, bytes: &[u8]) -> std::io::Result<()>;
    fn local_addr(&self) -> SocketAddr;
    /// A datagram transport (no ChannelData padding).
    fn is_datagram(&self) -> bool {
        false
    }
    /// Sends the frames `base[range]` of one relay read, in order. This default (streams)
    /// copies them into `scratch` and makes one write: one write per frame cost a system call
    /// and a lock of the writer each.
    async fn send_frames(
        &self,
        base: &[u8],
        frames: &[std::ops::Range<usize>],
        scratch: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        if let [one] = frames {
            return self.send(&base[one.clone()]).await;
        }
        scratch.clear();
        for r in frames {
            scratch.extend_from_slice(&base[r.clone()]);
        }
        self.send(scratch).await
    }
}

/// Everything a new session needs from its server.
#[derive(Clone)]
pub struct SessionEnv {
    pub shared: Arc<ServerState>,
    pub relay: Arc<RelaySettings>,
    pub admission: Arc<Admission>,
    pub shutdown: CancellationToken,
    pub tasks: tokio_util::task::TaskTracker,
}

/// The handle the listener keeps to feed a session.
pub struct SessionHandle {
    pub inbound: mpsc::Sender<Vec<u8>>,
    pub ended: CancellationToken,
    /// Relays ChannelData and Send indications without the crate (see fastpath/).
    pub fast: Arc<FastPath>,
}

/// The crate's server for one client transport: the control plane (Allocate, Refresh,
/// CreatePermission, ChannelBind) behind the guard in `conn`, its relay sockets wired to the
/// guard (quota slots) and the fast path (the data plane).
async fn crate_server(
    env: &SessionEnv,
    conn: SessionConn,
    (guard, fast): (&Arc<Mutex<Guard>>, &Arc<FastPath>),
    auth: AuthCell,
    close_tx: mpsc::Sender<AllocationInfo>,
) -> Result<Server, turn::Error> {
    let generator = Generator {
        settings: Arc::clone(&env.relay),
        policy: Arc::clone(&env.shared.policy),
        auth: Arc::clone(&auth),
        on_drop: relay_dropped(guard),
        fast: Arc::clone(fast),
    };
    Server::new(ServerConfig {
        conn_configs: vec![ConnConfig {
            conn: Arc::new(conn),
            relay_addr_generator: Box::new(generator),
        }],
        realm: env.shared.creds.realm().to_string(),
        auth_handler: Arc::new(SessionAuth(auth)),
        channel_bind_timeout: Duration::ZERO,
        alloc_close_notify: Some(close_tx),
    })
    .await
}

/// Starts serving one client transport. Inbound messages are pushed into the returned
/// handle; the session ends when the handle's sender is dropped, when `ended` is cancelled,
/// on shutdown, when idle, or (never authenticated) at the end of its fixed lifetime.
///
/// On a dual-stack `[::]` listener IPv4 clients arrive as
/// `::ffff:a.b.c.d`; the crate and the guard see them as the IPv4 addresses they are
/// (XOR-MAPPED-ADDRESS, quotas, limits). Replies still go out through the transport, which
/// keeps the socket's own form.
pub async fn start(
    env: &SessionEnv,
    client: SocketAddr,
    transport: Arc<dyn Transport>,
    ticket: Ticket,
) -> Result<SessionHandle, turn::Error> {
    let client = unmapped(client);
    let (tx, rx) = mpsc::channel(64);
    let ended = CancellationToken::new();
    let auth: AuthCell = Arc::new(Mutex::new(None));
    let guard = Arc::new(Mutex::new(Guard::new(
        Arc::clone(&env.shared),
        client,
        Arc::clone(&auth),
        Instant::now(),
    )));
    let last_seen = Arc::new(Mutex::new(Instant::now()));
    let fast = Arc::new(FastPath::new(
        Arc::clone(&env.shared),
        &env.relay,
        Arc::clone(&transport),
        ended.clone(),
    ));
    let conn = SessionConn {
        client,
        transport,
        fast: Arc::clone(&fast),
        inbound: tokio::sync::Mutex::new(rx),
        guard: Arc::clone(&guard),
        last_seen: Arc::clone(&last_seen),
        ended: ended.clone(),
    };
    let (close_tx, close_rx) = mpsc::channel(4);
    let server = crate_server(env, conn, (&guard, &fast), auth, close_tx).await?;
    let limits = &env.shared.budgets.limits;
    let watch = Watch {
        server,
        guard,
        last_seen,
        started: Instant::now(),
        unauthenticated_lifetime: limits.unauthenticated_lifetime,
        idle: limits.idle,
        close_rx,
        ended: ended.clone(),
        shutdown: env.shutdown.clone(),
        _ticket: ticket,
    };
    env.tasks.spawn(watch.run());
    Ok(SessionHandle {
        inbound: tx,
        ended,
        fast,
    })
}

/// Tells the guard a relay socket is gone (its allocation's quota slot is free).
fn relay_dropped(guard: &Arc<Mutex<Guard>>) -> super::relay::OnDrop {
    let guard = Arc::downgrade(guard);
    Arc::new(move |relay| {
        if let Some(guard) = guard.upgrade() {
            lock(&guard, GUARD).relay_dropped(relay);
        }
    })
}

/// Hands the crate the key the guard already verified for the request in flight.
struct SessionAuth(AuthCell);

impl AuthHandler for SessionAuth {
    fn auth_handle(
        &self,
        username: &str,
        _realm: &str,
        _src: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        match lock(&self.0, "TURN auth cell").as_ref() {
            Some((user, key)) if user == username => Ok(key.clone()),
            _ => Err(turn::Error::ErrNoSuchUser),
        }
    }
}

/// Keeps a session alive while it is useful and releases its quota when it ends.
struct Watch {
    server: Server,
    guard: Arc<Mutex<Guard>>,
    /// When the last correctly authenticated request arrived.
    last_seen: Arc<Mutex<Instant>>,
    started: Instant,
    unauthenticated_lifetime: Duration,
    idle: Duration,
    close_rx: mpsc::Receiver<AllocationInfo>,
    ended: CancellationToken,
    shutdown: CancellationToken,
    _ticket: Ticket,
}

impl Watch {
    async fn run(mut self) {
        // Fine enough for lifetimes shortened by tests, cheap enough for thousands of sessions.
        let period = (self.unauthenticated_lifetime / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                Some(info) = self.close_rx.recv() => {
                    lock(&self.guard, GUARD).closed(info.relay_addr);
                }
                _ = self.ended.cancelled() => break,
                _ = self.shutdown.cancelled() => break,
                _ = tick.tick() => if self.idle() { break },
            }
        }
        self.ended.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.server.close()).await;
        // Let the crate close its allocations (it sends close notifications) before the
        // quota slot is given back for good.
        let drain = async { while self.close_rx.recv().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        lock(&self.guard, GUARD).release();
    }

    /// Time to end: never authenticated and past its fixed lifetime (whatever it sent), or
    /// authenticated, without allocation, and no authenticated request for `idle`.
    fn idle(&self) -> bool {
        let guard = lock(&self.guard, GUARD);
        if !guard.authenticated() {
            return self.started.elapsed() > self.unauthenticated_lifetime;
        }
        if guard.has_allocation() {
            return false;
        }
        lock(&self.last_seen, LAST_SEEN).elapsed() > self.idle
    }
}

/// The crate's view of one client transport.
struct SessionConn {
    client: SocketAddr,
    transport: Arc<dyn Transport>,
    fast: Arc<FastPath>,
    /// Async because `recv_from` waits on the receiver while holding it (the crate calls it
    /// through `&self`); only the crate's one read loop ever takes it.
    inbound: tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
    guard: Arc<Mutex<Guard>>,
    last_seen: Arc<Mutex<Instant>>,
    ended: CancellationToken,
}

pub use crate::net::unmapped;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn closed() -> webrtc_util::Error {
    webrtc_util::Error::Other("client transport closed".into())
}

#[async_trait]
impl Conn for SessionConn {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(webrtc_util::Error::Other("not supported".into()))
    }

    async fn recv(&self, _buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("use recv_from".into()))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut inbound = self.inbound.lock().await;
        loop {
            // The rest of a request the guard split goes first (see split.rs).
            let queued = lock(&self.guard, GUARD).queued();
            if let Some(part) = queued {
                if part.len() <= buf.len() {
                    self.fast.note_request(&part);
                    buf[..part.len()].copy_from_slice(&part);
                    return Ok((part.len(), self.client));
                }
            }
            let message = tokio::select! {
                m = inbound.recv() => m.ok_or_else(closed)?,
                _ = self.ended.cancelled() => return Err(closed()),
            };
            if message.len() > buf.len() {
                continue;
            }
            let verdict = {
                let mut guard = lock(&self.guard, GUARD);
                let verdict = guard.inbound(&message, Instant::now(), unix_now());
                if guard.verified_last() {
                    *lock(&self.last_seen, LAST_SEEN) = Instant::now();
                }
                verdict
            };
            match verdict {
                InboundAction::Pass => {
                    self.fast.note_request(&message);
                    buf[..message.len()].copy_from_slice(&message);
                    return Ok((message.len(), self.client));
                }
                InboundAction::PassAs(part) if part.len() <= buf.len() => {
                    self.fast.note_request(&part);
                    buf[..part.len()].copy_from_slice(&part);
                    return Ok((part.len(), self.client));
                }
                InboundAction::PassAs(_) => {}
                InboundAction::Reply(bytes) => {
                    if self.transport.send(&bytes).await.is_err() {
                        self.ended.cancel();
                    }
                }
                InboundAction::Drop => {}
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.send_to(buf, self.client).await
    }

    async fn send_to(&self, buf: &[u8], _target: SocketAddr) -> webrtc_util::Result<usize> {
        // Before the guard, which swallows the answers to parts of a split request.
        self.fast.note_answer(buf);
        let forward = lock(&self.guard, GUARD).outbound(buf, Instant::now());
        if !forward {
            return Ok(buf.len());
        }
        if self.transport.send(buf).await.is_err() {
            // A dead or stuck client: end its session rather than let relaying stall.
            self.ended.cancel();
            return Err(closed());
        }
        Ok(buf.len())
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.transport.local_addr())
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.client)
    }

    /// The crate closes the listener conn whenever an allocation ends; the transport outlives
    /// its allocations, so this does nothing.
    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

//! The signaling relay: people log in with a name in a room, see who is online, chat, and send
//! call set-up messages (offers, answers, ICE candidates) to one named user. The server routes
//! those messages by name and never reads their bodies.
//!
//! Layers, outside in: [`connection`] (the socket edge: upgrade checks, limits, ping, close
//! codes) talks only to a [`Switchboard`] (presence and routing behind one narrow interface);
//! [`LocalSwitchboard`] runs the plain-state [`hub::Hub`] in memory; [`protocol`] turns frames
//! into typed messages and [`outbound`] back; [`attempts`] slows down access-code guessing.
//! The wire format is written up in docs/protocol.md.

pub(crate) mod attempts;
pub(crate) mod call_log;
pub mod cluster;
pub(crate) mod connection;
mod handshake;
pub mod hub;
mod json_scan;
pub(crate) mod limits;
pub mod live;
pub(crate) mod names;
pub(crate) mod outbound;
pub(crate) mod presence;
pub mod protocol;
pub(crate) mod queue;
mod relayed;
mod room;
pub mod switchboard;
#[cfg(test)]
mod test_log;
pub(crate) mod wheel;
mod wire;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::shutdown::StopBudget;

pub use crate::config::signaling::SignalingConfig;
pub use hub::{ConnId, HubConfig};
pub use switchboard::{LocalSwitchboard, Mailbox, Switchboard};

/// Where logged-in users get their `iceServers` (the TURN module, wired in by the app).
pub trait IceServerSource: Send + Sync + 'static {
    /// Fresh ICE server entries (a JSON array of RTCIceServer) for the login on connection
    /// `login` (its identity for TURN quotas, not its display name), and how long the
    /// credentials in them stay valid.
    fn ice_servers_for(&self, login: ConnId) -> IceGrant;
    /// As `ice_servers_for`, for the login's first grant, made in room `room` (a room key, for
    /// per-room TURN quotas; later refreshes keep it).
    fn ice_servers_in(&self, login: ConnId, _room: &str) -> IceGrant {
        self.ice_servers_for(login)
    }
    /// The login on `login` ended: its credentials must make no new allocation from now on.
    fn revoke(&self, _login: ConnId) {}
}

#[derive(Debug, Clone, PartialEq)]
pub struct IceGrant {
    pub ice_servers: serde_json::Value,
    pub ttl: Duration,
}

/// Everything the relay needs from the rest of the process.
pub struct SignalingContext {
    /// Swapped by SIGHUP (`ops/reload.rs`); each new connection reads it once.
    pub config: Arc<live::Live<SignalingConfig>>,
    pub rooms: Vec<crate::config::RoomConfig>,
    /// Exact `Origin` values accepted on the WebSocket upgrade (scheme://host[:port]).
    pub allowed_origins: Vec<String>,
    pub ice: Arc<dyn IceServerSource>,
    /// Cancelled on shutdown: every connection closes with 1001 "going away".
    pub shutdown: CancellationToken,
    /// Connection tasks are spawned on this so shutdown can wait for them.
    pub tasks: TaskTracker,
}

/// The `/ws` route, with presence and routing kept in this process and the shutdown budget
/// of the default `server.shutdown_grace_secs`.
pub fn router(ctx: SignalingContext) -> axum::Router {
    let switchboard = Arc::new(LocalSwitchboard::new(HubConfig::new(
        &ctx.config.load(),
        &ctx.rooms,
    )));
    let grace = crate::config::ServerConfig::default().shutdown_grace_secs;
    router_with(ctx, switchboard, StopBudget::new(grace))
}

/// The `/ws` route over any [`Switchboard`] (e.g. one shared between several nodes); its
/// closing handshakes wait within `stop` ([`StopBudget::ws_close`]).
pub fn router_with(
    ctx: SignalingContext,
    switchboard: Arc<dyn Switchboard>,
    stop: StopBudget,
) -> axum::Router {
    ctx.tasks.spawn(switchboard::run_presence_ticks(
        Arc::downgrade(&switchboard),
        ctx.shutdown.clone(),
    ));
    let start = ctx.config.load();
    // Fixed for the process: one wheel pings every connection (reload leaves it alone).
    let wheel = Arc::new(wheel::PingWheel::new(Duration::from_secs(
        start.ping_interval_secs.max(1),
    )));
    tokio::spawn(wheel::run(Arc::downgrade(&wheel), ctx.shutdown.clone()));
    let shared = Arc::new(connection::EdgeShared {
        wheel,
        access: attempts::AccessGuard::new(HubConfig::new(&start, &ctx.rooms)),
        per_ip: limits::PerIpLimit::default(),
        config: ctx.config,
        allowed_origins: ctx
            .allowed_origins
            .iter()
            .map(|o| crate::net::normalize_origin(o))
            .collect(),
        ice: ctx.ice,
        switchboard,
        shutdown: ctx.shutdown,
        tasks: ctx.tasks,
        close_wait: stop.ws_close,
    });
    axum::Router::new()
        .route("/ws", axum::routing::get(connection::upgrade))
        .with_state(shared)
}

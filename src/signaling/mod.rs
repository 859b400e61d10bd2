//! The signaling relay: people log in with a name in a room, see who is online, chat, and send
//! call set-up messages (offers, answers, ICE candidates) to one named user. The server routes
//! those messages by name and never reads their bodies.
//!
//! STUB: the signaling work replaces this file's body; the items below are the interface the
//! app wiring relies on.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::SignalingConfig;

/// Where logged-in users get their `iceServers` (the TURN module, wired in by the app).
pub trait IceServerSource: Send + Sync + 'static {
    /// Fresh ICE server entries (a JSON array of RTCIceServer) for `name`, and how long the
    /// credentials in them stay valid.
    fn ice_servers_for(&self, name: &str) -> IceGrant;
}

#[derive(Debug, Clone)]
pub struct IceGrant {
    pub ice_servers: serde_json::Value,
    pub ttl: Duration,
}

/// Everything the relay needs from the rest of the process.
pub struct SignalingContext {
    pub config: SignalingConfig,
    pub rooms: Vec<crate::config::RoomConfig>,
    /// Exact `Origin` values accepted on the WebSocket upgrade (scheme://host[:port]).
    pub allowed_origins: Vec<String>,
    pub ice: Arc<dyn IceServerSource>,
    /// Cancelled on shutdown: every connection closes with 1001 "going away".
    pub shutdown: CancellationToken,
    /// Connection tasks are spawned on this so shutdown can wait for them.
    pub tasks: TaskTracker,
}

/// The `/ws` route.
pub fn router(_ctx: SignalingContext) -> axum::Router {
    axum::Router::new()
}

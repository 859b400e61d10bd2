//! Every limit of the web listener in one place: how many connections it holds, how many one
//! client address may hold, and how long a connection may take over each phase before it does
//! useful work. Without them, a few sockets that connect and say nothing (or stop after one
//! byte) would hold the listener's slots forever and take the page down for everyone.
//!
//! The defaults are the `DEFAULT_*` constants of `config::server`; `[server]` in config.toml
//! can change them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;

use super::per_address::AddressGuard;
use crate::config::ServerConfig;
use crate::shutdown::StopBudget;

pub use crate::config::server::{
    DEFAULT_HANDSHAKE_TIMEOUT_SECS, DEFAULT_KEEP_ALIVE_IDLE_SECS,
    DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, DEFAULT_REQUEST_HEADER_TIMEOUT_SECS,
};
/// Read buffer per HTTP connection; a request head larger than this is refused.
pub const MAX_HTTP_BUFFER: usize = 64 * 1024;

/// What [`super::server::serve`] enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Connections held at once, WebSockets and TURN-over-TLS streams included; more wait in
    /// the kernel's accept queue.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub handshake_timeout: Duration,
    pub request_header_timeout: Duration,
    pub keep_alive_idle: Duration,
    /// How long in-flight HTTP requests get to finish on shutdown (`crate::shutdown`).
    pub shutdown_drain: Duration,
}

impl Settings {
    /// The `[server]` limits.
    pub fn new(server: &ServerConfig) -> Settings {
        Settings {
            max_connections: server.max_connections.max(1),
            max_connections_per_address: server.max_connections_per_address.max(1),
            handshake_timeout: Duration::from_secs(server.handshake_timeout_secs),
            request_header_timeout: Duration::from_secs(server.request_header_timeout_secs),
            keep_alive_idle: Duration::from_secs(server.keep_alive_idle_secs),
            shutdown_drain: StopBudget::new(server.shutdown_grace_secs).http_drain,
        }
    }
}

/// One connection's hold on the listener: a slot of `max_connections` and its address's share.
/// Cloned into every request's extensions, so a handler that outlives the HTTP connection (an
/// upgraded WebSocket) keeps holding it until it drops its clone.
#[derive(Debug, Clone)]
pub struct ConnectionSlot {
    _held: Arc<Held>,
}

/// Held only to be dropped: the fields release themselves.
#[derive(Debug)]
struct Held {
    _permit: OwnedSemaphorePermit,
    _address: AddressGuard,
}

impl ConnectionSlot {
    pub fn new(permit: OwnedSemaphorePermit, address: AddressGuard) -> ConnectionSlot {
        ConnectionSlot {
            _held: Arc::new(Held {
                _permit: permit,
                _address: address,
            }),
        }
    }
}

pub use crate::net::Backoff;

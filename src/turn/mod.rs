//! The embedded STUN/TURN server, so calls cross NATs with no outside infrastructure.
//!
//! STUB: the TURN work replaces this file's body; the items below are the interface the app
//! wiring relies on.

pub mod config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

pub use config::{TurnConfig, TurnUser};

/// What the TURN server needs from the rest of the process.
pub struct TurnContext {
    /// Host name put in `stun:`/`turn:`/`turns:` URLs (and the realm when `turn.realm` is empty).
    pub public_host: String,
    /// The HTTPS port when TURN over TLS is also served there (first-byte split), for `turns:` URLs.
    pub https_port: Option<u16>,
    /// Certificate for `turn.listen_tls` listeners.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub shutdown: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// A running TURN server.
pub struct TurnServer {
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    tls: Vec<SocketAddr>,
}

impl TurnServer {
    pub async fn start(_config: &TurnConfig, _ctx: TurnContext) -> Result<TurnServer, TurnError> {
        Ok(TurnServer {
            udp: vec![],
            tcp: vec![],
            tls: vec![],
        })
    }
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls
    }
    /// Fresh `iceServers` (JSON array) for a logged-in user, and the credentials' lifetime.
    pub fn ice_servers_for(&self, _name: &str) -> (serde_json::Value, Duration) {
        (serde_json::json!([]), Duration::from_secs(3600))
    }
    /// Serve TURN on an already-accepted byte stream (TURN over TLS on the HTTPS port).
    pub fn serve_stream<S>(&self, _stream: S, _peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
    }
    /// Stop listening and end every allocation.
    pub async fn close(&self) {}
}

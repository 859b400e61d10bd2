//! The `[server]` section: the public name, the web listener's address and its limits, and how
//! long a shutdown may take. The web listener reads its limits from here (`web::limits`).

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

/// Longest grace a shutdown uses: with the exit margin it must fit the systemd unit's
/// `TimeoutStopSec=10` (see `crate::shutdown`, whose test checks the unit file). A longer
/// `shutdown_grace_secs` is accepted (an old file keeps working) and capped, with a warning.
pub const MAX_SHUTDOWN_GRACE_SECS: u64 = 8;
/// Connections one client address (IPv6: one /64) may hold on the listener, counted before TLS.
/// Each browser profile keeps up to six keep-alive connections per origin open for a minute
/// besides its WebSocket and TURN-over-443 streams, so one person with a few tabs holds 8-20;
/// 128 leaves room for an office or household behind one NAT address (the relay's own cap of
/// 20 WebSockets per address binds first), and is still about 1% of the listener's total.
/// (32 was tried first: five pages in one browser test already hit it.)
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 128;
/// Connections the web listener holds at once, WebSockets and TURN-over-TLS streams included.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// From TCP accept to a finished TLS handshake (a handshake takes a few round trips).
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// From the end of the handshake (plain HTTP: from accept) to the first complete request
/// header (or, after TLS, the first byte of a TURN stream).
pub const DEFAULT_REQUEST_HEADER_TIMEOUT_SECS: u64 = 10;
/// A keep-alive HTTP connection waiting for its next request, or for that request's headers.
pub const DEFAULT_KEEP_ALIVE_IDLE_SECS: u64 = 60;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The DNS name people open. Used for the Origin check, TURN URLs and the TURN realm.
    pub public_host: String,
    /// Address of the HTTP(S) listener that serves the page, /ws and (with TLS) TURN over TLS.
    pub listen: SocketAddr,
    /// Extra origins accepted on /ws besides the public host (e.g. `"https://callbox.example:8443"`).
    pub extra_origins: Vec<String>,
    /// Seconds a shutdown waits for connections to close before exiting anyway (capped at
    /// [`MAX_SHUTDOWN_GRACE_SECS`]); every layer's shutdown wait is derived from it.
    pub shutdown_grace_secs: u64,
    /// Connections the web listener holds at once (page, WebSockets, TURN over TLS); more wait
    /// in the kernel's accept queue. Was `signaling.max_connections`, still read as an alias.
    pub max_connections: usize,
    /// Web listener limits (the defaults are the `DEFAULT_*` constants above).
    pub max_connections_per_address: usize,
    pub handshake_timeout_secs: u64,
    pub request_header_timeout_secs: u64,
    pub keep_alive_idle_secs: u64,
    /// Plain-HTTP listener that redirects to HTTPS and answers ACME HTTP-01 (see `acme`).
    pub http_redirect: Option<SocketAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_host: "localhost".to_string(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            extra_origins: Vec::new(),
            shutdown_grace_secs: 4,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            handshake_timeout_secs: DEFAULT_HANDSHAKE_TIMEOUT_SECS,
            request_header_timeout_secs: DEFAULT_REQUEST_HEADER_TIMEOUT_SECS,
            keep_alive_idle_secs: DEFAULT_KEEP_ALIVE_IDLE_SECS,
            http_redirect: None,
        }
    }
}

impl ServerConfig {
    /// A bare host name, and listener limits of at least 1 (0 would refuse or cut off everyone).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let host = self.public_host.trim();
        if host.is_empty()
            || host.contains(['/', ' ', ':']) && host.parse::<std::net::Ipv6Addr>().is_err()
        {
            return Err(ConfigError::invalid(
                "server.public_host",
                "must be a bare DNS name or IP address (no scheme, port or path)",
            ));
        }
        let keys = [
            (
                "server.max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
            ("server.handshake_timeout_secs", self.handshake_timeout_secs),
            (
                "server.request_header_timeout_secs",
                self.request_header_timeout_secs,
            ),
            ("server.keep_alive_idle_secs", self.keep_alive_idle_secs),
        ];
        match keys.iter().find(|(_, value)| *value == 0) {
            Some((key, _)) => Err(ConfigError::invalid(*key, "must be at least 1")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_rejected_with_the_key_named() {
        let server = ServerConfig {
            handshake_timeout_secs: 0,
            ..ServerConfig::default()
        };
        let err = server.validate().expect_err("zero");
        assert!(err.to_string().contains("server.handshake_timeout_secs"));
        assert!(ServerConfig::default().validate().is_ok());
    }
}

//! The `[turn]` section of config.toml.
//!
//! Every key is checked here, so `callbox check-config` names a bad TURN setting before any
//! socket is bound.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnConfig {
    /// Run the embedded STUN/TURN server.
    pub enabled: bool,
    /// Realm for the long-term credential mechanism. Empty: the public host.
    pub realm: String,
    /// UDP listeners (STUN and TURN), e.g. ["0.0.0.0:3478", "[::]:3478"].
    pub listen_udp: Vec<SocketAddr>,
    /// TCP listeners (RFC 6062-less TURN over TCP: STUN/ChannelData framing).
    pub listen_tcp: Vec<SocketAddr>,
    /// TURN over TLS listeners, usually port 5349. Needs `[tls]`.
    pub listen_tls: Vec<SocketAddr>,
    /// Accept TURN over TLS on the HTTPS port (server.listen) by looking at the first byte.
    pub on_https_port: bool,
    /// Local addresses relay sockets bind to, one per address family you want to relay in.
    pub relay_ips: Vec<IpAddr>,
    /// Public address advertised for relays when the server sits behind 1:1 NAT
    /// (cloud VMs whose interface has a private address).
    pub external_ip: Option<IpAddr>,
    /// Lowest UDP port a relay socket may use (inclusive).
    pub relay_port_min: u16,
    /// Highest UDP port a relay socket may use (inclusive).
    pub relay_port_max: u16,
    /// Shared secrets (TURN REST API, as coturn's use-auth-secret). The first signs new
    /// credentials; all are accepted, so a secret can be rotated without cutting calls.
    /// Empty: a random secret per start. Each must look random (`secrets::weakness`).
    pub secrets: Vec<String>,
    /// Lifetime of the credentials handed to each login, in seconds.
    pub credential_ttl_secs: u64,
    /// Peer networks allowed despite the built-in deny list (CIDRs), for LAN or lab setups.
    pub allow_peers: Vec<String>,
    /// Allocations one login (or static user) may hold at once; more are refused with 486.
    pub max_allocations_per_user: usize,
    /// Allocations one client address (IPv6: one /64) may hold at once, whatever logins it
    /// uses; more are refused with 486.
    pub max_allocations_per_ip: usize,
    /// Allocations the whole server holds at once; more are refused with 508.
    pub max_allocations: usize,
    /// Allocations the logins of one signaling room hold together; more are refused with 486.
    /// Unset: half of `max_allocations` (at least 1), so one room, however many hosts and
    /// logins it has, can never take the whole relay: the other half always stays for the
    /// other rooms, while a single busy room still gets far more than any one login or host.
    /// Static `turn.users` count under no room. Between 1 and `max_allocations`.
    pub max_allocations_per_room: Option<usize>,
    /// Client transports held at once: UDP source addresses plus TCP/TLS connections. Each
    /// costs a little state; past this, new clients are turned away until others leave.
    pub max_clients: usize,
    /// Relay bandwidth per allocation in kilobits per second, each direction. 0: unlimited.
    pub bandwidth_per_allocation_kbps: u64,
    /// Static long-term users for tools and tests.
    pub users: Vec<TurnUser>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnUser {
    /// Username as typed into the tool (no ':', which marks REST API usernames).
    pub name: String,
    pub password: String,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            enabled: true,
            realm: String::new(),
            listen_udp: vec![SocketAddr::from(([127, 0, 0, 1], 3478))],
            listen_tcp: vec![SocketAddr::from(([127, 0, 0, 1], 3478))],
            listen_tls: Vec::new(),
            on_https_port: true,
            relay_ips: vec![IpAddr::from([127, 0, 0, 1])],
            external_ip: None,
            relay_port_min: 49152,
            relay_port_max: 65535,
            secrets: Vec::new(),
            credential_ttl_secs: 3600,
            allow_peers: Vec::new(),
            max_allocations_per_user: 10,
            max_allocations_per_ip: 30,
            max_allocations: 1000,
            max_allocations_per_room: None,
            max_clients: 4096,
            bandwidth_per_allocation_kbps: 0,
            users: Vec::new(),
        }
    }
}

impl TurnConfig {
    /// `max_allocations_per_room`, or its default: half of `max_allocations`, at least 1.
    pub fn allocations_per_room(&self) -> usize {
        self.max_allocations_per_room
            .unwrap_or((self.max_allocations / 2).max(1))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_relay()?;
        self.validate_credentials()?;
        self.validate_limits()?;
        for (i, cidr) in self.allow_peers.iter().enumerate() {
            cidr.parse::<ipnet::IpNet>().map_err(|err| {
                ConfigError::invalid(format!("turn.allow_peers[{i}]"), format!("{cidr:?}: {err}"))
            })?;
        }
        Ok(())
    }

    /// Relay ports, relay addresses and the advertised external address.
    fn validate_relay(&self) -> Result<(), ConfigError> {
        if self.relay_port_min == 0 || self.relay_port_min > self.relay_port_max {
            return Err(ConfigError::invalid(
                "turn.relay_port_min",
                "must be between 1 and turn.relay_port_max",
            ));
        }
        if self.relay_ips.is_empty() {
            return Err(ConfigError::invalid(
                "turn.relay_ips",
                "needs at least one address to bind relay sockets to",
            ));
        }
        for (i, ip) in self.relay_ips.iter().enumerate() {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(ConfigError::invalid(
                    format!("turn.relay_ips[{i}]"),
                    format!(
                        "{ip}: must be a concrete interface address (it is advertised to clients \
                         and allowed as a peer on relay ports only)"
                    ),
                ));
            }
        }
        if let Some(ext) = self.external_ip {
            if ext.is_unspecified()
                || !self
                    .relay_ips
                    .iter()
                    .any(|ip| ip.is_ipv4() == ext.is_ipv4())
            {
                return Err(ConfigError::invalid(
                    "turn.external_ip",
                    format!("{ext}: must be a concrete address of the same family as one of turn.relay_ips"),
                ));
            }
        }
        Ok(())
    }

    /// Secrets random enough, a sane credential lifetime, well-formed static users.
    fn validate_credentials(&self) -> Result<(), ConfigError> {
        for (i, secret) in self.secrets.iter().enumerate() {
            if let Some(why) = super::secrets::weakness(secret) {
                return Err(ConfigError::invalid(format!("turn.secrets[{i}]"), why));
            }
        }
        if self.credential_ttl_secs < 60 || self.credential_ttl_secs > 7 * 24 * 3600 {
            return Err(ConfigError::invalid(
                "turn.credential_ttl_secs",
                "must be between 60 and 604800 (one week)",
            ));
        }
        for (i, user) in self.users.iter().enumerate() {
            if user.name.is_empty() || user.name.contains(':') || user.password.is_empty() {
                return Err(ConfigError::invalid(
                    format!("turn.users[{i}]"),
                    "name must be non-empty without ':' and password non-empty",
                ));
            }
        }
        Ok(())
    }

    /// Every allocation and client cap at least 1.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("turn.max_allocations", self.max_allocations),
            (
                "turn.max_allocations_per_user",
                self.max_allocations_per_user,
            ),
            ("turn.max_allocations_per_ip", self.max_allocations_per_ip),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        let per_room = self.allocations_per_room();
        if per_room == 0 || per_room > self.max_allocations {
            return Err(ConfigError::invalid(
                "turn.max_allocations_per_room",
                "must be between 1 and turn.max_allocations",
            ));
        }
        if self.max_clients == 0 {
            return Err(ConfigError::invalid(
                "turn.max_clients",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_cap_defaults_to_half_the_server_and_stays_within_it() {
        let mut c = TurnConfig::default();
        assert_eq!(c.allocations_per_room(), 500);
        c.max_allocations = 1;
        assert_eq!(c.allocations_per_room(), 1, "at least 1");
        assert!(c.validate().is_ok());
        for bad in [0, 2] {
            c.max_allocations_per_room = Some(bad);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("turn.max_allocations_per_room"), "{err}");
        }
        c.max_allocations_per_room = Some(1);
        assert!(c.validate().is_ok());
    }
}

//! config.toml: what a person running callbox can set, with defaults that are safe on the open
//! internet and that run on a laptop with no file at all.
//!
//! Every section rejects unknown keys, so a typo is an error that names the key instead of a
//! setting that silently does nothing. [`Config::load`] checks everything that can be checked
//! without binding a socket (types, ranges, port clashes, certificate files), so
//! `callbox check-config` and a failed start say the same thing before anything listens.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod cluster;

use crate::signaling::SignalingConfig;
use crate::turn::TurnConfig;

/// The whole file. Sections are owned by the job they configure.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub signaling: SignalingConfig,
    /// Rooms with their own access code. Rooms not listed here are open (subject to the global
    /// `signaling.access_code`).
    pub rooms: Vec<RoomConfig>,
    pub turn: TurnConfig,
    pub metrics: MetricsConfig,
    /// Absent: one process, no Redis.
    pub cluster: Option<cluster::ClusterConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The DNS name people open. Used for the Origin check, TURN URLs and the TURN realm.
    pub public_host: String,
    /// Address of the HTTP(S) listener that serves the page, /ws and (with TLS) TURN over TLS.
    pub listen: SocketAddr,
    /// Extra origins accepted on /ws besides the public host (e.g. `"https://callbox.example:8443"`).
    pub extra_origins: Vec<String>,
    /// Seconds a shutdown waits for connections to close before exiting anyway.
    pub shutdown_grace_secs: u64,
    /// Web listener limits (see `crate::web::limits`, where the defaults live).
    pub max_connections_per_address: usize,
    pub handshake_timeout_secs: u64,
    pub request_header_timeout_secs: u64,
    pub keep_alive_idle_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_host: "localhost".to_string(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            extra_origins: Vec::new(),
            shutdown_grace_secs: 4,
            max_connections_per_address: crate::web::limits::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            handshake_timeout_secs: crate::web::limits::DEFAULT_HANDSHAKE_TIMEOUT_SECS,
            request_header_timeout_secs: crate::web::limits::DEFAULT_REQUEST_HEADER_TIMEOUT_SECS,
            keep_alive_idle_secs: crate::web::limits::DEFAULT_KEEP_ALIVE_IDLE_SECS,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Serve HTTPS (and TURN over TLS on the same port). Off on the default config only.
    pub enabled: bool,
    /// PEM certificate chain, e.g. /etc/letsencrypt/live/HOST/fullchain.pem.
    pub cert: Option<PathBuf>,
    /// PEM private key, e.g. /etc/letsencrypt/live/HOST/privkey.pem.
    pub key: Option<PathBuf>,
    /// Generate a self-signed certificate for `server.public_host` at start (labs and tests).
    pub self_signed: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the Prometheus listener (`/metrics`); "" turns it off. Keep it on loopback or
    /// a private address: the figures are not for the public.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "127.0.0.1:9464".to_string(),
        }
    }
}

impl MetricsConfig {
    /// The address to listen on, `None` when turned off.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        match self.listen.trim() {
            "" => Ok(None),
            text => text.parse().map(Some).map_err(|_| {
                ConfigError::invalid(
                    "metrics.listen",
                    format!("{text:?} is not an address like \"127.0.0.1:9464\" (or \"\" for off)"),
                )
            }),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomConfig {
    pub name: String,
    #[serde(default)]
    pub access_code: Option<String>,
}

/// Why a config cannot be used. Each message names the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Config::parse(&text).map_err(|err| match err {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Parses and validates config text (the path in errors is left empty).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: PathBuf::new(),
            message: err.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: value ranges, clashes between sections, readable files.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let host = self.server.public_host.trim();
        if host.is_empty()
            || host.contains(['/', ' ', ':']) && host.parse::<std::net::Ipv6Addr>().is_err()
        {
            return Err(ConfigError::invalid(
                "server.public_host",
                "must be a bare DNS name or IP address (no scheme, port or path)",
            ));
        }
        if self.tls.enabled && !self.tls.self_signed {
            let cert = self.tls.cert.as_ref().ok_or_else(|| {
                ConfigError::invalid(
                    "tls.cert",
                    "required when tls.enabled (or set tls.self_signed)",
                )
            })?;
            let key = self.tls.key.as_ref().ok_or_else(|| {
                ConfigError::invalid(
                    "tls.key",
                    "required when tls.enabled (or set tls.self_signed)",
                )
            })?;
            crate::web::tls::load_pem_files(cert, key)
                .map_err(|err| ConfigError::invalid("tls", err.to_string()))?;
        }
        let mut seen = std::collections::HashSet::new();
        for (i, room) in self.rooms.iter().enumerate() {
            let name = room.name.trim().to_lowercase();
            if name.is_empty() || !seen.insert(name) {
                return Err(ConfigError::invalid(
                    format!("rooms[{i}].name"),
                    "must be non-empty and unique",
                ));
            }
        }
        crate::web::limits::validate(&self.server)?;
        self.signaling.validate()?;
        self.turn.validate()?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        self.check_port_clashes()
    }

    /// Two listeners of the same protocol on overlapping addresses would fail at bind time,
    /// after other sockets are already open; catch it here with the keys named.
    fn check_port_clashes(&self) -> Result<(), ConfigError> {
        let mut tcp: Vec<(&str, SocketAddr)> = vec![("server.listen", self.server.listen)];
        tcp.extend(self.metrics.listen_addr()?.map(|a| ("metrics.listen", a)));
        let mut udp: Vec<(&str, SocketAddr)> = Vec::new();
        if self.turn.enabled {
            udp.extend(self.turn.listen_udp.iter().map(|a| ("turn.listen_udp", *a)));
            tcp.extend(self.turn.listen_tcp.iter().map(|a| ("turn.listen_tcp", *a)));
            tcp.extend(self.turn.listen_tls.iter().map(|a| ("turn.listen_tls", *a)));
        }
        for list in [&tcp, &udp] {
            for (i, (key_a, a)) in list.iter().enumerate() {
                for (key_b, b) in list.iter().skip(i + 1) {
                    if clashes(*a, *b) {
                        return Err(ConfigError::invalid(
                            *key_b,
                            format!("{b} clashes with {key_a} = {a}"),
                        ));
                    }
                }
            }
        }
        if self.turn.enabled {
            let range = self.turn.relay_port_min..=self.turn.relay_port_max;
            for (key, addr) in tcp.iter().chain(udp.iter()) {
                if addr.port() != 0 && range.contains(&addr.port()) {
                    return Err(ConfigError::invalid(
                        *key,
                        format!(
                            "port {} is inside turn.relay_port_min..turn.relay_port_max",
                            addr.port()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Same port (not ephemeral) and addresses that overlap: equal, or either unspecified in the
/// same family. A "[::]" socket is dual-stack on Linux, so it overlaps every IPv4 address too;
/// list "[::]:3478" alone to serve both families.
fn clashes(a: SocketAddr, b: SocketAddr) -> bool {
    let dual_stack =
        |x: SocketAddr, y: SocketAddr| x.ip() == IpAddr::from(Ipv6Addr::UNSPECIFIED) && y.is_ipv4();
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
            || dual_stack(a, b)
            || dual_stack(b, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default_config() {
        let config = Config::parse("").expect("empty config parses");
        assert_eq!(
            config.server.listen,
            SocketAddr::from(([127, 0, 0, 1], 8080))
        );
        assert!(!config.tls.enabled);
    }

    #[test]
    fn unknown_key_is_named_in_the_error() {
        let err = Config::parse("[server]\nlisten_port = 80\n").unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }

    #[test]
    fn wrong_type_is_named_in_the_error() {
        let err = Config::parse("[server]\nlisten = 8080\n").unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
    }

    #[test]
    fn missing_certificate_file_is_named() {
        let err = Config::parse(
            "[tls]\nenabled = true\ncert = \"/nonexistent/fullchain.pem\"\nkey = \"/nonexistent/privkey.pem\"\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/fullchain.pem"),
            "{err}"
        );
    }

    #[test]
    fn dual_stack_wildcard_clashes_with_ipv4_but_not_with_a_specific_ipv6() {
        let v6_any: SocketAddr = "[::]:3478".parse().unwrap();
        assert!(clashes(v6_any, "0.0.0.0:3478".parse().unwrap()));
        assert!(clashes("127.0.0.1:3478".parse().unwrap(), v6_any));
        assert!(clashes(v6_any, "[::1]:3478".parse().unwrap()));
        assert!(!clashes(
            "127.0.0.1:3478".parse().unwrap(),
            "[::1]:3478".parse().unwrap()
        ));
        assert!(!clashes(
            "0.0.0.0:3478".parse().unwrap(),
            "[::1]:3478".parse().unwrap()
        ));
    }

    #[test]
    fn metrics_listen_is_checked_and_empty_turns_it_off() {
        let off = Config::parse("[metrics]\nlisten = \"\"\n").expect("off");
        assert_eq!(off.metrics.listen_addr().expect("valid"), None);
        let err = Config::parse("[metrics]\nlisten = \"9464\"\n").unwrap_err();
        assert!(err.to_string().contains("metrics.listen"), "{err}");
        let err = Config::parse("[metrics]\nlisten = \"127.0.0.1:8080\"\n").unwrap_err();
        assert!(err.to_string().contains("metrics.listen"), "{err}");
    }

    #[test]
    fn port_clash_between_listeners_is_refused() {
        let err = Config::parse(
            "[server]\nlisten = \"0.0.0.0:3478\"\n[turn]\nlisten_tcp = [\"127.0.0.1:3478\"]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("turn.listen_tcp"), "{err}");
    }
}

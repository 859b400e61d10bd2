//! config.toml: what a person running callbox can set, with defaults that are safe on the open
//! internet and that run on a laptop with no file at all.
//!
//! This is a leaf: each section is a file under `src/config/` that owns its keys and checks
//! itself, and nothing here imports a job (signaling, turn, web, ops); the jobs import their
//! section from here. Every section rejects unknown keys, so a typo is an error that names the
//! key instead of a setting that silently does nothing. [`Config::load`] checks everything that
//! can be checked without binding a socket (types, ranges, port clashes, certificate files), so
//! `callbox check-config` and a failed start say the same thing before anything listens.
//!
//! A new section: a `pub mod` line, one field in [`Config`], one call in [`Config::validate`].

pub mod acme;
pub mod aliases;
pub mod cluster;
pub mod error;
pub mod listeners;
pub mod metrics;
pub mod rooms;
pub mod secrets;
pub mod server;
pub mod signaling;
pub mod tls;
pub mod turn;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

pub use self::error::ConfigError;
pub use self::metrics::MetricsConfig;
pub use self::rooms::RoomConfig;
pub use self::server::ServerConfig;
pub use self::signaling::SignalingConfig;
pub use self::tls::{PemPair, TlsConfig};
pub use self::turn::{TurnConfig, TurnUser};

/// The whole file. Each section is owned by its file under `src/config/`.
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
    /// What [`Config::parse`] found when it validated this config, so `start` neither checks
    /// it again nor reads the certificate files a second time. `None` for a config built in
    /// code (the defaults, a test's): `start` validates that one itself.
    #[serde(skip)]
    checked: Option<Checked>,
    /// The file's keys exactly as [`Config::parse`] read them (empty for a config built in
    /// code), so SIGHUP compares the file against what is running, not against a second read
    /// that may already see an edit made after start.
    #[serde(skip)]
    source: toml::Table,
}

/// The result of validating a config: what it read from disk on the way.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// The `[tls]` certificate files (absent with TLS off or self-signed).
    pub pem: Option<Arc<PemPair>>,
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

    /// Parses and validates config text (the path in errors is left empty). Old key names are
    /// applied with a logged warning (see [`aliases`]).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let parse_error = |err: toml::de::Error| ConfigError::Parse {
            path: PathBuf::new(),
            message: err.to_string(),
        };
        let mut config: Config = toml::from_str(text).map_err(parse_error)?;
        let raw: toml::Table = toml::from_str(text).map_err(parse_error)?;
        for warning in aliases::apply(&mut config, &raw)? {
            tracing::warn!("config: {warning}");
        }
        config.checked = Some(config.validate()?);
        config.source = raw;
        Ok(config)
    }

    /// The keys this config was parsed from (see the field).
    pub fn source(&self) -> &toml::Table {
        &self.source
    }

    /// Checks what serde cannot: value ranges, clashes between sections, readable files.
    /// Each section checks its own keys; only the checks across sections live here.
    pub fn validate(&self) -> Result<Checked, ConfigError> {
        self.server.validate()?;
        let pem = self.tls.validate()?;
        self.signaling.validate()?;
        rooms::validate(&self.rooms)?;
        self.turn.validate()?;
        self.metrics.validate()?;
        acme::validate(self)?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        listeners::check_port_clashes(self)?;
        Ok(Checked { pem })
    }

    /// The validation [`Config::parse`] did, or a fresh one for a config built in code.
    pub fn checked(&self) -> Result<Checked, ConfigError> {
        match &self.checked {
            Some(checked) => Ok(checked.clone()),
            None => self.validate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

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
    fn a_parsed_config_keeps_the_keys_it_was_read_from() {
        let text = "[signaling]\nmax_frame_bytes = 1024\n";
        let config = Config::parse(text).expect("valid");
        let expected: toml::Table = toml::from_str(text).expect("toml");
        assert_eq!(config.source(), &expected);
        assert!(Config::default().source().is_empty());
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

//! The `[metrics]` section: where the Prometheus listener binds, if anywhere.

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

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

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr().map(|_| ())
    }
}

//! The `[signaling]` section of config.toml: access control and the limits that keep one
//! client from hurting the others.
//!
//! (The signaling work may add keys here, documented in config.toml.)

use serde::Deserialize;

use super::ConfigError;

/// Default longest user name, in characters (NFC), after trimming.
pub const DEFAULT_NAME_MAX_CHARS: usize = 32;

/// Names are shown in lists and titles; beyond this they are not names.
const NAME_MAX_CHARS_CAP: usize = 256;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalingConfig {
    /// Code every login must carry (`access_code` in the login message). Empty: none.
    pub access_code: Option<String>,
    /// Largest WebSocket frame/message accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Sustained messages per second per connection.
    pub messages_per_second: u32,
    /// Burst allowance on top of the sustained rate (an ICE candidate storm).
    pub message_burst: u32,
    /// Messages waiting to be written to one client before it is disconnected as too slow.
    pub outbound_queue: usize,
    pub max_connections_per_ip: usize,
    /// Old name of `server.max_connections` (it always capped the whole web listener); read
    /// by `config::aliases` with a warning, and `None` once applied.
    pub max_connections: Option<usize>,
    pub ping_interval_secs: u64,
    /// Close a connection that has not answered a ping for this long.
    pub pong_timeout_secs: u64,
    pub chat_max_chars: usize,
    /// Longest user name in characters (NFC, after trimming).
    pub name_max_chars: usize,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        SignalingConfig {
            access_code: None,
            max_frame_bytes: 64 * 1024,
            messages_per_second: 20,
            message_burst: 200,
            outbound_queue: 256,
            max_connections_per_ip: 20,
            max_connections: None,
            ping_interval_secs: 20,
            pong_timeout_secs: 60,
            chat_max_chars: 2000,
            name_max_chars: DEFAULT_NAME_MAX_CHARS,
        }
    }
}

impl SignalingConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        // The production example ships a placeholder so the choice is made explicitly: a real
        // code, or "" for an open server.
        if self
            .access_code
            .as_deref()
            .is_some_and(|c| c.contains("replace"))
        {
            return Err(ConfigError::invalid(
                "signaling.access_code",
                "is the example's placeholder: set the code callers must type, or \"\" for an open server",
            ));
        }
        if self.max_frame_bytes < 1024 {
            return Err(ConfigError::invalid(
                "signaling.max_frame_bytes",
                "must be at least 1024",
            ));
        }
        if self.outbound_queue == 0 || self.messages_per_second == 0 {
            return Err(ConfigError::invalid(
                "signaling",
                "outbound_queue and messages_per_second must be at least 1",
            ));
        }
        if !(1..=NAME_MAX_CHARS_CAP).contains(&self.name_max_chars) || self.chat_max_chars == 0 {
            return Err(ConfigError::invalid(
                "signaling",
                "name_max_chars must be 1 to 256 and chat_max_chars at least 1",
            ));
        }
        Ok(())
    }
}

//! The `[[rooms]]` list: rooms with their own access code. Rooms not listed are open (subject
//! to the global `signaling.access_code`).

use std::collections::HashSet;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomConfig {
    pub name: String,
    #[serde(default)]
    pub access_code: Option<String>,
}

/// Names must be non-empty and unique (case-insensitively, as the hub compares them).
pub fn validate(rooms: &[RoomConfig]) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (i, room) in rooms.iter().enumerate() {
        let name = room.name.trim().to_lowercase();
        if name.is_empty() || !seen.insert(name) {
            return Err(ConfigError::invalid(
                format!("rooms[{i}].name"),
                "must be non-empty and unique",
            ));
        }
    }
    Ok(())
}

//! Which signaling logins may still make new TURN allocations.
//!
//! Signaling and TURN share one process, so a login's TURN credentials need not outlive the
//! login: each login gets an opaque random id (never its display name or room) that goes into
//! its REST usernames, and quotas count that id. When the login ends the id is revoked and an
//! Allocate with its credentials is refused at once, even before their expiry time; allocations
//! already made keep working (the guard checks them against the allocation, not this registry).
//! The registry also knows each login's room (signaling's room key, never a display name), which
//! stays on the server: the per-room quota counts it at Allocate time.
//! Plain state: the signaling side grants and revokes through `TurnServer`.

use std::collections::HashMap;

use base64::Engine;

/// Live logins: the caller's key for each login (signaling's connection id) and its login id,
/// and for each live login id its room, if any.
#[derive(Debug, Default)]
pub struct LiveLogins {
    by_key: HashMap<String, String>,
    live: HashMap<String, Option<String>>,
}

impl LiveLogins {
    pub fn new() -> Self {
        Self::default()
    }

    #[cfg(test)]
    /// The login id for `key`, made (random) the first time: a credential refresh for the same
    /// login keeps its id, so its quota carries over.
    pub fn grant(&mut self, key: &str) -> String {
        self.grant_in(key, None)
    }

    /// As [`LiveLogins::grant`], for a login in `room` (a room key). A refresh keeps the room
    /// the login was granted with: one login is in one room for its whole life.
    pub fn grant_in(&mut self, key: &str, room: Option<&str>) -> String {
        if let Some(id) = self.by_key.get(key) {
            return id.clone();
        }
        let id = new_login_id();
        self.live.insert(id.clone(), room.map(str::to_string));
        self.by_key.insert(key.to_string(), id.clone());
        id
    }

    /// The login behind `key` ended: its credentials allow no new allocation from now on.
    pub fn revoke(&mut self, key: &str) {
        if let Some(id) = self.by_key.remove(key) {
            self.live.remove(&id);
        }
    }

    pub fn is_live(&self, login_id: &str) -> bool {
        self.live.contains_key(login_id)
    }

    /// The room of live login `login_id`; none for a login in no room or no longer live.
    pub fn room_of(&self, login_id: &str) -> Option<&str> {
        self.live.get(login_id)?.as_deref()
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// 128 random bits, URL-safe base64 (no ':' so it can follow the expiry in a REST username).
fn new_login_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_granted_login_is_live_until_revoked_and_keeps_its_id_on_refresh() {
        let mut logins = LiveLogins::new();
        let id = logins.grant("conn-1");
        assert_eq!(id.len(), 22);
        assert!(!id.contains(':'));
        assert!(logins.is_live(&id));
        assert_eq!(logins.grant("conn-1"), id, "a refresh keeps the login id");
        logins.revoke("conn-1");
        assert!(!logins.is_live(&id));
        assert!(logins.is_empty());
        let again = logins.grant("conn-1");
        assert_ne!(again, id, "a new login never revives an old id");
        assert!(!logins.is_live(&id));
    }

    #[test]
    fn each_login_gets_its_own_opaque_id() {
        let mut logins = LiveLogins::new();
        let a = logins.grant("1");
        let b = logins.grant("2");
        assert_ne!(a, b);
        logins.revoke("unknown");
        assert_eq!(logins.len(), 2);
    }

    #[test]
    fn a_login_keeps_its_room_until_revoked() {
        let mut logins = LiveLogins::new();
        let id = logins.grant_in("1", Some("lobby"));
        assert_eq!(logins.room_of(&id), Some("lobby"));
        assert_eq!(logins.grant_in("1", Some("other")), id);
        assert_eq!(
            logins.room_of(&id),
            Some("lobby"),
            "a refresh keeps the room"
        );
        let roomless = logins.grant("2");
        assert_eq!(logins.room_of(&roomless), None);
        logins.revoke("1");
        assert_eq!(logins.room_of(&id), None);
    }
}

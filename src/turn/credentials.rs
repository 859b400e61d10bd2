//! TURN credentials: the TURN REST API scheme (coturn's `use-auth-secret`) plus static users.
//!
//! A REST username is `<unix-expiry>:<login-id>` and its password is
//! base64(HMAC-SHA1(secret, username)). The login id is an opaque random id per signaling
//! login (see `logins.rs`), never a display name, so quotas keyed on it count one login; a
//! REST username is accepted only while its login is live and before its expiry. Several
//! secrets are accepted (the first signs) so a secret can be rotated without cutting calls.
//! The long-term credential mechanism then keys MESSAGE-INTEGRITY with MD5(user:realm:password).

use std::collections::HashMap;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::secrets::{SecretSet, Secrets};

/// Why a username/realm pair is refused before any integrity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("realm is not ours")]
    WrongRealm,
    #[error("credentials expired")]
    Expired,
    #[error("unknown user")]
    UnknownUser,
    #[error("the login these credentials were made for has ended")]
    LoggedOut,
}

/// The secrets and users a server accepts, and the realm they are bound to.
pub struct Credentials {
    realm: String,
    /// Swapped by a config reload (see `secrets.rs`).
    pub secrets: SecretSet,
    users: HashMap<String, String>,
}

impl Credentials {
    /// With no configured secret, a random one is made, valid until the process exits.
    pub fn new(realm: String, secrets: &[String], users: &[(String, String)]) -> Self {
        Credentials {
            realm,
            secrets: SecretSet::new(Secrets::from_config(secrets)),
            users: users.iter().cloned().collect(),
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A REST username and password for the login `login_id`, valid until `expiry_unix`.
    pub fn mint(&self, login_id: &str, expiry_unix: u64) -> (String, String) {
        let username = format!("{expiry_unix}:{login_id}");
        let secrets = self.secrets.load();
        let password = secrets
            .keys
            .first()
            .map(|key| rest_password(key, &username))
            .unwrap_or_default();
        (username, password)
    }

    /// Every long-term key that would make a request from `username` valid: one per secret for
    /// a REST username whose login `is_live`, the configured password's for a static user.
    pub fn candidate_keys(
        &self,
        username: &str,
        realm: &str,
        now_unix: u64,
        is_live: impl FnOnce(&str) -> bool,
    ) -> Result<Vec<Vec<u8>>, CredentialError> {
        if realm != self.realm {
            return Err(CredentialError::WrongRealm);
        }
        if let Some(password) = self.users.get(username) {
            return Ok(vec![long_term_key(username, &self.realm, password)]);
        }
        let (expiry, name) = username
            .split_once(':')
            .ok_or(CredentialError::UnknownUser)?;
        let expiry: u64 = expiry.parse().map_err(|_| CredentialError::UnknownUser)?;
        if name.is_empty() {
            return Err(CredentialError::UnknownUser);
        }
        if expiry < now_unix {
            return Err(CredentialError::Expired);
        }
        if !is_live(name) {
            return Err(CredentialError::LoggedOut);
        }
        Ok(self
            .secrets
            .load()
            .keys
            .iter()
            .map(|secret| long_term_key(username, &self.realm, &rest_password(secret, username)))
            .collect())
    }
}

/// base64(HMAC-SHA1(secret, username)), the TURN REST API password.
pub fn rest_password(secret: &[u8], username: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// MD5(username ":" realm ":" password), the long-term credential key (RFC 5389 §15.4).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> Vec<u8> {
    stun::integrity::MessageIntegrity::new_long_term_integrity(
        username.to_string(),
        realm.to_string(),
        password.to_string(),
    )
    .0
}

/// The login a username stands for in logs and quotas: the login id of a REST username, or
/// the static user's name.
pub fn user_of(username: &str) -> &str {
    match username.split_once(':') {
        Some((expiry, name)) if expiry.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => username,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::integrity::MessageIntegrity;
    use stun::message::Message;

    /// Published in pion/turn's and webrtc-rs's test suites for the REST scheme.
    #[test]
    fn rest_password_matches_the_published_vector() {
        assert_eq!(
            rest_password(b"foobar", "1599491771"),
            "Tpz/nKkyvX/vMSLKvL4sbtBt8Vs="
        );
    }

    /// RFC 5769 §2.4: a request signed with the long-term key MD5("マトリックス:example.org:TheMatrIX").
    #[test]
    fn long_term_key_verifies_the_rfc_5769_sample_request() {
        const REQUEST: [u8; 116] = [
            0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42, 0x78, 0xad, 0x34, 0x33, 0xc6, 0xad,
            0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e, 0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3,
            0x83, 0x88, 0xe3, 0x83, 0xaa, 0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9,
            0x00, 0x00, 0x00, 0x15, 0x00, 0x1c, 0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39,
            0x35, 0x34, 0x64, 0x36, 0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54,
            0x76, 0x79, 0x36, 0x34, 0x73, 0x41, 0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d,
            0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67, 0x00, 0x00, 0x08, 0x00, 0x14, 0xf6, 0x70,
            0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02, 0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2,
            0x8c, 0xa8, 0x96, 0x66,
        ];
        let user = "\u{30de}\u{30c8}\u{30ea}\u{30c3}\u{30af}\u{30b9}";
        let mut m = Message::new();
        m.raw = REQUEST.to_vec();
        m.decode().unwrap();
        let good = MessageIntegrity(long_term_key(user, "example.org", "TheMatrIX"));
        assert!(good.check(&mut m).is_ok());
        let bad = MessageIntegrity(long_term_key(user, "example.org", "TheMatrix"));
        assert!(bad.check(&mut m).is_err());
    }

    fn creds() -> Credentials {
        Credentials::new(
            "callbox.test".into(),
            &[
                "first-secret-0123456789".into(),
                "old-secret-0123456789".into(),
            ],
            &[("tool".into(), "toolpass".into())],
        )
    }

    #[test]
    fn minted_credentials_verify_and_rotated_secrets_still_verify() {
        let c = creds();
        let (user, pass) = c.mint("alice", 2_000);
        assert_eq!(user, "2000:alice");
        let keys = c
            .candidate_keys(&user, "callbox.test", 1_000, |_| true)
            .unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0], long_term_key(&user, "callbox.test", &pass));
        let old = rest_password(b"old-secret-0123456789", &user);
        assert_eq!(keys[1], long_term_key(&user, "callbox.test", &old));
    }

    #[test]
    fn expired_logged_out_unknown_and_wrong_realm_are_refused() {
        let c = creds();
        let keys = |user: &str, realm: &str, live: bool| {
            c.candidate_keys(user, realm, 1_000, |login| live && login == "alice")
        };
        assert_eq!(
            keys("999:alice", "callbox.test", true),
            Err(CredentialError::Expired)
        );
        assert_eq!(
            keys("2000:alice", "callbox.test", false),
            Err(CredentialError::LoggedOut)
        );
        assert_eq!(
            keys("2000:mallory", "callbox.test", true),
            Err(CredentialError::LoggedOut)
        );
        assert_eq!(
            keys("2000:alice", "evil.test", true),
            Err(CredentialError::WrongRealm)
        );
        assert_eq!(
            keys("nobody", "callbox.test", true),
            Err(CredentialError::UnknownUser)
        );
        assert_eq!(
            keys("x:alice", "callbox.test", true),
            Err(CredentialError::UnknownUser)
        );
        // Static users have no login to end.
        assert_eq!(keys("tool", "callbox.test", false).unwrap().len(), 1);
    }

    #[test]
    fn a_random_secret_is_made_when_none_is_configured() {
        let a = Credentials::new("r".into(), &[], &[]);
        let b = Credentials::new("r".into(), &[], &[]);
        assert_ne!(a.mint("x", 5).1, b.mint("x", 5).1);
    }

    #[test]
    fn user_of_strips_the_expiry() {
        assert_eq!(user_of("1700000000:alice"), "alice");
        assert_eq!(user_of("tool"), "tool");
        assert_eq!(user_of("1700000000:a:b"), "a:b");
    }
}

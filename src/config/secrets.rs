//! Is a configured TURN secret random enough? Anyone who knows it can mint credentials (for a
//! live login's id), so the example config's placeholder, or a word someone typed, must not
//! start a server. The estimate is deliberately simple: bits per character from the alphabet
//! the secret uses (hex 4, base64 6, otherwise the character classes present) times its length,
//! at least 128 bits, plus a floor on distinct characters and a refusal of placeholder words.

use std::sync::{Arc, RwLock};

use base64::Engine;
use rand::RngCore;

/// The TURN REST secrets in force, swappable while the server runs (SIGHUP): each check loads
/// the current set once, so a request is verified against one whole set, old or new, never
/// half of each. Allocations already made keep their own key and are not affected.
#[derive(Debug)]
pub struct SecretSet {
    current: RwLock<Arc<Secrets>>,
}

/// One set: never empty, the first signs new credentials.
#[derive(Debug, PartialEq, Eq)]
pub struct Secrets {
    pub keys: Vec<Vec<u8>>,
    /// Made up at start because none was configured (valid until the process exits).
    pub generated: bool,
}

impl Secrets {
    /// The configured secrets, or one random secret when there are none.
    pub fn from_config(secrets: &[String]) -> Secrets {
        let keys: Vec<Vec<u8>> = secrets.iter().map(|s| s.as_bytes().to_vec()).collect();
        if !keys.is_empty() {
            return Secrets {
                keys,
                generated: false,
            };
        }
        let mut random = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut random);
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(random);
        Secrets {
            keys: vec![encoded.into_bytes()],
            generated: true,
        }
    }
}

impl SecretSet {
    pub fn new(secrets: Secrets) -> SecretSet {
        SecretSet {
            current: RwLock::new(Arc::new(secrets)),
        }
    }

    /// The set in force now.
    pub fn load(&self) -> Arc<Secrets> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts the configured `secrets` in force; true if that changed anything. With none
    /// configured, a generated secret already in force stays (a reload must not cut every
    /// page's credentials for nothing).
    pub fn replace(&self, secrets: &[String]) -> bool {
        let old = self.load();
        if secrets.is_empty() && old.generated {
            return false;
        }
        let new = Secrets::from_config(secrets);
        if !secrets.is_empty() && new == *old {
            return false;
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        *current = Arc::new(new);
        true
    }
}

/// Why a secret is refused, or `None` when it looks random enough.
pub fn weakness(secret: &str) -> Option<&'static str> {
    let lower = secret.to_ascii_lowercase();
    if ["replace", "change-me", "changeme", "example"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return Some(
            "is the example's placeholder: replace it with the output of `openssl rand -hex 32`",
        );
    }
    let distinct = {
        let mut chars: Vec<char> = secret.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        chars.len()
    };
    if distinct < 8 {
        return Some("has too few different characters to be random (use `openssl rand -hex 32`)");
    }
    if estimated_bits(secret) < 128.0 {
        return Some(
            "is too short to hold 128 random bits (at least 32 hex or 22 base64 characters; \
             use `openssl rand -hex 32`)",
        );
    }
    None
}

/// Length times the bits one character of the secret's alphabet can carry.
fn estimated_bits(secret: &str) -> f64 {
    let len = secret.chars().count() as f64;
    let hex = secret.chars().all(|c| c.is_ascii_hexdigit());
    let base64 = secret
        .trim_end_matches('=')
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+/-_".contains(c));
    if hex {
        return len * 4.0;
    }
    if base64 {
        return len * 6.0;
    }
    let classes = [
        (secret.chars().any(|c| c.is_ascii_lowercase()), 26.0),
        (secret.chars().any(|c| c.is_ascii_uppercase()), 26.0),
        (secret.chars().any(|c| c.is_ascii_digit()), 10.0),
        (secret.chars().any(|c| !c.is_ascii_alphanumeric()), 33.0),
    ];
    let alphabet: f64 = classes.iter().filter(|(on, _)| *on).map(|(_, n)| n).sum();
    len * alphabet.max(2.0).log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_set_is_what_the_next_load_sees() {
        let set = SecretSet::new(Secrets::from_config(&["old".into()]));
        let before = set.load();
        assert!(set.replace(&["new".into(), "old".into()]));
        assert_eq!(set.load().keys, vec![b"new".to_vec(), b"old".to_vec()]);
        assert_eq!(
            before.keys,
            vec![b"old".to_vec()],
            "a loaded set stays whole"
        );
        assert!(!set.replace(&["new".into(), "old".into()]), "no change");
        let generated = SecretSet::new(Secrets::from_config(&[]));
        let random = generated.load();
        assert!(!generated.replace(&[]), "the generated secret stays");
        assert_eq!(generated.load(), random);
    }

    #[test]
    fn random_hex_and_base64_secrets_pass() {
        // `openssl rand -hex 32`, `openssl rand -hex 16`, `openssl rand -base64 16`.
        assert_eq!(
            weakness("9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"),
            None
        );
        assert_eq!(weakness("3f9a0c7e12b45d68e9f0a1b2c3d4e5f6"), None);
        assert_eq!(weakness("q2V9kX3mZp8rT1wY5bN7cA=="), None);
    }

    #[test]
    fn placeholders_short_and_repetitive_secrets_are_refused() {
        for bad in [
            "replace-with-output-of: openssl rand -hex 32",
            "please-change-me-0123456789abcdef",
            "3f9a0c7e12b45d68",                                 // 64 bits of hex
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", // one character
            "abababababababababababababababab",                 // two characters
            "hunter2hunter2",
        ] {
            assert!(weakness(bad).is_some(), "{bad}");
        }
    }
}

//! Is a configured TURN secret random enough? Anyone who knows it can mint credentials (for a
//! live login's id), so the example config's placeholder, or a word someone typed, must not
//! start a server. The estimate is deliberately simple: bits per character from the alphabet
//! the secret uses (hex 4, base64 6, otherwise the character classes present) times its length,
//! at least 128 bits, plus a floor on distinct characters and a refusal of placeholder words.

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
    use super::weakness;

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

//! The rules for user and room names, in one place so the hub, the socket edge and the docs
//! agree. Names are shown to other people, so they are trimmed, bounded and free of control
//! characters; they are compared case-insensitively so "Ann" and "ann" cannot both exist.

/// Longest user name, in characters, after trimming.
pub const NAME_MAX_CHARS: usize = 32;
/// Longest room name, in characters, after trimming.
pub const ROOM_MAX_CHARS: usize = 64;
/// The room of the page at `/` (and of `/ws` without `?room=`).
pub const LOBBY: &str = "lobby";

/// A valid user name (trimmed), or None.
pub fn valid_name(raw: &str) -> Option<String> {
    bounded_text(raw, NAME_MAX_CHARS)
}

/// A valid room name (trimmed; empty means the lobby), or None.
pub fn valid_room(raw: Option<&str>) -> Option<String> {
    match raw.map(str::trim) {
        None | Some("") => Some(LOBBY.to_string()),
        Some(room) => bounded_text(room, ROOM_MAX_CHARS),
    }
}

/// The key two names that may not coexist share.
pub fn key(name: &str) -> String {
    name.to_lowercase()
}

/// `base` with a number appended (MDN's demo does this for a taken name), shortened so the
/// result still fits the length limit.
pub fn variant(base: &str, n: u32) -> String {
    let suffix = n.to_string();
    let keep = NAME_MAX_CHARS.saturating_sub(suffix.len());
    let mut name: String = base.chars().take(keep).collect();
    name.push_str(&suffix);
    name
}

/// Compares an access code without stopping at the first differing byte.
pub fn code_matches(expected: &str, given: Option<&str>) -> bool {
    let Some(given) = given else {
        return false;
    };
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

fn bounded_text(raw: &str, max_chars: usize) -> Option<String> {
    let text = raw.trim();
    let len = text.chars().count();
    if len == 0 || len > max_chars || text.chars().any(char::is_control) {
        return None;
    }
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(valid_name("  Ann  ").as_deref(), Some("Ann"));
        assert_eq!(valid_name(""), None);
        assert_eq!(valid_name("   "), None);
        assert!(
            valid_name(&"é".repeat(32)).is_some(),
            "32 two-byte characters fit"
        );
        assert_eq!(valid_name(&"a".repeat(33)), None);
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(valid_name("an\nn"), None);
        assert_eq!(valid_name("a\u{7}"), None);
        assert_eq!(valid_name("a\u{200b}b").as_deref(), Some("a\u{200b}b"));
    }

    #[test]
    fn rooms_default_to_the_lobby() {
        assert_eq!(valid_room(None).as_deref(), Some(LOBBY));
        assert_eq!(valid_room(Some(" ")).as_deref(), Some(LOBBY));
        assert_eq!(valid_room(Some("Family")).as_deref(), Some("Family"));
        assert_eq!(valid_room(Some(&"r".repeat(65))), None);
    }

    #[test]
    fn variants_fit_the_name_limit() {
        assert_eq!(variant("ann", 2), "ann2");
        let long = "x".repeat(32);
        assert_eq!(variant(&long, 12).chars().count(), 32);
        assert!(variant(&long, 12).ends_with("12"));
    }

    #[test]
    fn access_codes_must_match_exactly() {
        assert!(code_matches("s3cret", Some("s3cret")));
        assert!(!code_matches("s3cret", Some("s3cre")));
        assert!(!code_matches("s3cret", Some("s3cret!")));
        assert!(!code_matches("s3cret", None));
    }
}

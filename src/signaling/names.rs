//! The rules for user and room names, in one place so the hub, the socket edge and the docs
//! agree. Names are shown to other people, so they are trimmed, bounded and free of characters
//! that do not show as themselves: controls (Unicode category Cc), invisible formatting such as
//! zero-width spaces and bidi overrides (Cf), and line/paragraph separators (Zl, Zp), which
//! would let "alice\u{200b}" pass for "alice" or reorder a name on screen. Names are stored in
//! NFC and compared in NFC and case-insensitively, so "Ann", "ann" and a decomposed spelling
//! of the same letters cannot both exist. Categories come from `unicode-general-category`
//! (Unicode 16.0); normalization from `unicode-normalization`.

use unicode_general_category::{get_general_category, GeneralCategory};
use unicode_normalization::UnicodeNormalization;

/// Default longest user name, in characters (NFC), after trimming
/// (`signaling.name_max_chars`).
#[cfg(test)]
pub const NAME_MAX_CHARS: usize = crate::config::signaling::DEFAULT_NAME_MAX_CHARS;
/// Longest room name, in characters (NFC), after trimming.
pub const ROOM_MAX_CHARS: usize = 64;
/// The room of the page at `/` (and of `/ws` without `?room=`).
pub const LOBBY: &str = "lobby";

/// A valid user name (trimmed, NFC) of at most `max_chars` characters, or None.
pub fn valid_name(raw: &str, max_chars: usize) -> Option<String> {
    bounded_text(raw, max_chars)
}

/// A valid room name (trimmed, NFC; empty means the lobby), or None.
pub fn valid_room(raw: Option<&str>) -> Option<String> {
    match raw.map(str::trim) {
        None | Some("") => Some(LOBBY.to_string()),
        Some(room) => bounded_text(room, ROOM_MAX_CHARS),
    }
}

/// The key two names that may not coexist share: NFC, lower case, NFC again (lower-casing can
/// leave a string that is no longer composed). Every relayed message looks its target up by
/// key, so ASCII (already NFC, lower-cased byte by byte) skips the three passes and two
/// allocations of the general case.
pub fn key(name: &str) -> String {
    if name.is_ascii() {
        return name.to_ascii_lowercase();
    }
    name.nfc()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect()
}

/// [`key`], borrowed when `name` is its own key (ASCII without capitals, as most names are and
/// as the web client sends targets): the relay looks every message's target up this way.
pub fn key_cow(name: &str) -> std::borrow::Cow<'_, str> {
    if name
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        return std::borrow::Cow::Borrowed(name);
    }
    std::borrow::Cow::Owned(key(name))
}

/// `base` with a number appended (MDN's demo does this for a taken name), shortened so the
/// result still fits `max_chars`.
pub fn variant(base: &str, n: u32, max_chars: usize) -> String {
    let suffix = n.to_string();
    let keep = max_chars.saturating_sub(suffix.len());
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

/// Characters a name may not contain: they are invisible or change how the text around them
/// is shown.
fn hidden(c: char) -> bool {
    matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

fn bounded_text(raw: &str, max_chars: usize) -> Option<String> {
    let raw = raw.trim();
    // ASCII is its own NFC.
    let text: String = if raw.is_ascii() {
        raw.to_string()
    } else {
        raw.nfc().collect()
    };
    let len = text.chars().count();
    if len == 0 || len > max_chars || text.chars().any(hidden) {
        return None;
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = NAME_MAX_CHARS;

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(valid_name("  Ann  ", MAX).as_deref(), Some("Ann"));
        assert_eq!(valid_name("", MAX), None);
        assert_eq!(valid_name("   ", MAX), None);
        assert!(
            valid_name(&"é".repeat(32), MAX).is_some(),
            "32 two-byte characters fit"
        );
        assert_eq!(valid_name(&"a".repeat(33), MAX), None);
        assert_eq!(valid_name("abcdef", 5), None, "the limit is configurable");
        assert!(valid_name("abcde", 5).is_some());
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(valid_name("an\nn", MAX), None);
        assert_eq!(valid_name("a\u{7}", MAX), None);
        assert_eq!(valid_name("a\u{85}b", MAX), None, "NEL is Cc");
    }

    #[test]
    fn invisible_formatting_characters_are_refused() {
        for c in [
            '\u{200b}',  // zero-width space
            '\u{200c}',  // zero-width non-joiner
            '\u{200d}',  // zero-width joiner
            '\u{200e}',  // left-to-right mark
            '\u{202e}',  // right-to-left override
            '\u{2066}',  // left-to-right isolate
            '\u{feff}',  // byte order mark / zero-width no-break space
            '\u{00ad}',  // soft hyphen
            '\u{2028}',  // line separator (Zl)
            '\u{2029}',  // paragraph separator (Zp)
            '\u{e0041}', // tag latin capital A
        ] {
            assert_eq!(
                valid_name(&format!("ali{c}ce"), MAX),
                None,
                "U+{:04X}",
                c as u32
            );
        }
        // Letters and marks of other scripts are fine.
        assert!(valid_name("Zoë", MAX).is_some());
        assert!(valid_name("مريم", MAX).is_some());
        assert!(valid_name("नमस्ते", MAX).is_some(), "combining marks (Mn/Mc)");
    }

    #[test]
    fn names_are_stored_and_compared_in_nfc() {
        let composed = "Ren\u{e9}";
        let decomposed = "Rene\u{301}";
        assert_eq!(valid_name(decomposed, MAX).as_deref(), Some(composed));
        assert_eq!(key(decomposed), key(composed));
        assert_eq!(key("RENÉ"), key(decomposed));
        // The limit counts the stored (NFC) form: 32 decomposed "é" are 32 characters.
        assert!(valid_name(&"e\u{301}".repeat(32), MAX).is_some());
    }

    #[test]
    fn ascii_keys_agree_with_the_general_path() {
        for name in ["Ann", "ann", "BOB-42", "x y", "~!@#"] {
            let general: String = name
                .nfc()
                .collect::<String>()
                .to_lowercase()
                .nfc()
                .collect();
            assert_eq!(key(name), general, "{name}");
        }
        assert_eq!(key("ANN"), key("ann"));
        assert_ne!(key("Zoë"), key("zoe"));
    }

    #[test]
    fn rooms_default_to_the_lobby() {
        assert_eq!(valid_room(None).as_deref(), Some(LOBBY));
        assert_eq!(valid_room(Some(" ")).as_deref(), Some(LOBBY));
        assert_eq!(valid_room(Some("Family")).as_deref(), Some("Family"));
        assert_eq!(valid_room(Some(&"r".repeat(65))), None);
        assert_eq!(valid_room(Some("fam\u{200b}ily")), None);
    }

    #[test]
    fn variants_fit_the_name_limit() {
        assert_eq!(variant("ann", 2, MAX), "ann2");
        let long = "x".repeat(32);
        assert_eq!(variant(&long, 12, MAX).chars().count(), 32);
        assert!(variant(&long, 12, MAX).ends_with("12"));
        assert_eq!(variant("abcdef", 3, 4), "abc3");
    }

    #[test]
    fn access_codes_must_match_exactly() {
        assert!(code_matches("s3cret", Some("s3cret")));
        assert!(!code_matches("s3cret", Some("s3cre")));
        assert!(!code_matches("s3cret", Some("s3cret!")));
        assert!(!code_matches("s3cret", None));
    }
}

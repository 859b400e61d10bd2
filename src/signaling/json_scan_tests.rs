//! The scanner against serde_json: the same texts refused, the same members found, the same
//! escaping.

use serde_json::Value;

use super::*;

fn same_verdict_as_value(text: &str) {
    let value = serde_json::from_str::<Value>(text).is_ok();
    assert_eq!(validate(text), value, "{text:?}");
}

#[test]
fn refuses_exactly_what_value_refuses() {
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let in_object = |depth: usize| format!(r#"{{"type":"offer","offer":{}}}"#, nested(depth));
    let texts = [
        String::from(r#"{"type":"offer"}"#),
        " \t\r\n{ \"a\" : [ 1 , 2.5e3 , -0 , true , null , \"x\" ] } \n".into(),
        r#"{"a":"\ud83d\ude00 \u00e9 \n \" \\ \/"}"#.into(),
        // Lone surrogates, bad escapes, raw control characters.
        r#"{"a":"\ud800"}"#.into(),
        r#"{"a":"\udc00x"}"#.into(),
        r#"{"\ud800":1}"#.into(),
        r#"{"a":"\x"}"#.into(),
        r#"{"a":"\u12"}"#.into(),
        "{\"a\":\"tab\there\"}".into(),
        "{\"a\u{1}\":1}".into(),
        // Numbers out of range or malformed.
        r#"{"a":1e400}"#.into(),
        r#"{"a":-1e400}"#.into(),
        r#"{"a":1e-400}"#.into(),
        r#"{"a":18446744073709551616}"#.into(),
        r#"{"a":01}"#.into(),
        r#"{"a":1.}"#.into(),
        r#"{"a":.5}"#.into(),
        r#"{"a":+1}"#.into(),
        r#"{"a":NaN}"#.into(),
        // Structure.
        r#"{"a":1,}"#.into(),
        r#"{"a":1}}"#.into(),
        r#"{"a":1} x"#.into(),
        r#"{"a" 1}"#.into(),
        r#"{a:1}"#.into(),
        r#"{"a":[1,]}"#.into(),
        r#"{"a":1"#.into(),
        "".into(),
        "\u{feff}{}".into(),
        r#"{"a":1,"a":2}"#.into(),
        // The nesting limit, counted as serde_json counts it.
        nested(126),
        nested(127),
        nested(128),
        in_object(125),
        in_object(126),
        in_object(127),
    ];
    for text in &texts {
        same_verdict_as_value(text);
    }
}

#[test]
fn the_raw_value_marker_is_an_ordinary_key() {
    // `Value` expands it (serde_json's raw_value feature, on through axum); browsers do not.
    let text = r#"{"$serde_json::private::RawValue":"{\"type\":\"offer\"}"}"#;
    assert!(validate(text));
    let keys: Vec<_> = members(text).expect("object").collect();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        keys[0].key().as_deref(),
        Some("$serde_json::private::RawValue")
    );
}

#[test]
fn members_are_found_across_spacing_strings_and_nesting() {
    let text = " { \"a\" : 1 ,\"b\":\"x}\\\"]\" , \"c\" :{\"d\":[1,{\"e\":\"]}\"}]},\"f\":[] ,\"g\":null,\"h\":-2.5e-3 } ";
    assert!(validate(text));
    let found: Vec<(String, &str)> = members(text)
        .expect("object")
        .map(|m| (m.key().expect("key").into_owned(), m.value))
        .collect();
    assert_eq!(
        found,
        [
            ("a".to_string(), "1"),
            ("b".to_string(), "\"x}\\\"]\""),
            ("c".to_string(), "{\"d\":[1,{\"e\":\"]}\"}]}"),
            ("f".to_string(), "[]"),
            ("g".to_string(), "null"),
            ("h".to_string(), "-2.5e-3"),
        ]
    );
    assert_eq!(members("{ }").expect("object").count(), 0);
    assert!(members("[1]").is_none());
    assert!(members(" \"x\"").is_none());
}

#[test]
fn keys_and_strings_are_decoded_and_compared_after_decoding() {
    let text = r#"{"fr\u006fm":"\u0061nn","from":"b\"o"}"#;
    let found: Vec<_> = members(text).expect("object").collect();
    assert!(found[0].key_is("from") && found[1].key_is("from"));
    assert!(found[0].same_key(&found[1]));
    assert_eq!(found[0].as_str().as_deref(), Some("ann"));
    assert_eq!(found[1].as_str().as_deref(), Some("b\"o"));
    assert_eq!(last(&found, "from").map(|m| m.value), Some(r#""b\"o""#));
    let number = members(r#"{"a":5}"#).expect("object").next().expect("a");
    assert_eq!(number.as_str(), None);
}

#[test]
fn many_members_spill_to_the_heap_in_order() {
    let text = format!(
        "{{{}}}",
        (0..40)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let all = collect(&text).expect("object");
    let values: Vec<&str> = all.as_slice().iter().map(|m| m.value).collect();
    let expected: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    assert_eq!(values, expected);
}

#[test]
fn string_literals_are_escaped_as_serde_json_escapes_them() {
    let mut every_ascii: String = (0u8..0x80).map(char::from).collect();
    every_ascii.push_str("é 😀 \u{2028} \u{7f}");
    for s in [every_ascii.as_str(), "plain", "", "a\"b\\c", "\u{0}\u{1f}"] {
        let mut out = String::new();
        push_str_literal(&mut out, s);
        assert_eq!(out, serde_json::to_string(s).expect("json"), "{s:?}");
    }
}

#[test]
fn quotes_and_escapes_are_found_at_every_offset() {
    for len in 0..40 {
        for (at, mark) in (0..len).flat_map(|at| [(at, b'"'), (at, b'\\')]) {
            let mut bytes = vec![b'a'; len];
            bytes[at] = mark;
            assert_eq!(quote_or_escape(&bytes), Some(at), "{len} {at}");
        }
        assert_eq!(quote_or_escape(&vec![0xffu8; len]), None);
    }
}

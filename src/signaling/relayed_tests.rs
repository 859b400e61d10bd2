//! The spliced frames against the relay they replace: the same object reaches the target, the
//! server's `name`/`from`/`target` appear once and are the server's, however the sender spelt
//! or repeated them.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{json, Map, Value};

use crate::signaling::protocol::{parse, CallKind, Inbound, Routed, TutorialKind};

/// The relay before frames were spliced (a `Map`, the server's fields inserted), kept as the
/// reference for what a target receives.
fn reference(text: &str, sender: &str, partner: &str) -> Option<Value> {
    let Value::Object(mut body) = serde_json::from_str(text).ok()? else {
        return None;
    };
    let kind = body.get("type")?.as_str()?.to_string();
    if TutorialKind::parse(&kind).is_some() {
        let mut out = Map::new();
        out.insert("type".into(), kind.clone().into());
        if let Some(payload) = body.remove(&kind) {
            out.insert(kind, payload);
        }
        out.insert("name".into(), sender.into());
        out.insert("from".into(), sender.into());
        return Some(Value::Object(out));
    }
    CallKind::parse(&kind)?;
    if !matches!(body.get("target"), Some(Value::String(_))) {
        body.insert("target".into(), partner.into());
    }
    body.insert("name".into(), sender.into());
    body.insert("from".into(), sender.into());
    Some(Value::Object(body))
}

/// The frame the target receives now: `partner` stands for the call partner a target-less
/// hang-up goes to.
fn spliced(text: &str, sender: &str, partner: &str) -> Option<String> {
    let frame = match parse(text).ok()? {
        Inbound::Routed(Routed::Call { target, body, .. }) => {
            body.finish(sender, target.is_none().then_some(partner))
        }
        Inbound::Routed(Routed::Tutorial { payload, .. }) => payload.finish(sender, None),
        _ => return None,
    };
    Some(frame.as_str().to_string())
}

/// The top-level keys of a JSON object, duplicates included, in order.
fn keys(text: &str) -> Vec<String> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Keys).expect("an object")
}

fn assert_like_reference(text: &str, sender: &str) {
    let partner = "partner";
    let old = reference(text, sender, partner).expect("the reference relays it");
    let new = spliced(text, sender, partner).expect("relayed");
    let value: Value = serde_json::from_str(&new).expect("the spliced frame is JSON");
    assert_eq!(value, old, "{text} -> {new}");
    let mut seen = keys(&new);
    let all = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), all, "no key twice in {new}");
    assert_eq!(value["from"], json!(sender), "{new}");
}

const FRAMES: &[&str] = &[
    r#"{"type":"video-offer","target":"bob","name":"ann","sdp":{"type":"offer","sdp":"v=0\r\n"}}"#,
    r#"{"type":"new-ice-candidate","target":"bob","candidate":{"candidate":"candidate:1 1 udp 2 192.0.2.1 5 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
    r#"{"type":"call-request","target":"bob","from":"server"}"#,
    r#"{"from":"mallory","type":"call-accept","name":"mallory","target":"bob","from":"mallory"}"#,
    r#"{"type":"call-media","target":"bob","fr\u006fm":"mallory","n\u0061me":"x","path":"relay"}"#,
    r#"{"type":"call-decline","target":"bob","reason":"busy","reason":"declined","reason":"timeout"}"#,
    r#"{"type":"video-offer","type":"call-cancel","target":"alice","target":"bob"}"#,
    r#"{"type":"hang-up","name":"ann","target":null}"#,
    r#"{"type":"hang-up","target":"bob","target":5,"from":"x"}"#,
    r#"{"type":"hang-up"}"#,
    r#"{"type":"hang-up","t\u0061rget":{"a":1}}"#,
    " {\n \"type\" : \"video-answer\" ,\t\"target\" : \"bob\" , \"sdp\" : { \"b\" : 2 , \"a\" : [ 1 , 2 ] } } ",
    r#"{"type":"call-media","target":"b\u00f6b","audio":true,"video":false,"x":1e2,"y":-0.0,"z":"\u00e9\ud83d\ude00"}"#,
    r#"{"type":"call-request","target":"bob","nested":{"from":"mallory","name":"x","nested":{"from":1}}}"#,
    r#"{"type":"candidate","name":"bob","candidate":{"candidate":"c","sdpMLineIndex":0},"from":"mallory"}"#,
    r#"{"type":"offer","name":"bob","offer":{"sdp":"o"},"offer":{"sdp":"later"},"name":"bob"}"#,
    r#"{"type":"answer","target":"bob","answer":null,"extra":"dropped","fr\u006fm":"x"}"#,
    r#"{"type":"leave","name":"bob","leave":[1,2]}"#,
    r#"{"type":"leave"}"#,
];

#[test]
fn the_target_receives_what_the_map_relay_sent() {
    for sender in ["ann", "a\"b\\c", "Zoë 😀", "</script>", "tab\tname"] {
        for text in FRAMES {
            assert_like_reference(text, sender);
        }
    }
}

#[test]
fn a_sender_written_from_never_reaches_the_target() {
    for text in [
        r#"{"type":"call-request","target":"bob","from":"mallory"}"#,
        r#"{"from":"mallory","type":"call-request","target":"bob"}"#,
        r#"{"type":"call-request","target":"bob","fr\u006fm":"mallory"}"#,
        r#"{"type":"call-request","target":"bob","\u0066\u0072\u006f\u006d":"mallory","from":"m"}"#,
        r#"{"type":"candidate","name":"bob","from":"mallory","candidate":{}}"#,
        r#"{"type":"leave","name":"bob","from":"mallory"}"#,
    ] {
        let frame = spliced(text, "ann", "partner").expect("relayed");
        assert!(!frame.contains("mallory"), "{frame}");
        assert_eq!(keys(&frame).iter().filter(|k| *k == "from").count(), 1);
        let value: Value = serde_json::from_str(&frame).expect("json");
        assert_eq!(
            (&value["from"], &value["name"]),
            (&json!("ann"), &json!("ann"))
        );
    }
}

#[test]
fn sender_names_are_escaped_in_the_spliced_fields() {
    for sender in [
        "a\"b",
        "back\\slash",
        "\"},\"from\":\"mallory",
        "é😀\u{2028}",
        "\u{1}",
    ] {
        let frame =
            spliced(r#"{"type":"call-request","target":"bob"}"#, sender, "p").expect("relayed");
        let value: Value = serde_json::from_str(&frame).expect("json");
        assert_eq!(value["from"], json!(sender), "{frame}");
        assert_eq!(value["name"], json!(sender), "{frame}");
        assert_eq!(keys(&frame).len(), 4, "{frame}");
    }
}

#[test]
fn a_target_less_hang_up_gets_the_partner_as_target_once() {
    for text in [
        r#"{"type":"hang-up","target":null}"#,
        r#"{"type":"hang-up","target":"bob","target":false}"#,
        r#"{"type":"hang-up"}"#,
    ] {
        let frame = spliced(text, "ann", "bob").expect("relayed");
        assert_eq!(keys(&frame).iter().filter(|k| *k == "target").count(), 1);
        let value: Value = serde_json::from_str(&frame).expect("json");
        assert_eq!(value["target"], json!("bob"), "{frame}");
    }
}

#[test]
fn the_tutorial_shape_keeps_only_the_payload() {
    let frame = spliced(
        r#"{"type":"candidate","name":"bob","candidate":{"candidate":"c"},"type":"candidate","x":1}"#,
        "ann",
        "p",
    )
    .expect("relayed");
    assert_eq!(
        frame,
        r#"{"type":"candidate","candidate":{"candidate":"c"},"name":"ann","from":"ann"}"#
    );
}

#[test]
fn call_path_and_cluster_forms_are_read_from_the_text() {
    let Ok(Inbound::Routed(Routed::Call { body, .. })) =
        parse(r#"{"type":"call-media","target":"bob","path":"direct","audio":true}"#)
    else {
        panic!("call-media")
    };
    assert_eq!(body.path(), Some("direct"));
    let map = body.to_map();
    assert_eq!(map["audio"], json!(true));
    assert!(map.get("from").is_none() && map.get("name").is_none());
    let again = super::Relayed::call_from_map(&map, true).expect("from a map");
    assert_eq!(again, body);
    let Ok(Inbound::Routed(Routed::Call { body, .. })) =
        parse(r#"{"type":"call-media","target":"bob","path":"<script>"}"#)
    else {
        panic!("call-media")
    };
    assert_eq!(body.path(), None, "only the two known paths are kept");
}

#[test]
fn many_members_with_duplicates_are_relayed_once_each_in_linear_time() {
    // ~64 KiB of members: pairwise comparison would be 10^8 key comparisons.
    let mut text = String::from(r#"{"type":"call-request","target":"bob","from":"mallory""#);
    for i in 0..10_000 {
        text.push_str(&format!(r#","k{}":{i}"#, i % 5_000));
    }
    text.push_str(r#","fr\u006fm":"mallory"}"#);
    assert_like_reference(&text, "ann");
    let frame = spliced(&text, "ann", "p").expect("relayed");
    assert_eq!(keys(&frame).len(), 5_000 + 4);
}

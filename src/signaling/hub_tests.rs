//! The routing rules, driven without sockets: each test feeds parsed frames to a [`Hub`] and
//! checks the deliveries it asks for, as JSON, as a client would receive them.

use serde_json::{json, Value};

use super::*;
use crate::signaling::protocol::{parse, Inbound};

pub(super) struct Fixture {
    pub(super) hub: Hub,
    next: u64,
    now_ms: u64,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        Fixture::with(HubConfig {
            chat_max_chars: 2000,
            ..HubConfig::default()
        })
    }

    pub(super) fn with(config: HubConfig) -> Fixture {
        Fixture {
            hub: Hub::new(config),
            next: 1,
            now_ms: 1_700_000_000_000,
        }
    }

    /// One presence interval later: the batched presence frames.
    pub(super) fn flush(&mut self) -> Vec<Delivery> {
        self.now_ms += crate::signaling::presence::PRESENCE_INTERVAL_MS;
        self.hub.tick(self.now_ms)
    }

    pub(super) fn connect(&mut self, room: &str) -> ConnId {
        let conn = ConnId(self.next);
        self.next += 1;
        let out = self.hub.connect(conn, room);
        assert_eq!(
            frames_to(&out, conn),
            vec![json!({"type":"id","id":conn.0})]
        );
        conn
    }

    /// Sends one client frame and returns every delivery it caused.
    pub(super) fn send(&mut self, conn: ConnId, frame: Value) -> Vec<Delivery> {
        match parse(&frame.to_string()) {
            Ok(Inbound::Login(req)) => self.hub.login(conn, req).0,
            Ok(Inbound::Routed(msg)) => self.hub.route(conn, msg, 1_700_000_000_000),
            Err(err) => panic!("fixture frames must parse: {err}"),
        }
    }

    /// Connects and logs in with the tutorial dialect; returns (conn, token).
    pub(super) fn login(&mut self, room: &str, name: &str) -> (ConnId, String) {
        let conn = self.connect(room);
        let out = self.send(conn, json!({"type":"login","name":name}));
        let reply = &frames_to(&out, conn)[0];
        assert_eq!(reply["success"], json!(true), "{reply}");
        (conn, reply["token"].as_str().unwrap().to_string())
    }

    pub(super) fn login_mdn(&mut self, room: &str, name: &str) -> ConnId {
        let conn = self.connect(room);
        let out = self.send(conn, json!({"type":"username","name":name,"id":conn.0}));
        assert!(frames_to(&out, conn)
            .iter()
            .any(|f| f["type"] == "login" && f["success"] == true));
        conn
    }
}

/// JSON frames sent to one connection, in order (closes shown as `{"close": code}`).
pub(super) fn frames_to(out: &[Delivery], conn: ConnId) -> Vec<Value> {
    out.iter()
        .filter(|d| d.to == conn)
        .map(|d| match &d.out {
            Outbound::Msg(msg) => msg.to_json(),
            Outbound::Frame(text) => serde_json::from_str(text.as_str()).unwrap_or_default(),
            Outbound::Text(text) => serde_json::from_str(text).unwrap_or_default(),
            Outbound::Close { code, .. } => json!({"close": code}),
        })
        .collect()
}

pub(super) fn login_reason(out: &[Delivery], conn: ConnId) -> Value {
    let frames = frames_to(out, conn);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["success"], json!(false));
    frames[0]["reason"].clone()
}

#[test]
fn login_replies_then_tells_the_room() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let bob = f.connect("lobby");
    let out = f.send(bob, json!({"type":"login","name":"  bob "}));
    let to_bob = frames_to(&out, bob);
    assert_eq!(to_bob[0]["name"], json!("bob"), "name is trimmed");
    assert!(to_bob[0]["token"].as_str().unwrap().len() >= 16);
    assert_eq!(
        to_bob[1]["type"],
        json!("userlist"),
        "the list once, at login"
    );
    assert!(
        frames_to(&out, ann).is_empty(),
        "the room hears in the next batch"
    );
    let out = f.flush();
    assert_eq!(
        frames_to(&out, ann),
        vec![json!({"type":"userlist","users":["ann","bob"]})]
    );
    assert_eq!(
        frames_to(&out, bob),
        vec![json!({"type":"userlist","users":["ann","bob"]})]
    );
}

#[test]
fn a_delta_client_gets_the_list_at_login_then_batched_deltas() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    f.flush();
    let page = f.connect("lobby");
    let out = f.send(
        page,
        json!({"type":"login","name":"page","presence":"delta"}),
    );
    assert_eq!(
        frames_to(&out, page)[1],
        json!({"type":"userlist","users":["ann","page"]})
    );
    let (bob, _) = f.login("lobby", "bob");
    let (cat, _) = f.login("lobby", "cat");
    f.hub.disconnect(bob);
    f.hub.disconnect(ann);
    let out = f.flush();
    assert_eq!(
        frames_to(&out, page),
        vec![json!({"type":"presence","joined":["cat","page"],"left":["ann","bob"]})],
        "four changes, one frame"
    );
    assert_eq!(
        frames_to(&out, cat),
        vec![json!({"type":"userlist","users":["cat","page"]})]
    );
    assert!(f.flush().is_empty(), "no change, no frame");
}

#[test]
fn a_shared_frame_is_serialised_once_for_the_whole_room() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let (bob, _) = f.login("lobby", "bob");
    let out = f.flush();
    let shared: Vec<_> = out
        .iter()
        .filter_map(|d| match &d.out {
            Outbound::Frame(text) => Some(text.as_str().as_ptr()),
            _ => None,
        })
        .collect();
    assert_eq!(shared.len(), 2);
    assert_eq!(shared[0], shared[1], "one buffer, two recipients");
    let out = f.send(ann, json!({"type":"message","text":"hi"}));
    let (a, b) = (frames_to(&out, ann), frames_to(&out, bob));
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(a, b);
}

#[test]
fn invalid_names_are_refused() {
    let mut f = Fixture::new();
    let conn = f.connect("lobby");
    for name in [
        json!(""),
        json!("   "),
        json!("a".repeat(33)),
        json!("a\u{0}b"),
        json!(5),
    ] {
        let out = f.send(conn, json!({"type":"login","name":name}));
        assert_eq!(login_reason(&out, conn), json!("invalid-name"), "{name}");
    }
}

#[test]
fn names_are_unique_case_insensitively_per_room() {
    let mut f = Fixture::new();
    f.login("lobby", "Ann");
    let conn = f.connect("lobby");
    let out = f.send(conn, json!({"type":"login","name":"aNN"}));
    assert_eq!(login_reason(&out, conn), json!("name-taken"));
    // Another room has its own names.
    f.login("family", "ann");
}

#[test]
fn mdn_dialect_gets_a_free_variant_of_a_taken_name() {
    let mut f = Fixture::new();
    f.login("lobby", "ann");
    f.login("lobby", "ann2");
    let conn = f.connect("lobby");
    let out = f.send(conn, json!({"type":"username","name":"ANN","id":3}));
    let frames = frames_to(&out, conn);
    assert_eq!(frames[0], json!({"type":"rejectusername","name":"ANN3"}));
    assert_eq!(frames[1]["success"], json!(true));
    assert_eq!(frames[1]["name"], json!("ANN3"));
    assert_eq!(f.hub.user_list("lobby"), vec!["ann", "ann2", "ANN3"]);
}

#[test]
fn second_login_on_one_connection_is_refused() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let out = f.send(ann, json!({"type":"login","name":"other"}));
    assert_eq!(login_reason(&out, ann), json!("already-logged-in"));
}

#[test]
fn token_reclaims_a_name_and_closes_the_stale_connection_with_4001() {
    let mut f = Fixture::new();
    let (old, token) = f.login("lobby", "ann");
    let (bob, _) = f.login("lobby", "bob");
    let thief = f.connect("lobby");
    let out = f.send(
        thief,
        json!({"type":"login","name":"ann","token":"not-the-token"}),
    );
    assert_eq!(login_reason(&out, thief), json!("name-taken"));

    let new = f.connect("lobby");
    let out = f.send(new, json!({"type":"login","name":"ann","token":token}));
    let to_old = frames_to(&out, old);
    assert_eq!(to_old[0]["type"], json!("error"));
    assert_eq!(to_old[0]["code"], json!("replaced"));
    assert_eq!(to_old[1], json!({"close": 4001}));
    let reply = &frames_to(&out, new)[0];
    assert_eq!(reply["success"], json!(true));
    assert_ne!(reply["token"], json!(token), "a fresh token per login");
    assert!(frames_to(&out, bob).is_empty());
    assert_eq!(
        frames_to(&f.flush(), bob)[0]["users"],
        json!(["ann", "bob"])
    );

    // The stale connection going away later does not log out its successor.
    let out = f.hub.disconnect(old);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(f.hub.name_of(new).as_deref(), Some("ann"));
}

#[test]
fn access_codes_global_and_per_room() {
    let mut config = HubConfig {
        chat_max_chars: 2000,
        global_code: Some("global".into()),
        ..HubConfig::default()
    };
    config.room_codes.insert("family".into(), "fam".into());
    let mut f = Fixture::with(config);
    let cases = [
        ("lobby", None, false),
        ("lobby", Some("wrong"), false),
        ("lobby", Some("global"), true),
        ("Family", Some("global"), false),
        ("Family", Some("fam"), true),
        ("other", Some("global"), true),
    ];
    for (i, (room, code, ok)) in cases.into_iter().enumerate() {
        let conn = f.connect(room);
        let out = f.send(
            conn,
            json!({"type":"login","name":format!("u{i}"),"access_code":code}),
        );
        let reply = &frames_to(&out, conn)[0];
        assert_eq!(reply["success"], json!(ok), "{room} {code:?}");
        if !ok {
            assert_eq!(reply["reason"], json!("bad-access-code"));
        }
    }
}

#[test]
fn room_config_codes_apply_case_insensitively() {
    let config = SignalingConfig {
        access_code: Some(String::new()),
        ..SignalingConfig::default()
    };
    let rooms = vec![RoomConfig {
        name: " Family ".into(),
        access_code: Some("fam".into()),
    }];
    let config = HubConfig::new(&config, &rooms);
    assert_eq!(config.global_code, None, "an empty code means none");
    assert_eq!(config.required_code("family"), Some("fam"));
    assert_eq!(config.required_code("lobby"), None);
}

#[test]
fn messages_before_login_are_refused() {
    let mut f = Fixture::new();
    f.login("lobby", "bob");
    let conn = f.connect("lobby");
    for frame in [
        json!({"type":"message","text":"hi"}),
        json!({"type":"video-offer","target":"bob","sdp":{}}),
        json!({"type":"offer","name":"bob","offer":{}}),
    ] {
        let out = f.send(conn, frame);
        assert_eq!(out.len(), 1);
        assert_eq!(frames_to(&out, conn)[0]["code"], json!("not-logged-in"));
    }
}

#[test]
fn relay_sets_the_sender_name_whatever_the_client_wrote() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let (bob, _) = f.login("lobby", "bob");
    let out = f.send(
        ann,
        json!({"type":"video-offer","name":"mallory","target":"BOB","sdp":{"type":"offer","sdp":"v=0"}}),
    );
    assert_eq!(
        frames_to(&out, bob),
        vec![
            json!({"type":"video-offer","name":"ann","from":"ann","target":"BOB","sdp":{"type":"offer","sdp":"v=0"}})
        ]
    );
    assert!(frames_to(&out, ann).is_empty());
}

#[test]
fn unknown_or_offline_target_is_an_error_to_the_sender() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let (bob, _) = f.login("lobby", "bob");
    f.hub.disconnect(bob);
    for frame in [
        json!({"type":"call-request","target":"bob"}),
        json!({"type":"candidate","name":"nobody","candidate":{}}),
    ] {
        let out = f.send(ann, frame);
        let frames = frames_to(&out, ann);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0]["code"], json!("unknown-target"));
    }
}

#[test]
fn rooms_are_isolated() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let (bob, _) = f.login("family", "bob");
    let out = f.send(ann, json!({"type":"video-offer","target":"bob","sdp":{}}));
    assert_eq!(frames_to(&out, ann)[0]["code"], json!("unknown-target"));
    assert!(frames_to(&out, bob).is_empty());
    let out = f.send(ann, json!({"type":"message","text":"hello lobby"}));
    assert!(frames_to(&out, bob).is_empty());
    assert_eq!(f.hub.user_list("lobby"), vec!["ann"]);
    assert_eq!(f.hub.user_list("FAMILY"), vec!["bob"]);
}

#[test]
fn chat_goes_to_the_room_with_name_and_date_and_is_bounded() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let (bob, _) = f.login("lobby", "bob");
    let out = f.send(ann, json!({"type":"message","text":"hi","name":"bob"}));
    let expected =
        json!({"type":"message","name":"ann","from":"ann","text":"hi","date":1_700_000_000_000u64});
    assert_eq!(frames_to(&out, ann), vec![expected.clone()]);
    assert_eq!(frames_to(&out, bob), vec![expected]);
    let out = f.send(ann, json!({"type":"message","text":"é".repeat(2000)}));
    assert_eq!(out.len(), 2, "2000 characters are allowed");
    let out = f.send(ann, json!({"type":"message","text":"x".repeat(2001)}));
    assert_eq!(frames_to(&out, ann)[0]["code"], json!("too-long"));
    assert!(frames_to(&out, bob).is_empty());
}

#[test]
fn tutorial_messages_arrive_in_the_tutorial_shape() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let (bob, _) = f.login("lobby", "bob");
    let cases = [
        (
            json!({"type":"offer","name":"bob","offer":{"sdp":"o"}}),
            json!({"type":"offer","offer":{"sdp":"o"},"name":"ann","from":"ann"}),
        ),
        (
            json!({"type":"answer","name":"bob","answer":{"sdp":"a"}}),
            json!({"type":"answer","answer":{"sdp":"a"},"name":"ann","from":"ann"}),
        ),
        (
            json!({"type":"candidate","name":"bob","candidate":{"candidate":"c"}}),
            json!({"type":"candidate","candidate":{"candidate":"c"},"name":"ann","from":"ann"}),
        ),
        (
            json!({"type":"leave","name":"bob"}),
            json!({"type":"leave","name":"ann","from":"ann"}),
        ),
    ];
    for (sent, received) in cases {
        let out = f.send(ann, sent);
        assert_eq!(frames_to(&out, bob), vec![received]);
    }
}

#[test]
fn empty_rooms_are_forgotten() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("temp", "ann");
    f.hub.disconnect(ann);
    assert!(f.hub.rooms.is_empty());
    assert_eq!(f.hub.connection_count(), 0);
}

#[test]
fn names_are_compared_and_stored_in_nfc() {
    let mut f = Fixture::new();
    let (rene, _) = f.login("lobby", "Rene\u{301}");
    assert_eq!(f.hub.name_of(rene).as_deref(), Some("Ren\u{e9}"));
    let conn = f.connect("lobby");
    let out = f.send(conn, json!({"type":"login","name":"REN\u{c9}"}));
    assert_eq!(login_reason(&out, conn), json!("name-taken"));
    // A lookalike with a zero-width space or a bidi override is no name at all.
    for name in ["Rene\u{200b}", "\u{202e}eneR"] {
        let out = f.send(conn, json!({"type":"login","name":name}));
        assert_eq!(login_reason(&out, conn), json!("invalid-name"));
    }
    // Routing finds the user whichever way the target is spelled.
    let (bob, _) = f.login("lobby", "bob");
    let out = f.send(bob, json!({"type":"call-request","target":"rene\u{301}"}));
    assert_eq!(frames_to(&out, rene)[0]["type"], json!("call-request"));
}

#[test]
fn the_name_limit_comes_from_the_config_and_every_login_reply_tells_the_limits() {
    let mut f = Fixture::with(HubConfig {
        name_max_chars: 5,
        chat_max_chars: 40,
        ..HubConfig::default()
    });
    let conn = f.connect("lobby");
    let out = f.send(conn, json!({"type":"login","name":"abcdef"}));
    let reply = &frames_to(&out, conn)[0];
    assert_eq!(reply["reason"], json!("invalid-name"));
    let limits = json!({"name_max_chars": 5, "chat_max_chars": 40});
    assert_eq!(reply["limits"], limits);
    let out = f.send(conn, json!({"type":"login","name":"abcde"}));
    assert_eq!(frames_to(&out, conn)[0]["limits"], limits);
    // MDN's variant of a taken name still fits.
    let mdn = f.connect("lobby");
    let out = f.send(mdn, json!({"type":"username","name":"abcde"}));
    assert_eq!(frames_to(&out, mdn)[0]["name"], json!("abcd2"));
}

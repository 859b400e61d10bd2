//! Who is in a call with whom, as the hub records it from the signals it relays, and what it
//! tells a peer when its partner hangs up without naming it or vanishes.

use serde_json::json;

use super::tests::{frames_to, Fixture};

#[test]
fn offers_and_answers_note_calls_and_hang_up_clears_them() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let (_bob, _) = f.login("lobby", "bob");
    f.send(ann, json!({"type":"video-offer","target":"bob","sdp":{}}));
    assert_eq!(f.hub.peer_of("lobby", "bob").as_deref(), Some("ann"));
    assert_eq!(f.hub.peer_of("lobby", "ann").as_deref(), Some("bob"));
    f.send(ann, json!({"type":"hang-up","target":"bob"}));
    assert_eq!(f.hub.peer_of("lobby", "bob"), None);
    assert_eq!(f.hub.peer_of("lobby", "ann"), None);
}

#[test]
fn a_call_request_does_not_disturb_a_call_in_progress() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let (_bob, _) = f.login("lobby", "bob");
    let (carol, _) = f.login("lobby", "carol");
    f.send(ann, json!({"type":"call-accept","target":"bob"}));
    f.send(carol, json!({"type":"call-request","target":"bob"}));
    assert_eq!(f.hub.peer_of("lobby", "bob").as_deref(), Some("ann"));
    // A new call replaces the old pairing on both sides.
    f.send(carol, json!({"type":"offer","name":"ann","offer":{}}));
    assert_eq!(f.hub.peer_of("lobby", "ann").as_deref(), Some("carol"));
    assert_eq!(f.hub.peer_of("lobby", "bob"), None);
}

#[test]
fn disconnect_mid_call_tells_an_mdn_peer_hang_up() {
    let mut f = Fixture::new();
    let ann = f.login_mdn("lobby", "ann");
    let bob = f.login_mdn("lobby", "bob");
    f.send(ann, json!({"type":"video-offer","target":"bob","sdp":{}}));
    f.send(bob, json!({"type":"video-answer","target":"ann","sdp":{}}));
    let out = f.hub.disconnect(ann);
    assert_eq!(
        frames_to(&out, bob),
        vec![json!({"type":"hang-up","name":"ann","from":"ann","target":"bob"})]
    );
    assert_eq!(
        frames_to(&f.flush(), bob),
        vec![json!({"type":"userlist","users":["bob"]})]
    );
    assert_eq!(f.hub.peer_of("lobby", "bob"), None);
}

#[test]
fn disconnect_mid_call_tells_a_tutorial_peer_leave() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let (bob, _) = f.login("lobby", "bob");
    f.send(bob, json!({"type":"offer","name":"ann","offer":{}}));
    let out = f.hub.disconnect(bob);
    assert_eq!(
        frames_to(&out, ann)[0],
        json!({"type":"leave","name":"bob","from":"bob"})
    );
}

#[test]
fn call_media_after_a_server_restart_relearns_the_call_for_disconnects() {
    // A fresh hub, as after a restart: both sides log back in mid-call and announce their media.
    let mut f = Fixture::new();
    let ann = f.login_mdn("lobby", "ann");
    let bob = f.login_mdn("lobby", "bob");
    f.send(
        ann,
        json!({"type":"call-media","target":"bob","audio":true,"video":true,"screen":false}),
    );
    assert_eq!(f.hub.peer_of("lobby", "bob").as_deref(), Some("ann"));
    let out = f.hub.disconnect(ann);
    assert_eq!(
        frames_to(&out, bob)[0],
        json!({"type":"hang-up","name":"ann","from":"ann","target":"bob"})
    );
}

#[test]
fn a_stray_call_media_does_not_break_up_another_call() {
    let mut f = Fixture::new();
    let ann = f.login_mdn("lobby", "ann");
    let bob = f.login_mdn("lobby", "bob");
    let _cat = f.login_mdn("lobby", "cat");
    f.send(ann, json!({"type":"video-offer","target":"cat","sdp":{}}));
    f.send(
        bob,
        json!({"type":"call-media","target":"ann","audio":false,"video":true,"screen":false}),
    );
    assert_eq!(f.hub.peer_of("lobby", "ann").as_deref(), Some("cat"));
    assert_eq!(f.hub.peer_of("lobby", "bob"), None);
    f.flush();
    assert!(frames_to(&f.hub.disconnect(bob), ann).is_empty());
    assert_eq!(
        frames_to(&f.flush(), ann),
        vec![json!({"type":"userlist","users":["ann","cat"]})]
    );
}

#[test]
fn disconnect_after_hang_up_tells_only_the_user_list() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let (bob, _) = f.login("lobby", "bob");
    f.send(ann, json!({"type":"offer","name":"bob","offer":{}}));
    f.send(ann, json!({"type":"leave","name":"bob"}));
    f.flush();
    assert!(frames_to(&f.hub.disconnect(ann), bob).is_empty());
    assert_eq!(
        frames_to(&f.flush(), bob),
        vec![json!({"type":"userlist","users":["bob"]})]
    );
}

#[test]
fn reclaiming_a_name_keeps_its_call() {
    let mut f = Fixture::new();
    let (ann, token) = f.login("lobby", "ann");
    let (bob, _) = f.login("lobby", "bob");
    f.send(ann, json!({"type":"offer","name":"bob","offer":{}}));
    let new = f.connect("lobby");
    f.send(new, json!({"type":"login","name":"ann","token":token}));
    f.hub.disconnect(ann);
    let out = f.send(bob, json!({"type":"candidate","name":"ann","candidate":{}}));
    assert_eq!(frames_to(&out, new)[0]["type"], json!("candidate"));
    let out = f.hub.disconnect(new);
    assert_eq!(
        frames_to(&out, bob)[0],
        json!({"type":"leave","name":"ann","from":"ann"})
    );
}

#[test]
fn a_hang_up_without_target_reaches_the_senders_call_partner() {
    // MDN's hangUpCall() clears targetUsername before sending.
    let mut f = Fixture::new();
    let ann = f.login_mdn("lobby", "ann");
    let bob = f.login_mdn("lobby", "bob");
    let carol = f.login_mdn("lobby", "carol");
    f.send(ann, json!({"type":"video-offer","target":"bob","sdp":{}}));
    let out = f.send(ann, json!({"type":"hang-up","name":"ann","target":null}));
    assert_eq!(
        frames_to(&out, bob),
        vec![json!({"type":"hang-up","name":"ann","from":"ann","target":"bob"})]
    );
    assert!(frames_to(&out, ann).is_empty() && frames_to(&out, carol).is_empty());
    assert_eq!(f.hub.peer_of("lobby", "bob"), None, "the call is over");
    // No call any more: a second one is ignored quietly.
    let out = f.send(ann, json!({"type":"hang-up","name":"ann","target":null}));
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_leave_without_name_reaches_the_senders_call_partner() {
    let mut f = Fixture::new();
    let (ann, _) = f.login("lobby", "ann");
    let (bob, _) = f.login("lobby", "bob");
    f.send(ann, json!({"type":"offer","name":"bob","offer":{}}));
    let out = f.send(ann, json!({"type":"leave"}));
    assert_eq!(
        frames_to(&out, bob),
        vec![json!({"type":"leave","name":"ann","from":"ann"})]
    );
    assert_eq!(f.hub.peer_of("lobby", "ann"), None);
    assert!(f.send(bob, json!({"type":"leave"})).is_empty());
}

#[test]
fn the_call_log_measures_a_call_by_the_times_the_driver_passes() {
    use crate::signaling::protocol::{parse, Inbound};
    use std::time::{Duration, Instant};
    let routed = |frame: serde_json::Value| match parse(&frame.to_string()) {
        Ok(Inbound::Routed(msg)) => msg,
        other => panic!("a routed frame: {other:?}"),
    };
    let mut f = Fixture::new();
    let ann = f.login_mdn("lobby", "ann");
    let bob = f.login_mdn("lobby", "bob");
    let t0 = Instant::now();
    let log = crate::signaling::test_log::logged_by(|| {
        let offer = routed(json!({"type":"video-offer","target":"bob","sdp":{}}));
        f.hub.route_at(ann, offer, 1, t0);
        let answer = routed(json!({"type":"video-answer","target":"ann","sdp":{}}));
        f.hub.route_at(bob, answer, 2, t0 + Duration::from_secs(1));
        f.hub.disconnect_at(ann, t0 + Duration::from_secs(90));
    });
    assert!(
        log.contains("duration_s=90") && log.contains("ended=\"disconnected\""),
        "{log}"
    );
}

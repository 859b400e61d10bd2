//! Both seed dialects end to end over real sockets: the Spanish tutorial's login/offer/answer/
//! candidate/leave and MDN's username/video-offer/video-answer/new-ice-candidate/hang-up, plus
//! chat and the callbox call-control messages riding the same relay.

mod common;

use common::{ann_and_bob, connect, start, try_connect};
use serde_json::json;

#[tokio::test]
async fn tutorial_dialect_end_to_end() {
    let running = start("").await;
    let addr = running.http_addr;
    let mut ann = connect(addr, "/ws").await;
    let reply = ann.login("ann").await;
    assert_eq!(reply["name"], "ann");
    assert!(reply["iceServers"].is_array(), "{reply}");
    assert!(reply["ttl"].is_u64(), "{reply}");
    assert!(reply["token"].is_string(), "{reply}");

    let mut bob = connect(addr, "/ws").await;
    bob.login("bob").await;
    ann.wait_user_list(&["ann", "bob"]).await;
    bob.wait_user_list(&["ann", "bob"]).await;

    ann.send(json!({"type":"offer","name":"bob","offer":{"type":"offer","sdp":"v=0"}}))
        .await;
    assert_eq!(
        bob.recv().await,
        json!({"type":"offer","offer":{"type":"offer","sdp":"v=0"},"name":"ann","from":"ann"})
    );
    bob.send(json!({"type":"answer","name":"ann","answer":{"type":"answer","sdp":"v=0"}}))
        .await;
    assert_eq!(
        ann.recv().await,
        json!({"type":"answer","answer":{"type":"answer","sdp":"v=0"},"name":"bob","from":"bob"})
    );
    ann.send(json!({"type":"candidate","name":"bob","candidate":{"candidate":"c1"}}))
        .await;
    assert_eq!(
        bob.recv().await,
        json!({"type":"candidate","candidate":{"candidate":"c1"},"name":"ann","from":"ann"})
    );
    ann.send(json!({"type":"leave","name":"bob"})).await;
    assert_eq!(
        bob.recv().await,
        json!({"type":"leave","name":"ann","from":"ann"})
    );
    running.shutdown().await;
}

#[tokio::test]
async fn mdn_dialect_end_to_end() {
    let running = start("").await;
    let addr = running.http_addr;
    // MDN's client offers the "json" subprotocol; it must be accepted.
    let (ws, response) = try_connect(addr, "/ws", &[("Sec-WebSocket-Protocol", "json")])
        .await
        .expect("upgrade");
    assert_eq!(response.headers()["sec-websocket-protocol"], "json");
    let mut ann = common::Client { ws };
    let id = ann.recv().await;
    assert_eq!(id["type"], "id");
    ann.login_with(json!({"type":"username","name":"ann","id":id["id"]}))
        .await;

    let mut bob = connect(addr, "/ws").await;
    // A taken name gets MDN's treatment: a free variant, announced with rejectusername.
    bob.send(json!({"type":"username","name":"Ann","id":2}))
        .await;
    assert_eq!(
        bob.recv().await,
        json!({"type":"rejectusername","name":"Ann2"})
    );
    let reply = bob.recv_type("login").await;
    assert_eq!(
        (reply["success"].clone(), reply["name"].clone()),
        (json!(true), json!("Ann2"))
    );
    bob.wait_user_list(&["ann", "Ann2"]).await;
    ann.wait_user_list(&["ann", "Ann2"]).await;

    for kind in ["video-offer", "video-answer"] {
        ann.send(json!({"type":kind,"name":"ann","target":"Ann2","sdp":{"sdp":kind}}))
            .await;
        assert_eq!(
            bob.recv().await,
            json!({"type":kind,"name":"ann","from":"ann","target":"Ann2","sdp":{"sdp":kind}})
        );
    }
    bob.send(json!({"type":"new-ice-candidate","target":"ann","candidate":{"candidate":"c"}}))
        .await;
    assert_eq!(
        ann.recv().await,
        json!({"type":"new-ice-candidate","target":"ann","candidate":{"candidate":"c"},"name":"Ann2","from":"Ann2"})
    );
    bob.send(json!({"type":"hang-up","name":"Ann2","target":"ann"}))
        .await;
    assert_eq!(
        ann.recv().await,
        json!({"type":"hang-up","name":"Ann2","from":"Ann2","target":"ann"})
    );
    running.shutdown().await;
}

#[tokio::test]
async fn call_control_messages_ride_the_targeted_relay() {
    let running = start("").await;
    let addr = running.http_addr;
    let (mut ann, mut bob) = ann_and_bob(addr).await;
    let frames = [
        json!({"type":"call-request","target":"bob"}),
        json!({"type":"call-cancel","target":"bob"}),
        json!({"type":"call-decline","target":"bob","reason":"busy"}),
        json!({"type":"call-accept","target":"bob"}),
    ];
    for frame in frames {
        ann.send(frame.clone()).await;
        let mut expected = frame;
        expected["name"] = json!("ann");
        expected["from"] = json!("ann");
        assert_eq!(bob.recv().await, expected);
    }
    running.shutdown().await;
}

#[tokio::test]
async fn chat_reaches_the_room_with_server_set_name_and_date() {
    let running = start("").await;
    let addr = running.http_addr;
    let (mut ann, mut bob) = ann_and_bob(addr).await;
    ann.send(json!({"type":"message","text":"hello","name":"bob"}))
        .await;
    for client in [&mut ann, &mut bob] {
        let chat = client.recv().await;
        assert_eq!(chat["type"], "message");
        assert_eq!(chat["name"], "ann", "the sender's name is the server's");
        assert_eq!(chat["text"], "hello");
        assert!(chat["date"].as_u64().unwrap() > 1_600_000_000_000);
    }
    running.shutdown().await;
}

#[tokio::test]
async fn disconnect_mid_call_tells_a_tutorial_peer_leave() {
    let running = start("").await;
    let addr = running.http_addr;
    let (mut ann, mut bob) = ann_and_bob(addr).await;
    ann.send(json!({"type":"offer","name":"bob","offer":{}}))
        .await;
    bob.recv_type("offer").await;
    drop(ann);
    assert_eq!(
        bob.recv().await,
        json!({"type":"leave","name":"ann","from":"ann"})
    );
    bob.wait_user_list(&["bob"]).await;
    running.shutdown().await;
}

#[tokio::test]
async fn disconnect_mid_call_tells_an_mdn_peer_hang_up() {
    let running = start("").await;
    let addr = running.http_addr;
    let mut ann = connect(addr, "/ws").await;
    ann.login_with(json!({"type":"username","name":"ann","id":1}))
        .await;
    let mut bob = connect(addr, "/ws").await;
    bob.login_with(json!({"type":"username","name":"bob","id":2}))
        .await;
    ann.wait_user_list(&["ann", "bob"]).await;
    bob.send(json!({"type":"video-offer","target":"ann","sdp":{}}))
        .await;
    ann.recv_type("video-offer").await;
    ann.send(json!({"type":"video-answer","target":"bob","sdp":{}}))
        .await;
    bob.recv_type("video-answer").await;
    ann.ws.close(None).await.unwrap();
    assert_eq!(
        bob.recv().await,
        json!({"type":"hang-up","name":"ann","from":"ann","target":"bob"})
    );
    bob.wait_user_list(&["bob"]).await;
    running.shutdown().await;
}

#[tokio::test]
async fn mdn_hang_up_without_target_ends_the_call_on_the_other_side() {
    // MDN's hangUpCall() sets targetUsername = null before sending, so the frame names nobody.
    let running = start("").await;
    let addr = running.http_addr;
    let mut ann = connect(addr, "/ws").await;
    ann.login_with(json!({"type":"username","name":"ann","id":1}))
        .await;
    let mut bob = connect(addr, "/ws").await;
    bob.login_with(json!({"type":"username","name":"bob","id":2}))
        .await;
    ann.wait_user_list(&["ann", "bob"]).await;
    ann.send(json!({"type":"video-offer","name":"ann","target":"bob","sdp":{}}))
        .await;
    bob.recv_type("video-offer").await;
    bob.send(json!({"type":"video-answer","name":"bob","target":"ann","sdp":{}}))
        .await;
    ann.recv_type("video-answer").await;

    ann.send(json!({"type":"hang-up","name":"ann","target":null}))
        .await;
    assert_eq!(
        bob.recv().await,
        json!({"type":"hang-up","name":"ann","from":"ann","target":"bob"})
    );
    // The call is over: another target-less hang-up is ignored quietly (no error to ann, and
    // nothing to bob), and ann disconnecting later tells bob only the user list.
    ann.send(json!({"type":"hang-up","name":"ann","target":null}))
        .await;
    ann.send(json!({"type":"message","text":"marker"})).await;
    assert_eq!(ann.recv().await["text"], "marker");
    assert_eq!(bob.recv().await["text"], "marker");
    drop(ann);
    assert_eq!(
        bob.recv_any().await,
        json!({"type":"userlist","users":["bob"]})
    );
    running.shutdown().await;
}

//! Every error case, name rule and isolation rule over real sockets: each error comes back as a
//! typed `error` frame (or a failed login) and the connection stays usable.

mod common;

use common::{ann_and_bob, code, connect, start, Client};
use serde_json::{json, Value};

async fn error_for(client: &mut Client, text: &str) -> Value {
    client.send_text(text.to_string()).await;
    // Presence comes in batches (every 200 ms), so one may arrive before the reply.
    let mut frame = client.recv().await;
    for _ in 0..10 {
        if frame["type"] != "userlist" && frame["type"] != "presence" {
            break;
        }
        frame = client.recv().await;
    }
    assert_eq!(frame["type"], "error", "{text} -> {frame}");
    assert!(frame["message"].is_string(), "{frame}");
    frame
}

async fn failed_login(client: &mut Client, frame: Value) -> Value {
    client.send(frame).await;
    let reply = client.recv_type("login").await;
    assert_eq!(reply["success"], false, "{reply}");
    assert!(reply["message"].is_string(), "{reply}");
    reply["reason"].clone()
}

#[tokio::test]
async fn malformed_frames_get_error_codes_and_the_connection_stays_open() {
    let running = start("").await;
    let mut client = connect(running.http_addr, "/ws").await;
    let cases = [
        ("{not json", "invalid-json"),
        ("[1,2,3]", "not-an-object"),
        ("42", "not-an-object"),
        (r#"{"text":"no type"}"#, "missing-type"),
        (r#"{"type":7}"#, "missing-type"),
        (r#"{"type":"message","text":"hi"}"#, "not-logged-in"),
        (
            r#"{"type":"video-offer","target":"bob","sdp":{}}"#,
            "not-logged-in",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            error_for(&mut client, text).await["code"],
            expected,
            "{text}"
        );
    }
    let unknown = error_for(&mut client, r#"{"type":"dance"}"#).await;
    assert_eq!(unknown["code"], "unknown-type");
    assert_eq!(unknown["message"], "Command not found: dance");
    client.login("ann").await;
    running.shutdown().await;
}

#[tokio::test]
async fn server_only_types_are_refused() {
    let running = start("").await;
    let (mut ann, mut bob) = ann_and_bob(running.http_addr).await;
    for kind in ["id", "userlist", "rejectusername", "error", "ice-servers"] {
        let frame = json!({"type": kind, "target": "bob", "users": ["evil"]}).to_string();
        assert_eq!(error_for(&mut ann, &frame).await["code"], "forbidden-type");
    }
    // Nothing reached bob: the next thing he sees is this chat.
    ann.send(json!({"type":"message","text":"after"})).await;
    assert_eq!(bob.recv().await["text"], "after");
    running.shutdown().await;
}

#[tokio::test]
async fn unknown_target_and_too_long_chat_are_errors() {
    let running = start("").await;
    let mut ann = connect(running.http_addr, "/ws").await;
    ann.login("ann").await;
    let target = error_for(
        &mut ann,
        r#"{"type":"video-offer","target":"nobody","sdp":{}}"#,
    )
    .await;
    assert_eq!(target["code"], "unknown-target");
    let tutorial = error_for(&mut ann, r#"{"type":"offer","name":"nobody","offer":{}}"#).await;
    assert_eq!(tutorial["code"], "unknown-target");
    let long = json!({"type":"message","text":"x".repeat(2001)}).to_string();
    assert_eq!(error_for(&mut ann, &long).await["code"], "too-long");
    ann.send(json!({"type":"message","text":"x".repeat(2000)}))
        .await;
    assert_eq!(ann.recv().await["type"], "message");
    running.shutdown().await;
}

#[tokio::test]
async fn name_rules_are_enforced() {
    let running = start("").await;
    let mut ann = connect(running.http_addr, "/ws").await;
    for name in [
        json!(""),
        json!("  "),
        json!("a".repeat(33)),
        json!("tab\there"),
    ] {
        let reason = failed_login(&mut ann, json!({"type":"login","name":name})).await;
        assert_eq!(reason, "invalid-name", "{name}");
    }
    ann.login(&"a".repeat(32)).await;
    let reason = failed_login(&mut ann, json!({"type":"login","name":"again"})).await;
    assert_eq!(reason, "already-logged-in");

    let mut other = connect(running.http_addr, "/ws").await;
    let taken = json!({"type":"login","name":"A".repeat(32)});
    assert_eq!(failed_login(&mut other, taken).await, "name-taken");
    running.shutdown().await;
}

#[tokio::test]
async fn token_reclaims_a_name_and_the_stale_connection_gets_4001() {
    let running = start("").await;
    let addr = running.http_addr;
    let mut old = connect(addr, "/ws").await;
    let token = old.login("ann").await["token"].clone();
    let mut bob = connect(addr, "/ws").await;
    bob.login("bob").await;

    let mut thief = connect(addr, "/ws").await;
    let wrong = json!({"type":"login","name":"ann","token":"guessed"});
    assert_eq!(failed_login(&mut thief, wrong).await, "name-taken");

    let mut new = connect(addr, "/ws").await;
    let reply = new
        .login_with(json!({"type":"login","name":"ann","token":token}))
        .await;
    assert_ne!(reply["token"], token);
    let replaced = old.recv_type("error").await;
    assert_eq!(replaced["code"], "replaced");
    let close = old.closed().await;
    assert_eq!(code(&close), Some(4001));
    assert_eq!(close.unwrap().reason.as_str(), "replaced");

    // The name now reaches the new connection.
    bob.send(json!({"type":"message","text":"still there?"}))
        .await;
    assert_eq!(new.recv_type("message").await["text"], "still there?");
    bob.send(json!({"type":"call-request","target":"ann"}))
        .await;
    assert_eq!(new.recv_type("call-request").await["from"], "bob");
    running.shutdown().await;
}

#[tokio::test]
async fn rooms_are_isolated() {
    let running = start("").await;
    let addr = running.http_addr;
    let mut lobby = connect(addr, "/ws").await;
    lobby.login("ann").await;
    let mut family = connect(addr, "/ws?room=Family").await;
    let reply = family.login("ann").await;
    assert_eq!(
        reply["name"], "ann",
        "the same name in another room is free"
    );
    let mut cousin = connect(addr, "/ws?room=family").await;
    cousin.login("bob").await;
    family.wait_user_list(&["ann", "bob"]).await;
    lobby.wait_user_list(&["ann"]).await;

    lobby
        .send(json!({"type":"video-offer","target":"bob","sdp":{}}))
        .await;
    assert_eq!(lobby.recv().await["code"], "unknown-target");
    lobby
        .send(json!({"type":"message","text":"lobby only"}))
        .await;
    assert_eq!(lobby.recv().await["text"], "lobby only");
    cousin
        .send(json!({"type":"message","text":"family only"}))
        .await;
    assert_eq!(family.recv().await["text"], "family only");
    // The lobby saw neither family's user lists nor its chat.
    lobby.send(json!({"type":"message","text":"marker"})).await;
    assert_eq!(lobby.recv().await["text"], "marker");
    running.shutdown().await;
}

#[tokio::test]
async fn spoofed_sender_name_is_overwritten() {
    let running = start("").await;
    let addr = running.http_addr;
    let (mut ann, mut bob) = ann_and_bob(addr).await;
    ann.send(json!({"type":"video-offer","name":"carol","target":"bob","sdp":{}}))
        .await;
    assert_eq!(bob.recv().await["name"], "ann");
    ann.send(json!({"type":"message","name":"carol","text":"hi"}))
        .await;
    assert_eq!(bob.recv().await["name"], "ann");
    running.shutdown().await;
}

#[tokio::test]
async fn access_codes_global_and_per_room() {
    let running = start(
        "[signaling]\naccess_code = \"let-me-in\"\n\n[[rooms]]\nname = \"family\"\naccess_code = \"fam\"\n",
    )
    .await;
    let addr = running.http_addr;
    let mut lobby = connect(addr, "/ws").await;
    let reason = failed_login(&mut lobby, json!({"type":"login","name":"ann"})).await;
    assert_eq!(reason, "bad-access-code");
    let wrong = json!({"type":"login","name":"ann","access_code":"fam"});
    assert_eq!(failed_login(&mut lobby, wrong).await, "bad-access-code");
    lobby
        .login_with(json!({"type":"login","name":"ann","access_code":"let-me-in"}))
        .await;

    let mut family = connect(addr, "/ws?room=family").await;
    let wrong = json!({"type":"username","name":"bob","access_code":"let-me-in"});
    assert_eq!(failed_login(&mut family, wrong).await, "bad-access-code");
    family
        .login_with(json!({"type":"username","name":"bob","access_code":"fam"}))
        .await;
    running.shutdown().await;
}

#[tokio::test]
async fn types_outside_the_allow_list_get_unknown_type_and_reach_nobody() {
    let running = start("").await;
    let (mut ann, mut bob) = ann_and_bob(running.http_addr).await;
    // What a page would take for its own state, a server event or an internal event name.
    let frames = [
        json!({"type":"state","target":"bob","state":"replaced"}),
        json!({"type":"replaced","target":"bob"}),
        json!({"type":"message-any","target":"bob","text":"x"}),
        json!({"type":"session","target":"bob","from":"server"}),
        json!({"type":"ping-me","target":"bob"}),
    ];
    for frame in frames {
        let error = error_for(&mut ann, &frame.to_string()).await;
        assert_eq!(error["code"], "unknown-type", "{frame}");
        let kind = frame["type"].as_str().unwrap_or_default();
        assert_eq!(error["message"], format!("Command not found: {kind}"));
    }
    let spoofed = json!({"type":"userlist","target":"bob","users":[],"from":"server"});
    assert_eq!(
        error_for(&mut ann, &spoofed.to_string()).await["code"],
        "forbidden-type"
    );
    // A login-shaped frame is ann's own (second) login, never a reply to bob.
    ann.send(json!({"type":"login","success":false,"target":"bob","name":"bob"}))
        .await;
    assert_eq!(ann.recv_type("login").await["reason"], "already-logged-in");
    // An allowed type keeps the server's `from`, whatever the sender wrote.
    ann.send(json!({"type":"call-request","target":"bob","from":"server","name":"bob"}))
        .await;
    let ring = bob.recv().await;
    assert_eq!(
        (ring["type"].clone(), ring["from"].clone()),
        (json!("call-request"), json!("ann"))
    );
    // Nothing else reached bob: the next thing he sees is this chat.
    ann.send(json!({"type":"message","text":"after"})).await;
    let chat = bob.recv().await;
    assert_eq!(
        (chat["text"].clone(), chat["from"].clone()),
        (json!("after"), json!("ann"))
    );
    running.shutdown().await;
}

#[tokio::test]
async fn lookalike_names_are_refused_and_nfc_spellings_are_one_name() {
    let running = start("").await;
    let addr = running.http_addr;
    let mut rene = connect(addr, "/ws").await;
    let reply = rene.login("Rene\u{301}").await;
    assert_eq!(reply["name"], "Ren\u{e9}", "stored composed");
    let mut other = connect(addr, "/ws").await;
    for (name, reason) in [
        ("ren\u{e9}", "name-taken"),
        ("Ren\u{e9}\u{200b}", "invalid-name"),
        ("\u{202e}en\u{e9}R", "invalid-name"),
        ("Ren\u{e9}\u{feff}", "invalid-name"),
    ] {
        let got = failed_login(&mut other, json!({"type":"login","name":name})).await;
        assert_eq!(got, reason, "{name:?}");
    }
    running.shutdown().await;
}

//! What a login reply tells and what a guessing client meets, over real sockets: the limits
//! from config.toml in every login reply, and the back-off for wrong access codes per client
//! address.

mod common;

use std::time::Duration;

use common::{connect, start, Client};
use serde_json::{json, Value};

async fn login_reply(client: &mut Client, frame: Value) -> Value {
    client.send(frame).await;
    client.recv_type("login").await
}

#[tokio::test]
async fn login_replies_carry_the_configured_limits() {
    let running = start("[signaling]\nname_max_chars = 12\nchat_max_chars = 50\n").await;
    let mut ann = connect(running.http_addr, "/ws").await;
    let limits = json!({"name_max_chars": 12, "chat_max_chars": 50});
    let refused = login_reply(&mut ann, json!({"type":"login","name":"a".repeat(13)})).await;
    assert_eq!(refused["reason"], "invalid-name");
    assert_eq!(refused["limits"], limits);
    let ok = ann.login(&"a".repeat(12)).await;
    assert_eq!(ok["limits"], limits);
    ann.send(json!({"type":"message","text":"x".repeat(51)}))
        .await;
    assert_eq!(ann.recv_type("error").await["code"], "too-long");
    running.shutdown().await;
}

#[tokio::test]
async fn the_default_limits_are_told_too() {
    let running = start("").await;
    let mut ann = connect(running.http_addr, "/ws").await;
    let ok = ann.login("ann").await;
    assert_eq!(
        ok["limits"],
        json!({"name_max_chars": 32, "chat_max_chars": 2000})
    );
    running.shutdown().await;
}

#[tokio::test]
async fn wrong_access_codes_from_one_address_meet_a_growing_wait() {
    let running = start("[signaling]\naccess_code = \"right\"\n").await;
    let addr = running.http_addr;
    let wrong = json!({"type":"login","name":"mallory","access_code":"guess"});
    let mut guesser = connect(addr, "/ws").await;
    for i in 0..5 {
        let reply = login_reply(&mut guesser, wrong.clone()).await;
        assert_eq!(reply["reason"], "bad-access-code", "attempt {i}");
    }
    // Now every login from this address waits, on any connection, even with the right code.
    let mut other = connect(addr, "/ws").await;
    let right = json!({"type":"login","name":"ann","access_code":"right"});
    let blocked = login_reply(&mut other, right.clone()).await;
    assert_eq!(blocked["success"], false);
    assert_eq!(blocked["reason"], "too-many-attempts");
    assert_eq!(blocked["retry_after"], 1);
    assert!(blocked["message"].as_str().unwrap_or("").contains("1 s"));

    // After the wait, one more wrong code doubles it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = login_reply(&mut guesser, wrong.clone()).await;
    assert_eq!(reply["reason"], "bad-access-code");
    let blocked = login_reply(&mut guesser, wrong).await;
    assert_eq!(blocked["reason"], "too-many-attempts");
    assert_eq!(blocked["retry_after"], 2);

    // The right code after the wait logs in and forgives the address.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let ok = login_reply(&mut other, right).await;
    assert_eq!(ok["success"], true, "{ok}");
    let reply = login_reply(
        &mut guesser,
        json!({"type":"login","name":"m2","access_code":"guess"}),
    )
    .await;
    assert_eq!(reply["reason"], "bad-access-code");
    running.shutdown().await;
}

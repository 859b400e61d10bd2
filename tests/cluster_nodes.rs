//! Several callbox processes sharing one real redis-server: users on different nodes see each
//! other, chat and exchange call messages in order; names are held cluster-wide; a killed
//! node's names lapse and its users' call partners are told; a Redis outage degrades a node
//! without stopping it and the cluster comes back with Redis.

mod cluster_support;
mod common;

use std::time::{Duration, Instant};

use cluster_support::{Node, Redis};
use common::{connect, Client};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Reads frames until one satisfies `pred`, for at most `within` (cross-node events take a
/// heartbeat or two when nodes come and go).
async fn recv_until(client: &mut Client, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    match try_recv_until(client, within, pred).await {
        Some(frame) => frame,
        None => panic!("no matching frame within {within:?}"),
    }
}

async fn try_recv_until(
    client: &mut Client,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    for _ in 0..10_000 {
        let next = tokio::time::timeout_at(deadline, client.ws.next()).await;
        let Ok(Some(Ok(msg))) = next else {
            break;
        };
        let Message::Text(text) = msg else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).expect("server sends JSON");
        if pred(&frame) {
            return Some(frame);
        }
    }
    None
}

async fn wait_users(client: &mut Client, users: &[&str]) {
    let want = json!(users);
    recv_until(client, Duration::from_secs(10), |f| {
        f["type"] == "userlist" && f["users"] == want
    })
    .await;
}

async fn login_reply(client: &mut Client, frame: Value) -> Value {
    client.send(frame).await;
    client.recv_type("login").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_different_nodes_see_each_other_chat_and_get_targeted_messages_in_order() {
    let redis = Redis::start();
    let a = Node::start("127.0.0.2", "a", &redis, "");
    let b = Node::start("127.0.0.3", "b", &redis, "");
    let c = Node::start("127.0.0.4", "c", &redis, "");
    let mut ann = connect(a.addr, "/ws").await;
    ann.login("ann").await;
    let mut bob = connect(b.addr, "/ws").await;
    bob.login("bob").await;
    let mut cy = connect(c.addr, "/ws").await;
    cy.login("cy").await;
    for client in [&mut ann, &mut bob, &mut cy] {
        wait_users(client, &["ann", "bob", "cy"]).await;
    }

    ann.send(json!({"type": "message", "text": "hello all"}))
        .await;
    for client in [&mut bob, &mut cy] {
        let chat = client.recv_type("message").await;
        assert_eq!(
            (chat["name"].as_str(), chat["text"].as_str()),
            (Some("ann"), Some("hello all"))
        );
    }

    for seq in 0..100 {
        ann.send(json!({"type": "offer", "name": "bob", "offer": {"seq": seq}}))
            .await;
    }
    for seq in 0..100 {
        let offer = bob.recv_type("offer").await;
        assert_eq!(offer["name"], "ann", "{offer}");
        assert_eq!(offer["offer"]["seq"], seq, "per-sender order: {offer}");
    }
    bob.send(json!({"type": "answer", "name": "ann", "answer": {"sdp": "x"}}))
        .await;
    let answer = ann.recv_type("answer").await;
    assert_eq!(
        (answer["name"].as_str(), answer["answer"]["sdp"].as_str()),
        (Some("bob"), Some("x"))
    );

    // Bob leaves: everyone else's list drops him.
    drop(bob);
    wait_users(&mut ann, &["ann", "cy"]).await;
    wait_users(&mut cy, &["ann", "cy"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_held_on_one_node_is_refused_on_another_and_taken_over_there_with_its_token() {
    let redis = Redis::start();
    let a = Node::start("127.0.0.2", "a", &redis, "");
    let b = Node::start("127.0.0.3", "b", &redis, "");
    let mut ann = connect(a.addr, "/ws").await;
    let token = ann.login("ann").await["token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut bob = connect(a.addr, "/ws").await;
    bob.login("bob").await;

    let mut impostor = connect(b.addr, "/ws").await;
    let refused = login_reply(&mut impostor, json!({"type": "login", "name": "ANN"})).await;
    assert_eq!(refused["success"], false, "{refused}");
    assert_eq!(refused["reason"], "name-taken", "{refused}");

    let mut ann2 = connect(b.addr, "/ws").await;
    let again = login_reply(
        &mut ann2,
        json!({"type": "login", "name": "ann", "token": token}),
    )
    .await;
    assert_eq!(again["success"], true, "{again}");
    let error = recv_until(&mut ann, Duration::from_secs(5), |f| f["type"] == "error").await;
    assert_eq!(error["code"], "replaced", "{error}");
    assert_eq!(common::code(&ann.closed().await), Some(4001));

    // Bob, still on node a, reaches Ann on node b by the same name.
    bob.send(json!({"type": "offer", "name": "ann", "offer": {"n": 1}}))
        .await;
    let offer = ann2.recv_type("offer").await;
    assert_eq!(offer["name"], "bob", "{offer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_names_lapse_its_partners_are_told_and_the_name_is_taken_on_another_node() {
    let redis = Redis::start();
    let mut a = Node::start("127.0.0.2", "a", &redis, "");
    let b = Node::start("127.0.0.3", "b", &redis, "");
    let mut ann = connect(a.addr, "/ws").await;
    let token = ann.login("ann").await["token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut bob = connect(b.addr, "/ws").await;
    bob.login("bob").await;
    wait_users(&mut bob, &["ann", "bob"]).await;
    wait_users(&mut ann, &["ann", "bob"]).await;
    // A call: offer and answer across the nodes.
    ann.send(json!({"type": "offer", "name": "bob", "offer": {}}))
        .await;
    bob.recv_type("offer").await;
    bob.send(json!({"type": "answer", "name": "ann", "answer": {}}))
        .await;
    ann.recv_type("answer").await;

    a.kill();
    let killed = Instant::now();
    let leave = recv_until(&mut bob, Duration::from_secs(15), |f| f["type"] == "leave").await;
    assert_eq!(leave["name"], "ann", "{leave}");
    wait_users(&mut bob, &["bob"]).await;
    eprintln!(
        "partner told and list updated {:?} after SIGKILL",
        killed.elapsed()
    );

    let mut ann2 = connect(b.addr, "/ws").await;
    let back = login_reply(
        &mut ann2,
        json!({"type": "login", "name": "ann", "token": token}),
    )
    .await;
    assert_eq!(back["success"], true, "{back}");
    wait_users(&mut bob, &["ann", "bob"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_keeps_local_users_talking_refuses_new_logins_clearly_and_heals() {
    let mut redis = Redis::start();
    let mut a = Node::start("127.0.0.2", "a", &redis, "");
    let mut b = Node::start("127.0.0.3", "b", &redis, "");
    let mut ann = connect(a.addr, "/ws").await;
    ann.login("ann").await;
    let mut bob = connect(a.addr, "/ws").await;
    bob.login("bob").await;
    let mut cy = connect(b.addr, "/ws").await;
    cy.login("cy").await;
    wait_users(&mut ann, &["ann", "bob", "cy"]).await;
    wait_users(&mut cy, &["ann", "bob", "cy"]).await;
    // A call in progress between the nodes.
    ann.send(json!({"type": "offer", "name": "cy", "offer": {}}))
        .await;
    cy.recv_type("offer").await;
    cy.send(json!({"type": "answer", "name": "ann", "answer": {}}))
        .await;
    ann.recv_type("answer").await;

    redis.stop();
    let stopped = Instant::now();
    for seq in 0..20 {
        ann.send(json!({"type": "offer", "name": "bob", "offer": {"seq": seq}}))
            .await;
        let offer = bob.recv_type("offer").await;
        assert_eq!(offer["offer"]["seq"], seq, "{offer}");
    }
    ann.send(json!({"type": "message", "text": "still here"}))
        .await;
    assert_eq!(bob.recv_type("message").await["text"], "still here");
    let mut late = connect(a.addr, "/ws").await;
    let refused = login_reply(&mut late, json!({"type": "login", "name": "dee"})).await;
    assert_eq!(refused["success"], false, "{refused}");
    assert_eq!(refused["reason"], "cluster-unavailable", "{refused}");
    assert!(
        refused["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{refused}"
    );
    assert!(
        a.log_text().contains("cluster degraded"),
        "log: {}",
        a.log_text()
    );

    tokio::time::sleep(Duration::from_secs(3).saturating_sub(stopped.elapsed())).await;
    redis.resume();
    // Logins work again (bounded polling: the nodes reconnect within a few seconds).
    let deadline = Instant::now() + Duration::from_secs(15);
    let _dee = loop {
        let mut dee = connect(a.addr, "/ws").await;
        let reply = login_reply(&mut dee, json!({"type": "login", "name": "dee"})).await;
        if reply["success"] == true {
            break dee;
        }
        assert!(Instant::now() < deadline, "logins still refused: {reply}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // Both nodes were running throughout, and the cluster is whole again.
    let want = json!(["ann", "bob", "cy", "dee"]);
    let whole = try_recv_until(&mut cy, Duration::from_secs(12), |f| {
        f["type"] == "userlist" && f["users"] == want
    });
    if whole.await.is_none() {
        panic!("A: {}\nB: {}", a.log_text(), b.log_text());
    }
    ann.send(json!({"type": "message", "text": "back"})).await;
    let chat = recv_until(&mut cy, Duration::from_secs(5), |f| f["type"] == "message").await;
    assert_eq!(chat["text"], "back");
    // The call survived: nobody was told the other left, and its messages cross again.
    ann.send(json!({"type": "candidate", "name": "cy", "candidate": {"c": 1}}))
        .await;
    let next = recv_until(&mut cy, Duration::from_secs(5), |f| {
        f["type"] == "candidate" || f["type"] == "leave"
    })
    .await;
    assert_eq!(next["type"], "candidate", "{next}");
    let seen = try_recv_until(&mut ann, Duration::from_millis(300), |f| {
        f["type"] == "leave"
    })
    .await;
    assert!(seen.is_none(), "ann was told cy left: {seen:?}");
    assert!(a.running() && b.running(), "a node exited");
}

//! The limits that keep one client from hurting others, over real sockets: Origin, connections
//! per address, frame size, message rate, a client that never reads, a client that never
//! answers pings, and shutdown closing everyone with 1001.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{code, connect, start, try_connect, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn foreign_origin_is_refused_with_403_and_our_own_is_accepted() {
    let running = start("").await;
    let addr = running.http_addr;
    let port = addr.port();
    assert_eq!(
        try_connect(addr, "/ws", &[("Origin", "https://evil.example")])
            .await
            .err(),
        Some(403)
    );
    let lookalike = format!("http://localhost:{port}.evil.example");
    assert_eq!(
        try_connect(addr, "/ws", &[("Origin", &lookalike)])
            .await
            .err(),
        Some(403)
    );
    for origin in [
        format!("http://localhost:{port}"),
        format!("http://LOCALHOST:{port}"),
        format!("http://127.0.0.1:{port}"),
    ] {
        assert!(
            try_connect(addr, "/ws", &[("Origin", &origin)])
                .await
                .is_ok(),
            "{origin}"
        );
    }
    running.shutdown().await;
}

#[tokio::test]
async fn connections_per_address_are_limited() {
    let running = start("[signaling]\nmax_connections_per_ip = 2\n").await;
    let addr = running.http_addr;
    let first = connect(addr, "/ws").await;
    let _second = connect(addr, "/ws").await;
    assert_eq!(try_connect(addr, "/ws", &[]).await.err(), Some(429));
    drop(first);
    // The slot comes back once the server has seen the first connection end.
    let deadline = Instant::now() + WAIT;
    loop {
        match try_connect(addr, "/ws", &[]).await {
            Ok(_) => break,
            Err(429) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(status) => panic!("slot never came back (status {status})"),
        }
    }
    running.shutdown().await;
}

#[tokio::test]
async fn oversize_frame_closes_with_1009() {
    let running = start("").await;
    let mut client = connect(running.http_addr, "/ws").await;
    client.login("ann").await;
    let big = json!({"type":"message","text":"x".repeat(70 * 1024)}).to_string();
    // The server may close before the whole frame is written; either way it must close 1009.
    let _ = client.ws.send(Message::Text(big.into())).await;
    assert_eq!(code(&client.closed().await), Some(1009));
    running.shutdown().await;
}

#[tokio::test]
async fn excess_messages_are_refused_and_a_flood_is_closed() {
    let running = start("[signaling]\nmessages_per_second = 1\nmessage_burst = 5\n").await;
    let mut client = connect(running.http_addr, "/ws").await;
    client.login("ann").await; // one of the 1 + 5 tokens
    for i in 0..40 {
        let frame = json!({"type":"message","text":format!("m{i}")});
        if client
            .ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let (mut chats, mut refused) = (0, 0);
    let close = loop {
        let next = tokio::time::timeout(WAIT, client.ws.next())
            .await
            .expect("frames in time");
        match next {
            Some(Ok(Message::Text(text))) => {
                let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                match frame["type"].as_str() {
                    Some("message") => chats += 1,
                    Some("error") => {
                        assert_eq!(frame["code"], "rate-limited");
                        refused += 1;
                    }
                    // The presence batch with this client's own login may come at any point.
                    Some("userlist") => {}
                    _ => panic!("unexpected {frame}"),
                }
            }
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            None | Some(Err(_)) => break None,
        }
    };
    assert!((5..=7).contains(&chats), "{chats} chats got through");
    assert!(refused >= 1, "excess messages get rate-limited errors");
    assert_eq!(code(&close), Some(1008), "a sustained flood is closed");
    running.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_while_others_keep_working() {
    let running = start(
        "[signaling]\noutbound_queue = 8\nmessages_per_second = 100000\nmessage_burst = 100000\n",
    )
    .await;
    let addr = running.http_addr;
    let mut slow = connect(addr, "/ws").await;
    slow.login("slow").await;
    let mut sender = connect(addr, "/ws").await;
    sender.login("sender").await;
    let mut watcher = connect(addr, "/ws").await;
    watcher.login("watcher").await;
    sender.wait_user_list(&["sender", "slow", "watcher"]).await;

    // From here on nobody reads `slow`. The sender pushes ~60 KiB relays at it until the server
    // gives up on it (bounded: at most 2000 frames, i.e. well past any socket buffers). The
    // sender keeps reading (the errors for relays to `slow` once it is gone pile up otherwise)
    // until the watcher's call-request shows that it is unaffected.
    let (mut tx, mut rx) = sender.ws.split();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let pusher = tokio::spawn(async move {
        let blob = "x".repeat(60 * 1024);
        for _ in 0..2000 {
            if stop_flag.load(Ordering::Relaxed) {
                break;
            }
            let frame =
                json!({"type":"new-ice-candidate","target":"slow","candidate":{"data":blob}})
                    .to_string();
            if tx.send(Message::Text(frame.into())).await.is_err() {
                break;
            }
        }
    });
    let reader = tokio::spawn(async move {
        for _ in 0..10_000 {
            let Some(Ok(Message::Text(text))) = rx.next().await else {
                continue;
            };
            let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
            if frame["type"] == "call-request" {
                return Some(frame);
            }
        }
        None
    });
    let cut = tokio::time::timeout(
        Duration::from_secs(30),
        watcher.wait_user_list(&["sender", "watcher"]),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    cut.expect("the slow client was cut off in time");
    tokio::time::timeout(Duration::from_secs(30), pusher)
        .await
        .expect("pusher stops")
        .unwrap();

    // The others are unaffected.
    watcher
        .send(json!({"type":"call-request","target":"sender"}))
        .await;
    let ring = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the sender reads the ring in time")
        .unwrap()
        .expect("a call-request");
    assert_eq!(ring["name"], "watcher");
    running.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed() {
    let running = start("[signaling]\nping_interval_secs = 1\npong_timeout_secs = 2\n").await;
    let addr = running.http_addr;
    let mut silent = connect(addr, "/ws").await;
    silent.login("silent").await;
    let mut awake = connect(addr, "/ws").await;
    awake.login("awake").await;
    // `awake` keeps reading (tokio-tungstenite answers pings while reading); `silent` does not.
    let gone =
        tokio::time::timeout(Duration::from_secs(10), awake.wait_user_list(&["awake"])).await;
    gone.expect("the silent client was dropped");
    // Several more ping rounds pass while `awake` reads (and so answers); it stays connected.
    let quiet = tokio::time::timeout(Duration::from_secs(3), awake.recv()).await;
    assert!(quiet.is_err(), "nothing to read: {quiet:?}");
    awake.send(json!({"type":"message","text":"alive"})).await;
    assert_eq!(awake.recv_type("message").await["text"], "alive");
    drop(silent);
    running.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_client_with_1001_within_5_seconds() {
    let running = start("").await;
    let addr = running.http_addr;
    let mut clients = Vec::new();
    for name in ["ann", "bob", "carol"] {
        let mut client = connect(addr, "/ws").await;
        client.login(name).await;
        clients.push(client);
    }
    let never_logged_in = connect(addr, "/ws").await;
    clients.push(never_logged_in);
    let started = Instant::now();
    let stopping = tokio::spawn(running.shutdown());
    for client in &mut clients {
        let close = client.closed().await;
        assert_eq!(code(&close), Some(1001));
        assert_eq!(close.unwrap().reason.as_str(), "going away");
    }
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown within 5 s")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        try_connect_refused(addr).await,
        "no new connections after shutdown"
    );
}

async fn try_connect_refused(addr: std::net::SocketAddr) -> bool {
    let url = common::ws_url(addr, "/ws");
    matches!(
        tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url)).await,
        Ok(Err(_))
    )
}

#[tokio::test]
async fn a_message_just_under_the_frame_limit_is_relayed_intact() {
    let running = start("").await;
    let addr = running.http_addr;
    let mut ann = connect(addr, "/ws").await;
    ann.login("ann").await;
    let mut bob = connect(addr, "/ws").await;
    bob.login("bob").await;
    // 60 KiB of body is far past the 8 KiB initial read buffer, inside the 64 KiB limit.
    let sdp = "v".repeat(60 * 1024);
    ann.send(json!({"type":"video-offer","target":"bob","sdp":sdp}))
        .await;
    let offer = bob.recv_type("video-offer").await;
    assert_eq!(offer["sdp"].as_str().map(str::len), Some(sdp.len()));
    assert_eq!(offer["name"], "ann");
    running.shutdown().await;
}

//! The relay writes its own frames (src/signaling/wire.rs) while tungstenite only reads, so
//! what tungstenite used to answer by itself is callbox's job now: a client's ping gets its
//! pong, a client's close gets its echo and then the end of the TCP stream, and a burst of
//! relayed messages arrives whole and in order. Over real sockets with tungstenite's client.

mod common;

use std::time::Duration;

use common::{ann_and_bob, connect, start};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_clients_ping_gets_a_pong_with_its_payload() {
    let server = start("").await;
    let mut client = connect(server.http_addr, "/ws").await;
    client.login("ann").await;
    let payload = b"are you there?".to_vec();
    client
        .ws
        .send(Message::Ping(payload.clone().into()))
        .await
        .expect("send ping");
    for _ in 0..100 {
        let next = tokio::time::timeout(WAIT, client.ws.next())
            .await
            .expect("a frame in time")
            .expect("connection open")
            .expect("frame");
        if let Message::Pong(got) = next {
            assert_eq!(got.as_ref(), payload.as_slice());
            return;
        }
    }
    panic!("no pong within 100 frames");
}

#[tokio::test]
async fn a_clients_close_is_echoed_with_its_code_and_reason_then_the_stream_ends() {
    let server = start("").await;
    let mut client = connect(server.http_addr, "/ws").await;
    client.login("ann").await;
    let close = CloseFrame {
        code: CloseCode::from(4000),
        reason: "bye".into(),
    };
    client
        .ws
        .send(Message::Close(Some(close)))
        .await
        .expect("send close");
    let mut echoed = None;
    for _ in 0..100 {
        match tokio::time::timeout(WAIT, client.ws.next())
            .await
            .expect("the server answers in time")
        {
            Some(Ok(Message::Close(frame))) => {
                echoed = Some(frame);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close echo, got {other:?}"),
        }
    }
    let frame = echoed.expect("a close frame").expect("with a code");
    assert_eq!(u16::from(frame.code), 4000);
    assert_eq!(frame.reason.as_str(), "bye");
    // After the echo the server ends the TCP stream: the client sees the end, not a hang.
    let after = tokio::time::timeout(WAIT, client.ws.next())
        .await
        .expect("the stream ends in time");
    assert!(!matches!(after, Some(Ok(Message::Text(_)))), "{after:?}");
}

#[tokio::test]
async fn a_burst_of_relayed_messages_arrives_whole_and_in_order() {
    let server = start("").await;
    let (mut ann, mut bob) = ann_and_bob(server.http_addr).await;
    // Under the default rate limit (20/s, burst 200): a burst the writer batches.
    const BURST: usize = 150;
    let candidate = "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host ".repeat(8);
    for i in 0..BURST {
        ann.send(json!({
            "type": "candidate",
            "name": "bob",
            "candidate": {"candidate": format!("{candidate}{i}"), "sdpMLineIndex": 0},
        }))
        .await;
    }
    for i in 0..BURST {
        let got = bob.recv_type("candidate").await;
        assert_eq!(
            got["candidate"]["candidate"],
            format!("{candidate}{i}"),
            "message {i}"
        );
    }
}

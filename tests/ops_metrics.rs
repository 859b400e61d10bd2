//! Prometheus metrics scraped over HTTP from a running server with people logged in, a call,
//! two TURN allocations relaying both ways, and a certbot-style certificate; plus `/readyz`.

mod common;
mod turn_support;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request; the whole response as text.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    tokio::time::timeout(common::WAIT, tcp.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

/// The value of the sample line that starts with `series ` (name plus labels).
fn sample(text: &str, series: &str) -> u64 {
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .expect("number")
}

#[tokio::test]
async fn scrape_shows_connections_users_rooms_and_calls_and_readyz_answers() {
    let running = common::start("[metrics]\nlisten = \"127.0.0.1:0\"\n").await;
    let metrics = running.metrics_addr.expect("metrics listener bound");
    let ready = http_get(running.http_addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let before = http_get(metrics, "/metrics").await;
    assert!(before.starts_with("HTTP/1.1 200"), "{before}");
    assert!(
        before.contains("content-type: text/plain; version=0.0.4"),
        "{before}"
    );
    assert_eq!(sample(&before, "callbox_users_logged_in"), 0);
    assert!(
        !before.contains("callbox_turn_"),
        "TURN is off: no TURN series"
    );

    let (mut ann, mut bob) = common::ann_and_bob(running.http_addr).await;
    ann.send(json!({"type": "video-offer", "target": "bob", "sdp": {}}))
        .await;
    assert_eq!(bob.recv_type("video-offer").await["name"], "ann");
    let _lurker = common::connect(running.http_addr, "/ws?room=other").await;
    let text = http_get(metrics, "/metrics").await;
    assert_eq!(sample(&text, "callbox_websocket_connections"), 3);
    assert_eq!(sample(&text, "callbox_users_logged_in"), 2);
    assert_eq!(sample(&text, "callbox_rooms"), 1);
    assert_eq!(sample(&text, "callbox_calls"), 1);
    assert!(
        !text.contains("ann") && !text.contains("bob"),
        "no user names in metrics"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn scrape_shows_allocations_relayed_traffic_refusals_and_certificate_expiry() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["call.example.com".into()]).expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (
        dir.path().join("fullchain.pem"),
        dir.path().join("privkey.pem"),
    );
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key");
    let config = callbox::config::Config::parse(&format!(
        "[server]\npublic_host = \"call.example.com\"\nlisten = \"127.0.0.1:0\"\n\
         [tls]\nenabled = true\ncert = {cert:?}\nkey = {key:?}\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n\
         [turn]\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = []\non_https_port = false\n"
    ))
    .expect("config");
    let running = callbox::app::start(config).await.expect("start");
    let metrics = running.metrics_addr.expect("metrics listener bound");
    let turn = Arc::clone(running.turn.as_ref().expect("turn"));
    let ((alice, bob), (relay_a, relay_b)) = turn_support::alice_and_bob_allocated(&turn).await;
    let b_addr = webrtc_util::Conn::local_addr(&relay_b).expect("relay b");
    let a_addr = webrtc_util::Conn::local_addr(&relay_a).expect("relay a");
    // b must permit a before a's datagrams get through.
    let _ = webrtc_util::Conn::send_to(&relay_b, b"open", a_addr).await;
    assert!(
        turn_support::relay_once(&relay_a, &relay_b, b_addr, b"to bob")
            .await
            .is_some()
    );
    assert!(
        turn_support::relay_once(&relay_b, &relay_a, a_addr, b"to alice")
            .await
            .is_some()
    );

    let (user, _) = turn_support::rest_credentials(&turn, "mallory");
    let guesser = turn_support::udp_client(turn.udp_addrs()[0], &user, "wrong").await;
    assert!(
        guesser.allocate().await.is_err(),
        "a wrong password is refused"
    );

    let text = http_get(metrics, "/metrics").await;
    assert_eq!(sample(&text, "callbox_turn_allocations"), 2);
    for direction in ["to_peer", "from_peer"] {
        let bytes = format!("callbox_turn_relayed_bytes_total{{direction=\"{direction}\"}}");
        let packets = format!("callbox_turn_relayed_packets_total{{direction=\"{direction}\"}}");
        assert!(sample(&text, &bytes) >= 6, "{bytes}");
        assert!(sample(&text, &packets) >= 1, "{packets}");
    }
    assert!(
        sample(&text, "callbox_turn_refusals_total{code=\"401\"}") >= 1,
        "the wrong password is counted"
    );
    let expiry = sample(&text, "callbox_tls_certificate_expiry_timestamp_seconds");
    assert!(
        expiry > 4_000_000_000,
        "rcgen certificates run to 4096: {expiry}"
    );
    assert!(
        !text.contains("alice") && !text.contains("mallory") && !text.contains("127.0.0.1"),
        "no names or addresses"
    );
    drop((alice, bob, guesser));
    running.shutdown().await;
}

#[tokio::test]
async fn scrape_counts_signaling_messages_errors_and_refusals_by_fixed_labels() {
    let running = common::start("[metrics]\nlisten = \"127.0.0.1:0\"\n").await;
    let metrics = running.metrics_addr.expect("metrics listener bound");
    let refused = common::try_connect(
        running.http_addr,
        "/ws",
        &[("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(refused.err(), Some(403));
    let (mut ann, mut bob) = common::ann_and_bob(running.http_addr).await;
    ann.send(json!({"type": "video-offer", "target": "bob", "sdp": {}}))
        .await;
    assert_eq!(bob.recv_type("video-offer").await["name"], "ann");
    ann.send_text("{not json".into()).await;
    assert_eq!(ann.recv_type("error").await["code"], "invalid-json");
    ann.send(json!({"type": "state", "target": "bob", "state": "replaced"}))
        .await;
    ann.recv_type("error").await;

    let text = http_get(metrics, "/metrics").await;
    let at_least = |series: &str, n: u64| assert!(sample(&text, series) >= n, "{series}");
    at_least("callbox_signaling_messages_total{type=\"login\"}", 2);
    at_least("callbox_signaling_messages_total{type=\"video-offer\"}", 1);
    at_least("callbox_signaling_errors_total{code=\"invalid-json\"}", 1);
    at_least("callbox_signaling_errors_total{code=\"unknown-type\"}", 1);
    at_least("callbox_signaling_refusals_total{reason=\"origin\"}", 1);
    // The client's own `type` never becomes a label: it counts nowhere but as an error.
    assert!(!text.contains("\"state\""), "{text}");
    assert!(!text.contains("ann") && !text.contains("evil"), "{text}");
    running.shutdown().await;
}

#[tokio::test]
async fn scrape_shows_permissions_channels_and_turn_refusals_by_reason() {
    let config = callbox::config::Config::parse(
        "[server]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [turn]\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = []\non_https_port = false\n\
         max_allocations_per_user = 1\n",
    )
    .expect("config");
    let running = callbox::app::start(config).await.expect("start");
    let metrics = running.metrics_addr.expect("metrics listener bound");
    let turn = Arc::clone(running.turn.as_ref().expect("turn"));
    let server = turn.udp_addrs()[0];
    let (user, pass) = turn_support::rest_credentials(&turn, "carol");
    let mut carol = turn_support::RawClient::new(server, &user, &pass).await;
    assert_eq!(carol.allocate().await.map(|r| r.code), Some(0));
    // A public peer: a permission and a channel are only table entries, no datagram leaves.
    let public: SocketAddr = "192.0.32.10:5000".parse().expect("addr");
    assert_eq!(
        carol.create_permission(&[public]).await.map(|r| r.code),
        Some(0)
    );
    assert_eq!(
        carol.channel_bind(0x4001, public).await.map(|r| r.code),
        Some(0)
    );
    let lan: SocketAddr = "10.1.2.3:5000".parse().expect("addr");
    assert_eq!(
        carol.create_permission(&[lan]).await.map(|r| r.code),
        Some(403)
    );
    let mapped: SocketAddr = "[::ffff:192.0.32.10]:5000".parse().expect("addr");
    assert_eq!(
        carol.create_permission(&[mapped]).await.map(|r| r.code),
        Some(403)
    );
    // The same login from a second transport: over its one allocation.
    let mut again = turn_support::RawClient::new(server, &user, &pass).await;
    assert_eq!(again.allocate().await.map(|r| r.code), Some(486));

    let text = http_get(metrics, "/metrics").await;
    let at_least = |series: &str, n: u64| assert!(sample(&text, series) >= n, "{series}");
    at_least("callbox_turn_permissions", 1);
    at_least("callbox_turn_channels", 1);
    at_least("callbox_turn_peer_refusals_total{reason=\"denied\"}", 1);
    at_least(
        "callbox_turn_peer_refusals_total{reason=\"embedded_ipv4\"}",
        1,
    );
    at_least(
        "callbox_turn_quota_refusals_total{quota=\"allocations_per_login\"}",
        1,
    );
    assert!(
        !text.contains("carol") && !text.contains("192.0.32.10"),
        "{text}"
    );
    drop((carol, again));
    running.shutdown().await;
}

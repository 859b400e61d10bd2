//! A CreatePermission naming several peers installs all of them (the crate alone installs only
//! the first): two peers permitted in one request can both send data that reaches the client.

mod turn_support;

use std::time::Duration;

use turn_support::*;
use webrtc_util::Conn as _;

#[tokio::test]
async fn one_create_permission_for_two_peers_lets_both_reach_the_client() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let (ua, pa) = rest_credentials(&server, "alice");
    let mut alice = RawClient::new(addr, &ua, &pa).await;
    let reply = alice.allocate().await.expect("answer");
    assert_eq!(reply.code, 0);
    let alice_relay = RawClient::relayed(&reply);
    // Two peers: Bob's and Carol's relays on this server (the only loopback peers allowed).
    let (ub, pb) = rest_credentials(&server, "bob");
    let (uc, pc) = rest_credentials(&server, "carol");
    let bob = udp_client(addr, &ub, &pb).await;
    let carol = udp_client(addr, &uc, &pc).await;
    let bob_relay = bob.allocate().await.expect("bob allocates");
    let carol_relay = carol.allocate().await.expect("carol allocates");
    let peers = [
        bob_relay.local_addr().expect("bob relay"),
        carol_relay.local_addr().expect("carol relay"),
    ];

    let permitted = alice.create_permission(&peers).await.expect("answer");
    assert_eq!(permitted.code, 0);
    // The client sees one answer for its one request.
    assert!(alice.next_data(Duration::from_millis(200)).await.is_none());

    let sends: [(&dyn webrtc_util::Conn, &[u8]); 2] =
        [(&bob_relay, b"from bob"), (&carol_relay, b"from carol")];
    for (relay, payload) in sends {
        let mut reached = false;
        for _ in 0..20 {
            let _ = relay.send_to(payload, alice_relay).await;
            if let Some((data, from)) = alice.next_data(Duration::from_millis(100)).await {
                if data == payload {
                    assert!(from.is_some_and(|f| peers.contains(&f)), "{from:?}");
                    reached = true;
                    break;
                }
            }
        }
        assert!(
            reached,
            "{} reaches alice",
            String::from_utf8_lossy(payload)
        );
    }
    server.close().await;
}

//! Credentials and allocations on a real server: an allocation outlives the expiry of the
//! credentials it was made with (Refresh, CreatePermission, ChannelBind and media keep
//! working), while new allocations with those credentials are refused.

mod turn_support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stun::message::METHOD_REFRESH;
use turn::proto::lifetime::Lifetime;
use turn_support::*;
use webrtc_util::Conn as _;

/// REST credentials of a live login that expire `secs` from now (signed with the test secret).
fn expiring_credentials(server: &callbox::turn::TurnServer, secs: u64) -> (String, String) {
    let (granted, _) = rest_credentials(server, "short-lived");
    let login = granted.split_once(':').expect("REST username").1;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let username = format!("{}:{login}", now + secs);
    let password = callbox::turn::credentials::rest_password(SECRET.as_bytes(), &username);
    (username, password)
}

/// Sends Send indications from `a` to `peer` until `peer_conn` receives one (bounded).
async fn reaches(a: &RawClient, peer: SocketAddr, peer_conn: &impl webrtc_util::Conn) -> bool {
    let mut buf = vec![0u8; 1500];
    for _ in 0..50 {
        a.send_indication(peer, b"still here").await;
        let got = tokio::time::timeout(Duration::from_millis(100), peer_conn.recv_from(&mut buf));
        if let Ok(Ok((n, _))) = got.await {
            if &buf[..n] == b"still here" {
                return true;
            }
        }
    }
    false
}

#[tokio::test]
async fn an_allocation_keeps_refreshing_and_relaying_after_its_credentials_expire() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let (user, pass) = expiring_credentials(&server, 2);
    let mut a = RawClient::new(addr, &user, &pass).await;
    let reply = a.allocate().await.expect("answer");
    assert_eq!(reply.code, 0);
    let a_relay = RawClient::relayed(&reply);
    let (ub, pb) = rest_credentials(&server, "bob");
    let b = udp_client(addr, &ub, &pb).await;
    let b_relay = b.allocate().await.expect("bob allocates");
    let b_addr = b_relay.local_addr().expect("bob relay address");
    // Bob's relay passes only datagrams from peers he permitted: this permits Alice's relay.
    let _ = b_relay.send_to(b"open", a_relay).await;

    // Let the credentials expire (the expiry is checked in whole seconds).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut late = RawClient::new(addr, &user, &pass).await;
    assert_eq!(late.allocate().await.expect("answer").code, 401, "expired");

    let refresh = a
        .request(
            METHOD_REFRESH,
            vec![Box::new(Lifetime(Duration::from_secs(600)))],
        )
        .await
        .expect("answer");
    assert_eq!(refresh.code, 0, "refresh after expiry");
    assert_eq!(
        a.create_permission(&[b_addr]).await.expect("answer").code,
        0
    );
    assert!(reaches(&a, b_addr, &b_relay).await, "media after expiry");
    assert_eq!(
        a.channel_bind(0x4001, b_addr).await.expect("answer").code,
        0
    );
    assert_eq!(server.stats().allocations, 2);
    server.close().await;
}

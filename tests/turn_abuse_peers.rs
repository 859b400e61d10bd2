//! What an authenticated client may do with peers: at most so many permissions and channels,
//! created at a bounded rate, and our own relay address only on ports that are live
//! allocations of this server (not some other local program's socket in the relay range).

mod turn_support;

use std::net::SocketAddr;
use std::time::Duration;

use callbox::turn::limits::TurnLimits;
use turn_support::*;

#[tokio::test]
async fn permissions_and_channels_past_the_cap_get_508() {
    let limits = TurnLimits {
        permissions_per_allocation: 4,
        channels_per_allocation: 2,
        ..TurnLimits::default()
    };
    let server = start_with_limits(config(), None, limits).await;
    let (u, p) = rest_credentials(&server, "alice");
    let mut c = RawClient::new(server.udp_addrs()[0], &u, &p).await;
    assert_eq!(c.allocate().await.unwrap().code, 0);
    let peer = |i: u8| SocketAddr::from(([8, 8, 8, i], 5000));
    for i in 1..=2 {
        assert_eq!(
            c.channel_bind(0x4000 + u16::from(i), peer(i))
                .await
                .unwrap()
                .code,
            0
        );
    }
    assert_eq!(c.channel_bind(0x4010, peer(3)).await.unwrap().code, 508);
    for i in 3..=4 {
        assert_eq!(c.create_permission(&[peer(i)]).await.unwrap().code, 0);
    }
    assert_eq!(c.create_permission(&[peer(5)]).await.unwrap().code, 508);
    // Refreshing what it holds is fine; the refusals are counted.
    assert_eq!(
        c.create_permission(&[peer(1), peer(4)]).await.unwrap().code,
        0
    );
    assert_eq!(c.channel_bind(0x4001, peer(1)).await.unwrap().code, 0);
    assert_eq!(server.stats().refused_508, 2);
    server.close().await;
}

#[tokio::test]
async fn creating_permissions_too_fast_gets_508() {
    let limits = TurnLimits {
        peer_creations_burst: 3.0,
        peer_creations_per_sec: 0.01,
        ..TurnLimits::default()
    };
    let server = start_with_limits(config(), None, limits).await;
    let (u, p) = rest_credentials(&server, "alice");
    let mut c = RawClient::new(server.udp_addrs()[0], &u, &p).await;
    assert_eq!(c.allocate().await.unwrap().code, 0);
    let codes: Vec<u16> = {
        let mut codes = Vec::new();
        for i in 1..=5u8 {
            let peer = SocketAddr::from(([8, 8, 4, i], 5000));
            codes.push(c.create_permission(&[peer]).await.unwrap().code);
        }
        codes
    };
    assert_eq!(codes, vec![0, 0, 0, 508, 508]);
    server.close().await;
}

#[tokio::test]
async fn own_relay_address_is_a_peer_on_live_relay_ports_only() {
    // A relay range above the ephemeral ports, so the victim socket below is outside it.
    let mut cfg = config();
    cfg.relay_port_min = 61000;
    cfg.relay_port_max = 61999;
    let server = start(cfg).await;
    let (u, p) = rest_credentials(&server, "alice");
    let mut c = RawClient::new(server.udp_addrs()[0], &u, &p).await;
    let relayed = RawClient::relayed(&c.allocate().await.unwrap());
    let mut other = RawClient::new(server.udp_addrs()[0], &u, &p).await;
    let live = RawClient::relayed(&other.allocate().await.unwrap());
    assert_eq!(c.create_permission(&[live]).await.unwrap().code, 0);
    assert_eq!(c.channel_bind(0x4002, live).await.unwrap().code, 0);
    // A port in the relay range that no allocation holds: another program's socket there
    // must not be reachable.
    let squatter = tokio::net::UdpSocket::bind("127.0.0.1:61777")
        .await
        .unwrap();
    let not_live = squatter.local_addr().unwrap();
    assert!(not_live != live && not_live != relayed);
    // A permission is IP-wide (RFC 8656 §9), so one for a relay-range port is granted even
    // when no allocation holds that port: a peer's relay candidates come and go, and a 403
    // here makes Firefox drop every candidate at our address. The port is checked per
    // datagram instead, and a channel (one exact address) is still refused.
    assert_eq!(c.create_permission(&[not_live]).await.unwrap().code, 0);
    assert_eq!(c.channel_bind(0x4003, not_live).await.unwrap().code, 403);
    // The crate's permission for 127.0.0.1 is IP-wide: Send indications to the squatter's
    // port are still dropped, and its datagrams to our relay do not reach the client.
    c.send_indication(not_live, b"should not arrive").await;
    let mut buf = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_millis(300), squatter.recv_from(&mut buf)).await;
    assert!(
        got.is_err(),
        "a Send indication reached a non-live relay-range port"
    );
    squatter.send_to(b"injected", relayed).await.unwrap();
    assert!(c.next_data(Duration::from_millis(300)).await.is_none());
    // Once the other allocation ends, its port is no peer any more: no channel to it.
    let reply = other
        .request(
            stun::message::METHOD_REFRESH,
            vec![Box::new(turn::proto::lifetime::Lifetime(Duration::ZERO))],
        )
        .await
        .unwrap();
    assert_eq!(reply.code, 0);
    assert!(eventually(|| server.stats().allocations == 1).await);
    let mut freed = false;
    for _ in 0..50 {
        if c.channel_bind(0x4004, live).await.unwrap().code == 403 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "an ended allocation's port stayed a peer");
    for port in [
        server.udp_addrs()[0].port(),
        server.tcp_addrs()[0].port(),
        22,
        8080,
    ] {
        let peer = SocketAddr::new(relayed.ip(), port);
        assert_eq!(
            c.create_permission(&[peer]).await.unwrap().code,
            403,
            "{peer}"
        );
    }

    // The permission for 127.0.0.1 (IP-wide in the crate) must not let Send indications
    // reach our other ports.
    let victim = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let victim_addr = victim.local_addr().unwrap();
    assert!(victim_addr.port() < 61000);
    c.send_indication(victim_addr, b"should not arrive").await;
    let mut buf = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_millis(300), victim.recv_from(&mut buf)).await;
    assert!(got.is_err(), "a Send indication reached a non-relay port");
    assert_eq!(server.stats().send_dropped, 2);
    server.close().await;
}

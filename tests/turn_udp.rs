//! TURN over UDP against the real server on loopback: allocation, relaying both ways, the peer
//! policy, quotas, credentials and the unauthenticated-flood bound.

mod turn_support;

use std::net::SocketAddr;
use std::time::Duration;

use callbox::turn::peer_policy::DENIED;
use turn_support::*;
use webrtc_util::Conn;

#[tokio::test]
async fn two_clients_relay_both_ways_with_rest_credentials() {
    let server = start(config()).await;
    let ((a, b), (ra, rb)) = alice_and_bob_allocated(&server).await;
    let (a_relay, b_relay) = (ra.local_addr().unwrap(), rb.local_addr().unwrap());
    assert_eq!(a_relay.ip().to_string(), "127.0.0.1");
    assert!(a_relay.port() >= 49152);
    assert_eq!(server.stats().allocations, 2);

    // b must permit a before a's datagrams get through, and the other way round.
    let _ = rb.send_to(b"open", a_relay).await;
    let (got, from) = relay_once(&ra, &rb, b_relay, b"from alice")
        .await
        .expect("a -> b");
    assert_eq!(got, b"from alice");
    assert_eq!(from, a_relay);
    let (got, from) = relay_once(&rb, &ra, a_relay, b"from bob")
        .await
        .expect("b -> a");
    assert_eq!(got, b"from bob");
    assert_eq!(from, b_relay);
    // Later packets go over the bound channel.
    for i in 0..5u8 {
        relay_once(&ra, &rb, b_relay, &[i; 100])
            .await
            .expect("channel data");
    }
    ra.close().await.unwrap();
    rb.close().await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
    server.close().await;
}

#[tokio::test]
async fn send_indications_and_channel_data_relay_between_raw_clients() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let (ua, pa) = rest_credentials(&server, "alice");
    let (ub, pb) = rest_credentials(&server, "bob");
    let mut a = RawClient::new(addr, &ua, &pa).await;
    let mut b = RawClient::new(addr, &ub, &pb).await;
    let ra = RawClient::relayed(&a.allocate().await.unwrap());
    let rb = RawClient::relayed(&b.allocate().await.unwrap());
    assert_eq!(a.create_permission(&[rb]).await.unwrap().code, 0);
    assert_eq!(b.create_permission(&[ra]).await.unwrap().code, 0);

    a.send_indication(rb, b"indication").await;
    let (data, peer) = b
        .next_data(Duration::from_secs(2))
        .await
        .expect("data indication");
    assert_eq!(data, b"indication");
    assert_eq!(peer, Some(ra));

    assert_eq!(b.channel_bind(0x4001, ra).await.unwrap().code, 0);
    a.send_indication(rb, b"over a channel").await;
    let (data, peer) = b
        .next_data(Duration::from_secs(2))
        .await
        .expect("channel data");
    assert_eq!(data, b"over a channel");
    assert_eq!(
        peer, None,
        "b bound a channel, so data arrives as ChannelData"
    );
    server.close().await;
}

#[tokio::test]
async fn every_denied_peer_range_is_refused_with_403() {
    let server = start(config()).await;
    let (u, p) = rest_credentials(&server, "alice");
    let mut c = RawClient::new(server.udp_addrs()[0], &u, &p).await;
    assert_eq!(c.allocate().await.unwrap().code, 0);
    let mut refused = 0;
    let mut samples: Vec<String> = DENIED
        .iter()
        .map(|cidr| {
            let net: ipnet::IpNet = cidr.parse().unwrap();
            // An address inside the range other than its network address, when there is one.
            net.hosts().nth(1).unwrap_or(net.network()).to_string()
        })
        .collect();
    samples.extend(
        [
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "::",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
        ]
        .map(String::from),
    );
    for ip in &samples {
        let peer = SocketAddr::new(ip.parse().unwrap(), 50000);
        let reply = c.create_permission(&[peer]).await.expect("a reply");
        assert_eq!(reply.code, 403, "CreatePermission to {peer}");
        let reply = c.channel_bind(0x4000, peer).await.expect("a reply");
        assert_eq!(reply.code, 403, "ChannelBind to {peer}");
        refused += 2;
    }
    // Every XOR-PEER-ADDRESS counts, not just the first.
    let ok: SocketAddr = "8.8.8.8:5000".parse().unwrap();
    let bad: SocketAddr = "[::ffff:127.0.0.1]:50000".parse().unwrap();
    assert_eq!(c.create_permission(&[ok, bad]).await.unwrap().code, 403);
    assert_eq!(server.stats().refused_403, refused + 1);
    server.close().await;
}

#[tokio::test]
async fn quotas_refuse_with_486_per_user_and_508_in_total() {
    let mut cfg = config();
    cfg.max_allocations_per_user = 2;
    cfg.max_allocations = 3;
    let server = start(cfg).await;
    let addr = server.udp_addrs()[0];
    let (u, p) = rest_credentials(&server, "alice");
    let mut alice = Vec::new();
    for _ in 0..2 {
        let mut c = RawClient::new(addr, &u, &p).await;
        assert_eq!(c.allocate().await.unwrap().code, 0);
        alice.push(c);
    }
    let mut third = RawClient::new(addr, &u, &p).await;
    assert_eq!(third.allocate().await.unwrap().code, 486);
    let (ub, pb) = rest_credentials(&server, "bob");
    let mut bob = RawClient::new(addr, &ub, &pb).await;
    assert_eq!(bob.allocate().await.unwrap().code, 0);
    let (uc, pc) = rest_credentials(&server, "carol");
    let mut carol = RawClient::new(addr, &uc, &pc).await;
    assert_eq!(carol.allocate().await.unwrap().code, 508);
    let stats = server.stats();
    assert_eq!(
        (stats.refused_486, stats.refused_508, stats.allocations),
        (1, 1, 3)
    );

    // Refresh with lifetime 0 frees a slot, and alice may allocate again.
    let reply = alice[0]
        .request(
            stun::message::METHOD_REFRESH,
            vec![Box::new(turn::proto::lifetime::Lifetime(Duration::ZERO))],
        )
        .await
        .unwrap();
    assert_eq!(reply.code, 0);
    assert!(eventually(|| server.stats().allocations == 2).await);
    assert_eq!(third.allocate().await.unwrap().code, 0);
    server.close().await;
}

#[tokio::test]
async fn bad_credentials_are_refused_with_401() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let (user, pass) = rest_credentials(&server, "alice");
    let expired_user = "1000000000:alice".to_string();
    let expired_pass = callbox::turn::credentials::rest_password(SECRET.as_bytes(), &expired_user);
    let other_secret =
        callbox::turn::credentials::rest_password(b"not-our-secret-0123456789", &user);
    let cases = [
        ("wrong password", user.clone(), "wrong".to_string(), None),
        ("expired", expired_user, expired_pass, None),
        ("other secret", user.clone(), other_secret, None),
        ("unknown user", "mallory".to_string(), "x".to_string(), None),
        (
            "wrong realm",
            user.clone(),
            pass.clone(),
            Some("evil.example"),
        ),
    ];
    let allocate = || -> Vec<Box<dyn stun::message::Setter>> {
        vec![Box::new(turn::proto::reqtrans::RequestedTransport {
            protocol: turn::proto::PROTO_UDP,
        })]
    };
    for (what, u, p, realm) in cases {
        let mut c = RawClient::new(addr, &u, &p).await;
        let challenge = c
            .request(stun::message::METHOD_ALLOCATE, allocate())
            .await
            .unwrap();
        assert_eq!(challenge.code, 401, "{what}: first, unsigned");
        if let Some(realm) = realm {
            c.realm = realm.to_string();
        }
        let reply = c
            .request(stun::message::METHOD_ALLOCATE, allocate())
            .await
            .unwrap();
        assert_eq!(reply.code, 401, "{what}");
        // The refusal names our realm and keeps the nonce usable.
        assert_eq!(c.realm, HOST);
    }
    assert_eq!(server.stats().refused_401, 5);
    assert_eq!(server.stats().allocations, 0);
    // The static user from the config works.
    let mut tool = RawClient::new(addr, "tool", "toolpass").await;
    assert_eq!(tool.allocate().await.unwrap().code, 0);
    assert_eq!(server.stats().allocations, 1);
    server.close().await;
}

#[tokio::test]
async fn binding_requests_are_answered_without_credentials() {
    let server = start(config()).await;
    let c = udp_client(server.udp_addrs()[0], "", "").await;
    let mapped = c.send_binding_request().await.unwrap();
    assert_eq!(mapped.ip().to_string(), "127.0.0.1");
    server.close().await;
}

#[tokio::test]
async fn a_flood_of_unauthenticated_requests_leaves_state_bounded() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let c = RawClient::new(addr, "x", "y").await;
    let (raw, _) = c.build(stun::message::METHOD_ALLOCATE, vec![], false);
    let mut sent = 0u32;
    for _ in 0..100_000 {
        // Sending may outrun the socket buffer; count only what left.
        if c.socket.try_send_to(&raw, addr).is_ok() {
            sent += 1;
        } else {
            tokio::task::yield_now().await;
        }
    }
    // Plus 50 more sources, to see the limiter table and client count stay small.
    let mut others = Vec::new();
    for _ in 0..50 {
        let o = RawClient::new(addr, "x", "y").await;
        for _ in 0..100 {
            let _ = o.socket.try_send_to(&raw, addr);
        }
        others.push(o);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = server.stats();
    eprintln!("sent {sent} from one source + 5000 from 50: {stats:?}");
    assert!(sent > 10_000);
    // Everything that reached the crate (and could cost a nonce) fits in the per-IP burst:
    // all 51 sockets share 127.0.0.1.
    assert!(stats.unauth_passed <= 20, "{stats:?}");
    assert!(stats.limiter_entries <= 1, "{stats:?}");
    assert!(stats.clients <= 51, "{stats:?}");
    server.close().await;
}

#[tokio::test]
async fn external_ip_is_advertised_as_the_relay_address() {
    let mut cfg = config();
    cfg.external_ip = Some("203.0.113.9".parse().unwrap());
    let server = start(cfg).await;
    let (u, p) = rest_credentials(&server, "alice");
    let mut c = RawClient::new(server.udp_addrs()[0], &u, &p).await;
    let relayed = RawClient::relayed(&c.allocate().await.unwrap());
    assert_eq!(relayed.ip().to_string(), "203.0.113.9");
    assert!(relayed.port() >= 49152);
    // The advertised address counts as our own: a peer on live relay ports only. A permission
    // is IP-wide, so any relay-range port gets one; a channel needs a live relay port.
    assert_eq!(c.create_permission(&[relayed]).await.unwrap().code, 0);
    let peer = SocketAddr::new(relayed.ip(), relayed.port() ^ 1);
    assert_eq!(c.create_permission(&[peer]).await.unwrap().code, 0);
    assert_eq!(c.channel_bind(0x4001, peer).await.unwrap().code, 403);
    let peer = SocketAddr::new(relayed.ip(), 443);
    assert_eq!(c.create_permission(&[peer]).await.unwrap().code, 403);
    server.close().await;
}

#[tokio::test]
async fn ice_servers_carry_every_url_and_fresh_rest_credentials() {
    let server = start(config()).await;
    let (ice, ttl) = server.ice_servers_for("alice");
    assert_eq!(ttl, Duration::from_secs(3600));
    let urls: Vec<String> = ice[0]["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    let (udp, tcp) = (server.udp_addrs()[0].port(), server.tcp_addrs()[0].port());
    assert_eq!(
        urls,
        vec![
            format!("stun:localhost:{udp}"),
            format!("turn:localhost:{udp}?transport=udp"),
            format!("turn:localhost:{tcp}?transport=tcp"),
        ]
    );
    let username = ice[0]["username"].as_str().unwrap();
    let (expiry, login) = username.split_once(':').unwrap();
    // An opaque per-login id, not the name the login was keyed by.
    assert!(login.len() >= 22 && !login.contains("alice"), "{username}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 3600 - 5..=now + 3600 + 5).contains(&expiry));
    assert_eq!(
        ice[0]["credential"].as_str().unwrap(),
        callbox::turn::credentials::rest_password(SECRET.as_bytes(), username)
    );
    server.close().await;
}

#[tokio::test]
async fn behind_1to1_nat_two_relays_of_this_server_reach_each_other_without_hairpinning() {
    let mut cfg = config();
    // A documentation address stands in for the public IP: nothing can route it, so data
    // only arrives if the server short-cuts relay-to-relay traffic to the bound address.
    cfg.external_ip = Some("203.0.113.9".parse().unwrap());
    let server = start(cfg).await;
    let addr = server.udp_addrs()[0];
    let (u, p) = rest_credentials(&server, "alice");
    let mut a = RawClient::new(addr, &u, &p).await;
    let mut b = RawClient::new(addr, &u, &p).await;
    let ra = RawClient::relayed(&a.allocate().await.unwrap());
    let rb = RawClient::relayed(&b.allocate().await.unwrap());
    assert_eq!(a.create_permission(&[rb]).await.unwrap().code, 0);
    assert_eq!(b.create_permission(&[ra]).await.unwrap().code, 0);
    a.send_indication(rb, b"via the public address").await;
    let (data, from) = b.next_data(Duration::from_secs(2)).await.expect("hairpin");
    assert_eq!(data, b"via the public address");
    assert_eq!(
        from,
        Some(ra),
        "the peer is shown as its advertised relay address"
    );
    server.close().await;
}

#[tokio::test]
async fn host_addresses_other_than_relay_addresses_are_refused_even_when_allow_listed() {
    let host_ip = if_addrs::get_if_addrs()
        .unwrap()
        .into_iter()
        .map(|i| i.ip())
        .find(|ip| !ip.is_loopback())
        .expect("this test needs one non-loopback interface address");
    // Open everything, so only the host-address rule can refuse.
    let mut cfg = config();
    cfg.allow_peers = vec!["0.0.0.0/0".into(), "::/0".into()];
    let server = start(cfg).await;
    let (u, p) = rest_credentials(&server, "alice");
    let mut c = RawClient::new(server.udp_addrs()[0], &u, &p).await;
    c.allocate().await.unwrap();
    for port in [22, 50000] {
        let peer = SocketAddr::new(host_ip, port);
        let reply = c.create_permission(&[peer]).await.unwrap();
        assert_eq!(reply.code, 403, "{peer}");
    }
    // The same request for an address that is not ours passes (no data is sent to it).
    let other = c
        .create_permission(&["8.8.8.8:50000".parse().unwrap()])
        .await
        .unwrap();
    assert_eq!(other.code, 0);
    server.close().await;
}

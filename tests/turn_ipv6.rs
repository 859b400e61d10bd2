//! Dual stack: listeners on IPv4 and IPv6, relays in the family the client asks for.

mod turn_support;

use std::net::SocketAddr;
use std::time::Duration;

use turn_support::*;

#[tokio::test]
async fn relays_are_made_in_the_requested_family_and_own_ipv6_relay_is_a_peer_on_relay_ports_only()
{
    let mut cfg = config();
    cfg.listen_udp = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    cfg.relay_ips = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    let server = start(cfg).await;
    let v6 = server.udp_addrs()[1];
    assert!(v6.is_ipv6());
    let (u, p) = rest_credentials(&server, "alice");

    // An IPv6 client asking for an IPv6 relay, and one over IPv6 asking for IPv4.
    let mut a = RawClient::new(v6, &u, &p).await;
    let ra = RawClient::relayed(&a.allocate_family(Some(true)).await.unwrap());
    assert_eq!(ra.ip().to_string(), "::1");
    let mut b = RawClient::new(v6, &u, &p).await;
    let rb = RawClient::relayed(&b.allocate_family(Some(false)).await.unwrap());
    assert_eq!(rb.ip().to_string(), "127.0.0.1");

    // ::1 is our own relay address: a peer on relay ports only.
    let mut c = RawClient::new(v6, &u, &p).await;
    let rc = RawClient::relayed(&c.allocate_family(Some(true)).await.unwrap());
    assert_eq!(a.create_permission(&[rc]).await.unwrap().code, 0);
    assert_eq!(c.create_permission(&[ra]).await.unwrap().code, 0);
    let other: SocketAddr = SocketAddr::new(ra.ip(), 22);
    assert_eq!(a.create_permission(&[other]).await.unwrap().code, 403);
    // A mapped IPv4 address on an IPv6 relay is refused before the family check.
    let mapped: SocketAddr = format!("[::ffff:127.0.0.1]:{}", rb.port()).parse().unwrap();
    assert_eq!(a.create_permission(&[mapped]).await.unwrap().code, 403);

    a.send_indication(rc, b"v6 relay").await;
    let (data, from) = c
        .next_data(Duration::from_secs(2))
        .await
        .expect("relayed over ::1");
    assert_eq!((data.as_slice(), from), (&b"v6 relay"[..], Some(ra)));
    server.close().await;
}

#[tokio::test]
async fn ipv6_relay_without_an_ipv6_relay_address_is_refused_with_440() {
    let server = start(config()).await;
    let (u, p) = rest_credentials(&server, "alice");
    let mut a = RawClient::new(server.udp_addrs()[0], &u, &p).await;
    assert_eq!(a.allocate_family(Some(true)).await.unwrap().code, 440);
    assert_eq!(server.stats().allocations, 0);
    server.close().await;
}

#[tokio::test]
async fn ipv4_clients_of_a_dual_stack_listener_see_their_ipv4_address() {
    let mut cfg = config();
    cfg.listen_udp = vec!["[::]:0".parse().unwrap()];
    let server = start(cfg).await;
    let port = server.udp_addrs()[0].port();
    let v4: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let c = udp_client(v4, "", "").await;
    let mapped = c.send_binding_request().await.unwrap();
    assert_eq!(mapped.ip().to_string(), "127.0.0.1");
    let (u, p) = rest_credentials(&server, "alice");
    let mut raw = RawClient::new(v4, &u, &p).await;
    let reply = raw.allocate().await.unwrap();
    assert_eq!(reply.code, 0);
    let mut xor = stun::xoraddr::XorMappedAddress::default();
    use stun::message::Getter;
    xor.get_from(&reply.msg).unwrap();
    assert_eq!(xor.ip.to_string(), "127.0.0.1");
    server.close().await;
}

#[tokio::test]
async fn special_purpose_ipv6_peers_from_the_iana_registry_are_refused() {
    let mut cfg = config();
    cfg.listen_udp = vec!["[::1]:0".parse().unwrap()];
    cfg.relay_ips = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    let server = start(cfg).await;
    let (u, p) = rest_credentials(&server, "alice");
    let mut a = RawClient::new(server.udp_addrs()[0], &u, &p).await;
    RawClient::relayed(&a.allocate_family(Some(true)).await.unwrap());
    // Documentation (RFC 9637), SRv6 SIDs, ORCHIDv2, TURN anycast, AS112, the dummy prefix.
    for ip in [
        "3fff::1",
        "5f00::1",
        "2001:20::1",
        "2001:1::2",
        "2620:4f:8000::1",
        "100:0:0:1::1",
    ] {
        let peer = SocketAddr::new(ip.parse().unwrap(), 5000);
        let reply = a.create_permission(&[peer]).await.unwrap();
        assert_eq!(reply.code, 403, "{peer}");
    }
    // A global unicast address is still a peer.
    let public: SocketAddr = "[2606:4700::1111]:5000".parse().unwrap();
    assert_eq!(a.create_permission(&[public]).await.unwrap().code, 0);
    server.close().await;
}

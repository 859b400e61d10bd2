//! callbox's own data path (src/turn/fastpath/) against the real server on loopback: what it
//! relays, and what it must not, in both directions, over UDP and TCP. (Lifetimes of
//! permissions and channels are unit-tested on the table with time as an input.)

mod turn_support;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use turn_support::*;

const QUIET: Duration = Duration::from_millis(300);

/// A server that lets relays reach 127.0.0.2 (loopback is denied by default), and a peer
/// socket there.
async fn server_and_peer() -> (callbox::turn::TurnServer, UdpSocket) {
    let mut c = config();
    c.allow_peers = vec!["127.0.0.2/32".into()];
    let server = start(c).await;
    let peer = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    (server, peer)
}

async fn allocated(server: &callbox::turn::TurnServer) -> (RawClient, SocketAddr) {
    let mut c = RawClient::new(server.udp_addrs()[0], "tool", "toolpass").await;
    let reply = c.allocate().await.expect("allocate answer");
    assert_eq!(reply.code, 0);
    let relayed = RawClient::relayed(&reply);
    (c, relayed)
}

async fn peer_gets(peer: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    let r = tokio::time::timeout(QUIET, peer.recv_from(&mut buf)).await;
    r.ok()?.ok().map(|(n, from)| (buf[..n].to_vec(), from))
}

fn channel_data(number: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = number.to_be_bytes().to_vec();
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test]
async fn channel_data_on_an_unbound_channel_is_dropped_and_a_bound_one_relays_both_ways() {
    let (server, peer) = server_and_peer().await;
    let (mut c, relayed) = allocated(&server).await;
    let peer_addr = peer.local_addr().unwrap();
    c.send(&channel_data(0x4000, b"before any bind")).await;
    assert_eq!(peer_gets(&peer).await, None);
    assert_eq!(c.channel_bind(0x4000, peer_addr).await.unwrap().code, 0);
    c.send(&channel_data(0x4001, b"unbound channel")).await;
    assert_eq!(peer_gets(&peer).await, None);
    c.send(&channel_data(0x4000, b"bound channel")).await;
    assert_eq!(
        peer_gets(&peer).await,
        Some((b"bound channel".to_vec(), relayed))
    );
    // The peer answers: it arrives as ChannelData, since a channel is bound to that address.
    peer.send_to(b"answer", relayed).await.unwrap();
    assert_eq!(c.next_data(STEP).await, Some((b"answer".to_vec(), None)));
    server.close().await;
}

#[tokio::test]
async fn send_indications_need_a_permission_and_data_indications_reach_the_client() {
    let (server, peer) = server_and_peer().await;
    let (mut c, relayed) = allocated(&server).await;
    let peer_addr = peer.local_addr().unwrap();
    c.send_indication(peer_addr, b"no permission yet").await;
    assert_eq!(peer_gets(&peer).await, None);
    peer.send_to(b"unasked", relayed).await.unwrap();
    assert_eq!(c.next_data(QUIET).await, None);

    assert_eq!(c.create_permission(&[peer_addr]).await.unwrap().code, 0);
    c.send_indication(peer_addr, b"permitted").await;
    assert_eq!(
        peer_gets(&peer).await,
        Some((b"permitted".to_vec(), relayed))
    );
    // An odd length, so the DATA attribute is padded.
    peer.send_to(b"from the peer", relayed).await.unwrap();
    assert_eq!(
        c.next_data(STEP).await,
        Some((b"from the peer".to_vec(), Some(peer_addr)))
    );
    // The permission is per IP (as in the crate): another port of that peer gets through.
    let other = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    other.send_to(b"other port", relayed).await.unwrap();
    let other_addr = other.local_addr().unwrap();
    assert_eq!(
        c.next_data(STEP).await,
        Some((b"other port".to_vec(), Some(other_addr)))
    );
    server.close().await;
}

#[tokio::test]
async fn nothing_is_relayed_once_the_allocation_is_deleted() {
    let (server, peer) = server_and_peer().await;
    let (mut c, relayed) = allocated(&server).await;
    let peer_addr = peer.local_addr().unwrap();
    assert_eq!(c.channel_bind(0x4000, peer_addr).await.unwrap().code, 0);
    c.send(&channel_data(0x4000, b"live")).await;
    assert!(peer_gets(&peer).await.is_some());
    let lifetime0 = turn::proto::lifetime::Lifetime(Duration::ZERO);
    let reply = c
        .request(stun::message::METHOD_REFRESH, vec![Box::new(lifetime0)])
        .await
        .unwrap();
    assert_eq!(reply.code, 0);
    c.send(&channel_data(0x4000, b"after delete")).await;
    c.send_indication(peer_addr, b"after delete").await;
    assert_eq!(peer_gets(&peer).await, None);
    let _ = peer.send_to(b"to a deleted relay", relayed).await;
    assert_eq!(c.next_data(QUIET).await, None);
    server.close().await;
}

#[tokio::test]
async fn a_multi_peer_create_permission_opens_the_data_path_for_every_peer() {
    let mut cfg = config();
    cfg.allow_peers = vec!["127.0.0.2/32".into(), "127.0.0.3/32".into()];
    let server = start(cfg).await;
    let (mut c, relayed) = allocated(&server).await;
    let near = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let far = UdpSocket::bind("127.0.0.3:0").await.unwrap();
    let stranger = UdpSocket::bind("127.0.0.4:0").await.unwrap();
    let (near_addr, far_addr) = (near.local_addr().unwrap(), far.local_addr().unwrap());
    // The guard splits the request and the crate answers each part; the data path must learn
    // both, including the part whose answer the client never sees.
    let reply = c.create_permission(&[near_addr, far_addr]).await.unwrap();
    assert_eq!(reply.code, 0);
    for (peer, addr) in [(&near, near_addr), (&far, far_addr)] {
        peer.send_to(b"hello", relayed).await.unwrap();
        assert_eq!(
            c.next_data(STEP).await,
            Some((b"hello".to_vec(), Some(addr)))
        );
        c.send_indication(addr, b"back").await;
        assert_eq!(peer_gets(peer).await, Some((b"back".to_vec(), relayed)));
    }
    stranger.send_to(b"not permitted", relayed).await.unwrap();
    assert_eq!(c.next_data(QUIET).await, None);
    server.close().await;
}

/// Clients and datagrams in a burst, each way (more datagrams than the listener reads per
/// wakeup, more than a default-sized socket buffer holds).
const BURST_CLIENTS: usize = 16;
const BURST_EACH: usize = 64;

/// A burst from many clients, sent while the server cannot run (this test's runtime has one
/// thread), so it all waits in the listening socket: every datagram must reach the peer, in
/// each client's order; then a burst from the peer to every relay must reach every client, in
/// order too.
#[tokio::test]
async fn a_burst_from_many_clients_arrives_complete_and_in_order_both_ways() {
    let mut cfg = config();
    cfg.allow_peers = vec!["127.0.0.2/32".into()];
    cfg.max_allocations_per_user = BURST_CLIENTS;
    let server = start(cfg).await;
    let peer = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let _ = socket2::SockRef::from(&peer).set_recv_buffer_size(4 << 20);
    let peer_addr = peer.local_addr().unwrap();
    let mut clients = Vec::new();
    for i in 0..BURST_CLIENTS {
        let ip = format!("127.0.6.{}", i + 1);
        let mut c = RawClient::new_from(&ip, server.udp_addrs()[0], "tool", "toolpass").await;
        let reply = c.allocate().await.expect("allocate answer");
        let relayed = RawClient::relayed(&reply);
        assert_eq!(c.channel_bind(0x4000, peer_addr).await.unwrap().code, 0);
        clients.push((c, relayed));
    }
    for seq in 0..BURST_EACH {
        for (i, (c, _)) in clients.iter().enumerate() {
            c.send(&channel_data(0x4000, &[i as u8, seq as u8])).await;
        }
    }
    let mut next = [0usize; BURST_CLIENTS];
    for _ in 0..BURST_CLIENTS * BURST_EACH {
        let (payload, from) = peer_gets(&peer).await.expect("every datagram relayed");
        let i = usize::from(payload[0]);
        assert_eq!(from, clients[i].1, "client {i} relayed from its own relay");
        assert_eq!(usize::from(payload[1]), next[i], "client {i} in order");
        next[i] += 1;
    }
    for (c, _) in &clients {
        let _ = socket2::SockRef::from(&c.socket).set_recv_buffer_size(1 << 20);
    }
    for seq in 0..BURST_EACH {
        for (_, relayed) in &clients {
            peer.send_to(&[seq as u8], relayed).await.unwrap();
        }
    }
    for (i, (c, _)) in clients.iter().enumerate() {
        for seq in 0..BURST_EACH {
            let got = c.next_data(STEP).await;
            assert_eq!(
                got,
                Some((vec![seq as u8], None)),
                "client {i}, datagram {seq}"
            );
        }
    }
    server.close().await;
}

/// The listeners, sessions and relay sockets run on the TURN runtime, not the caller's: with
/// this test's one-thread runtime blocked in a plain blocking receive, a packet is still
/// relayed both ways (on the caller's runtime nothing would move until the test yields).
#[tokio::test]
async fn relaying_goes_on_while_the_callers_runtime_is_blocked() {
    let (server, peer) = server_and_peer().await;
    let (mut c, relayed) = allocated(&server).await;
    let peer_addr = peer.local_addr().unwrap();
    assert_eq!(c.channel_bind(0x4000, peer_addr).await.unwrap().code, 0);
    let peer = peer.into_std().unwrap();
    peer.set_nonblocking(false).unwrap();
    peer.set_read_timeout(Some(STEP)).unwrap();
    c.socket
        .try_send_to(&channel_data(0x4000, b"out"), c.server)
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = peer
        .recv_from(&mut buf)
        .expect("relayed with the test's runtime blocked");
    assert_eq!((&buf[..n], from), (&b"out"[..], relayed));
    let client = c.socket.into_std().unwrap();
    client.set_nonblocking(false).unwrap();
    client.set_read_timeout(Some(STEP)).unwrap();
    peer.send_to(b"back", relayed).unwrap();
    let n = client
        .recv(&mut buf)
        .expect("relayed back with the test's runtime blocked");
    assert_eq!(&buf[..n], &channel_data(0x4000, b"back")[..]);
    server.close().await;
}

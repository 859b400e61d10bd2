//! TURN stays per node in a cluster: each node's relays may reach the other nodes' relay
//! addresses on their relay ports (learned through Redis), and nothing else of theirs.

mod cluster_support;
mod common;
mod turn_support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use callbox::turn::peer_policy::{PeerPolicy, Refusal};
use cluster_support::{Node, Redis};
use serde_json::Value;
use webrtc_util::Conn as _;

const SECRET: &str = "3f9a1c7e5b2d8046af13ce97b5d20c4e81f6a39d7c05be24";

/// The UDP TURN server and credentials of a login reply, at the node's own address.
fn turn_entry(login: &Value, node_ip: IpAddr) -> (SocketAddr, String, String) {
    let servers = login["iceServers"].as_array().expect("iceServers");
    for server in servers {
        let urls: Vec<&str> = match &server["urls"] {
            Value::String(url) => vec![url.as_str()],
            Value::Array(urls) => urls.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        for url in urls {
            let Some(hostport) = url.strip_suffix("?transport=udp") else {
                continue;
            };
            let port = hostport.rsplit(':').next().and_then(|p| p.parse().ok());
            if let Some(port) = port {
                let user = server["username"].as_str().expect("username").to_string();
                let pass = server["credential"]
                    .as_str()
                    .expect("credential")
                    .to_string();
                return (SocketAddr::new(node_ip, port), user, pass);
            }
        }
    }
    panic!("no UDP TURN entry in {login}");
}

/// A relay port range of its own for each run, so parallel runs do not collide.
fn ports() -> (u16, u16) {
    let base = 20_000 + (std::process::id() % 200) as u16 * 100;
    (base, base + 49)
}

fn turn_section(ip: &str, (min, max): (u16, u16)) -> String {
    format!(
        "[turn]\nlisten_udp = [\"{ip}:0\"]\nlisten_tcp = []\nrelay_ips = [\"{ip}\"]\n\
         relay_port_min = {min}\nrelay_port_max = {max}\nsecrets = [\"{SECRET}\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_reaches_another_nodes_relay_on_its_relay_ports_only() {
    let redis = Redis::start();
    let (min, max) = ports();
    let (b_min, b_max) = (max + 1, max + 50);
    let a = Node::start(
        "127.0.0.2",
        "a",
        &redis,
        &turn_section("127.0.0.2", (min, max)),
    );
    let b = Node::start(
        "127.0.0.3",
        "b",
        &redis,
        &turn_section("127.0.0.3", (b_min, b_max)),
    );
    let mut ann = common::connect(a.addr, "/ws").await;
    let (a_turn, a_user, a_pass) = turn_entry(&ann.login("ann").await, a.addr.ip());
    let mut bob = common::connect(b.addr, "/ws").await;
    let (b_turn, b_user, b_pass) = turn_entry(&bob.login("bob").await, b.addr.ip());

    let mut ann_turn = turn_support::RawClient::new(a_turn, &a_user, &a_pass).await;
    let reply = ann_turn.allocate().await.expect("answer");
    assert_eq!(reply.code, 0, "ann allocates on her own node");
    let ann_relay = turn_support::RawClient::relayed(&reply);
    assert_eq!(ann_relay.ip(), a.addr.ip());
    let bob_client = turn_support::udp_client(b_turn, &b_user, &b_pass).await;
    let bob_relay = bob_client
        .allocate()
        .await
        .expect("bob allocates on his node");
    let bob_addr = bob_relay.local_addr().expect("bob relay address");
    assert_eq!(bob_addr.ip(), b.addr.ip());

    // Node a learns node b's relays from Redis within a heartbeat or two.
    let mut code = None;
    for _ in 0..40 {
        code = ann_turn
            .create_permission(&[bob_addr])
            .await
            .map(|r| r.code);
        if code == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(code, Some(0), "node b's relay address is a permitted peer");
    let outside = SocketAddr::new(bob_addr.ip(), b_max + 1);
    let refused = ann_turn
        .create_permission(&[outside])
        .await
        .expect("answer");
    assert_eq!(
        refused.code, 403,
        "node b's address outside its relay ports"
    );
    let stranger = SocketAddr::new("127.0.0.9".parse().expect("ip"), bob_addr.port());
    let refused = ann_turn
        .create_permission(&[stranger])
        .await
        .expect("answer");
    assert_eq!(refused.code, 403, "loopback of no node stays denied");

    // Media crosses: bob permits ann's relay, ann's node relays to bob's node.
    let _ = bob_relay.send_to(b"open", ann_relay).await;
    let mut got = None;
    let mut buf = vec![0u8; 1500];
    for _ in 0..50 {
        ann_turn.send_indication(bob_addr, b"node to node").await;
        let recv = tokio::time::timeout(Duration::from_millis(100), bob_relay.recv_from(&mut buf));
        if let Ok(Ok((n, from))) = recv.await {
            got = Some((buf[..n].to_vec(), from));
            break;
        }
    }
    assert_eq!(got, Some((b"node to node".to_vec(), ann_relay)));
}

#[test]
fn the_cluster_allow_set_opens_each_nodes_relay_ports_and_nothing_around_them() {
    let policy = PeerPolicy::new(vec!["127.0.0.2".parse().unwrap()], vec![], 50000..=50099);
    let other: IpAddr = "10.1.2.3".parse().unwrap();
    let peer = |port| SocketAddr::new(other, port);
    assert_eq!(
        policy.check(peer(50050)),
        Err(Refusal::Denied),
        "private: denied by default"
    );
    policy.set_cluster_relays(vec![(other, 50000..=50099)]);
    assert_eq!(policy.check(peer(50050)), Ok(()));
    assert_eq!(policy.check(peer(22)), Err(Refusal::Denied));
    assert_eq!(
        policy.check(SocketAddr::new("10.1.2.4".parse().unwrap(), 50050)),
        Err(Refusal::Denied)
    );
    let mapped = SocketAddr::new("::ffff:10.1.2.3".parse().unwrap(), 50050);
    assert_eq!(policy.check(mapped), Err(Refusal::EmbeddedIpv4));
    policy.set_cluster_relays(Vec::new());
    assert_eq!(
        policy.check(peer(50050)),
        Err(Refusal::Denied),
        "a node gone is closed again"
    );
}

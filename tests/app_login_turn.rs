//! Where signaling and TURN meet: the credentials a login reply hands out allocate on callbox's
//! own TURN server, and two logged-in users can relay to each other through it.

mod common;
mod turn_support;

use std::net::SocketAddr;

use serde_json::{json, Value};
use webrtc_util::Conn as _;

/// The `turn:` URL with `transport=udp` from a login's iceServers, with its credentials.
fn udp_turn_entry(ice_servers: &Value) -> (SocketAddr, String, String) {
    let servers = ice_servers.as_array().expect("iceServers is an array");
    for server in servers {
        let urls: Vec<&str> = match &server["urls"] {
            Value::String(url) => vec![url.as_str()],
            Value::Array(urls) => urls.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        for url in urls {
            if let Some(rest) = url.strip_prefix("turn:") {
                if let Some(hostport) = rest.strip_suffix("?transport=udp") {
                    let port = hostport
                        .rsplit(':')
                        .next()
                        .expect("port")
                        .parse::<u16>()
                        .expect("port number");
                    return (
                        SocketAddr::from(([127, 0, 0, 1], port)),
                        server["username"].as_str().expect("username").to_string(),
                        server["credential"]
                            .as_str()
                            .expect("credential")
                            .to_string(),
                    );
                }
            }
        }
    }
    panic!("no turn:...?transport=udp entry in {ice_servers}");
}

fn app_config() -> callbox::config::Config {
    callbox::config::Config::parse(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [turn]\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = [\"127.0.0.1:0\"]\n",
    )
    .expect("config")
}

#[tokio::test]
async fn login_credentials_allocate_and_relay_between_two_users() {
    let running = callbox::app::start(app_config()).await.expect("start");

    let mut alice = common::connect(running.http_addr, "/ws").await;
    let mut bob = common::connect(running.http_addr, "/ws").await;
    let alice_login = alice.login("alice").await;
    let bob_login = bob.login("bob").await;
    assert_eq!(alice_login["ttl"].as_u64(), Some(3600), "{alice_login}");

    let (turn_addr, alice_user, alice_pass) = udp_turn_entry(&alice_login["iceServers"]);
    let (_, bob_user, bob_pass) = udp_turn_entry(&bob_login["iceServers"]);
    assert!(
        !alice_user.contains("alice"),
        "the REST username carries an opaque login id, not the name: {alice_user}"
    );
    assert_ne!(alice_pass, bob_pass);

    let a = turn_support::udp_client(turn_addr, &alice_user, &alice_pass).await;
    let b = turn_support::udp_client(turn_addr, &bob_user, &bob_pass).await;
    let a_relay = a
        .allocate()
        .await
        .expect("alice allocates with her login credentials");
    let b_relay = b
        .allocate()
        .await
        .expect("bob allocates with his login credentials");
    let b_addr = b_relay.local_addr().expect("bob relay address");
    let a_addr = a_relay.local_addr().expect("alice relay address");
    // Bob permits Alice first (a relay only passes datagrams from permitted peers).
    let _ = b_relay.send_to(b"open", a_addr).await;
    let (payload, from) = turn_support::relay_once(&a_relay, &b_relay, b_addr, b"hello bob")
        .await
        .expect("alice reaches bob through callbox's relay");
    assert_eq!(payload, b"hello bob");
    assert_eq!(from, a_addr);

    // A credential from the login reply with its password changed is refused.
    let forged = turn_support::udp_client(turn_addr, &alice_user, "not-the-password").await;
    assert!(forged.allocate().await.is_err());

    let _ = alice.send(json!({"type": "message", "text": "done"})).await;
    running.shutdown().await;
}

/// Two users logged in as "ann" in two rooms are two logins with their own TURN identity.
#[tokio::test]
async fn the_same_name_in_two_rooms_gets_two_turn_identities() {
    let running = callbox::app::start(app_config()).await.expect("start");
    let mut lobby = common::connect(running.http_addr, "/ws").await;
    let mut other = common::connect(running.http_addr, "/ws?room=other").await;
    let (_, lobby_user, _) = udp_turn_entry(&lobby.login("ann").await["iceServers"]);
    let (_, other_user, _) = udp_turn_entry(&other.login("ann").await["iceServers"]);
    let login_of = |u: &str| u.split_once(':').expect("REST username").1.to_string();
    assert_ne!(login_of(&lobby_user), login_of(&other_user));
    running.shutdown().await;
}

#[tokio::test]
async fn after_logout_its_credentials_are_refused_while_its_allocation_keeps_relaying() {
    let running = callbox::app::start(app_config()).await.expect("start");
    let turn = running.turn.clone().expect("TURN runs");
    let mut alice = common::connect(running.http_addr, "/ws").await;
    let mut bob = common::connect(running.http_addr, "/ws").await;
    let (turn_addr, alice_user, alice_pass) =
        udp_turn_entry(&alice.login("alice").await["iceServers"]);
    let (_, bob_user, bob_pass) = udp_turn_entry(&bob.login("bob").await["iceServers"]);
    assert_eq!(turn.stats().live_logins, 2);

    let mut a = turn_support::RawClient::new(turn_addr, &alice_user, &alice_pass).await;
    let reply = a.allocate().await.expect("answer");
    assert_eq!(reply.code, 0, "alice allocates while logged in");
    let a_relay = turn_support::RawClient::relayed(&reply);
    let b = turn_support::udp_client(turn_addr, &bob_user, &bob_pass).await;
    let b_relay = b.allocate().await.expect("bob allocates");
    let b_addr = b_relay.local_addr().expect("bob relay address");

    // Alice logs out (closes her WebSocket); the server revokes her login.
    drop(alice);
    assert!(
        turn_support::eventually(|| turn.stats().live_logins == 1).await,
        "the login is revoked when its connection ends"
    );
    let mut again = turn_support::RawClient::new(turn_addr, &alice_user, &alice_pass).await;
    assert_eq!(again.allocate().await.expect("answer").code, 401);

    // Her existing allocation keeps working: refresh, permission, channel, media both ways.
    let lifetime = turn::proto::lifetime::Lifetime(std::time::Duration::from_secs(600));
    let refresh = a
        .request(stun::message::METHOD_REFRESH, vec![Box::new(lifetime)])
        .await
        .expect("answer");
    assert_eq!(refresh.code, 0);
    assert_eq!(
        a.create_permission(&[b_addr]).await.expect("answer").code,
        0
    );
    assert_eq!(
        a.channel_bind(0x4000, b_addr).await.expect("answer").code,
        0
    );
    let _ = b_relay.send_to(b"open", a_relay).await;
    let mut delivered = false;
    let mut buf = vec![0u8; 1500];
    for _ in 0..50 {
        a.send_indication(b_addr, b"after logout").await;
        if let Ok(Ok((n, from))) = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            b_relay.recv_from(&mut buf),
        )
        .await
        {
            if &buf[..n] == b"after logout" && from == a_relay {
                delivered = true;
                break;
            }
        }
    }
    assert!(delivered, "alice's allocation still relays to bob");
    let _ = b_relay.send_to(b"to alice", a_relay).await;
    let mut reached = false;
    for _ in 0..5 {
        match a.next_data(turn_support::STEP).await {
            Some((data, _)) if data == b"to alice" => reached = true,
            Some(_) => continue, // the "open" sent before
            None => {}
        }
        break;
    }
    assert!(reached, "bob reaches alice through her allocation");
    assert_eq!(turn.stats().allocations, 2);
    running.shutdown().await;
}

/// The room a login is in reaches TURN through signaling: logins in one room share the
/// per-room cap, a login in another room does not.
#[tokio::test]
async fn logins_in_one_room_share_its_allocation_cap_and_another_room_does_not() {
    let running = callbox::app::start(
        callbox::config::Config::parse(
            "[server]\nlisten = \"127.0.0.1:0\"\n\
             [turn]\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = [\"127.0.0.1:0\"]\n\
             max_allocations = 10\nmax_allocations_per_room = 2\n",
        )
        .expect("config"),
    )
    .await
    .expect("start");
    let mut sockets = Vec::new();
    let mut codes = Vec::new();
    for (path, name) in [
        ("/ws", "a"),
        ("/ws", "b"),
        ("/ws", "c"),
        ("/ws?room=other", "d"),
    ] {
        let mut ws = common::connect(running.http_addr, path).await;
        let (addr, user, pass) = udp_turn_entry(&ws.login(name).await["iceServers"]);
        let mut client = turn_support::RawClient::new(addr, &user, &pass).await;
        codes.push(client.allocate().await.expect("answer").code);
        sockets.push((ws, client));
    }
    assert_eq!(
        codes,
        [0, 0, 486, 0],
        "the lobby's third login is over its room cap"
    );
    running.shutdown().await;
}

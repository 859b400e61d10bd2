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

#[tokio::test]
async fn login_credentials_allocate_and_relay_between_two_users() {
    let config = callbox::config::Config::parse(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [turn]\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = [\"127.0.0.1:0\"]\n",
    )
    .expect("config");
    let running = callbox::app::start(config).await.expect("start");

    let mut alice = common::connect(running.http_addr, "/ws").await;
    let mut bob = common::connect(running.http_addr, "/ws").await;
    let alice_login = alice.login("alice").await;
    let bob_login = bob.login("bob").await;
    assert!(
        alice_login["ttl"].as_u64().unwrap_or(0) > 3600,
        "{alice_login}"
    );

    let (turn_addr, alice_user, alice_pass) = udp_turn_entry(&alice_login["iceServers"]);
    let (_, bob_user, bob_pass) = udp_turn_entry(&bob_login["iceServers"]);
    assert!(
        alice_user.ends_with(":alice"),
        "REST username names the user: {alice_user}"
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

//! SIGHUP on the real binary: new access codes apply to the next login while people stay
//! logged in, listener and other restart-only changes are named in the log, and a broken file
//! keeps the running settings. The socket edge's limits hold for connections opened after the
//! reload while an open one keeps its own; ping timing stays restart-only. In TURN: a new secret signs the next credentials and the old
//! one stops verifying while an allocation made with it goes on, and a new `allow_peers`
//! applies to that same allocation's next CreatePermission.

mod common;
mod turn_support;

use std::net::SocketAddr;
use std::process::{Child, Command};

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn config(port: u16, code: &str, grace: u64) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace_secs = {grace}\n\
         [metrics]\nlisten = \"\"\n[turn]\nenabled = false\n\
         [signaling]\naccess_code = \"{code}\"\n"
    )
}

async fn login_result(addr: SocketAddr, name: &str, code: &str) -> (common::Client, bool) {
    let mut client = common::connect(addr, "/ws").await;
    client
        .send(json!({"type": "login", "name": name, "access_code": code}))
        .await;
    let reply = client.recv_type("login").await;
    (client, reply["success"] == true)
}

#[tokio::test]
async fn sighup_applies_access_codes_names_restart_keys_and_survives_a_bad_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    let port = common::free_port();
    std::fs::write(&path, config(port, "old-code", 4)).expect("write config");
    let (running, mut lines) = common::spawn_callbox(&path);
    lines.wait("callbox is running");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (mut ann, ok) = login_result(addr, "ann", "old-code").await;
    assert!(ok, "the starting code works");

    std::fs::write(&path, config(port + 1, "new-code", 9)).expect("rewrite config");
    signal(&running.0, "-HUP");
    lines.wait("SIGHUP: applied signaling.access_code");
    lines.wait("listeners changed, restart to apply: server.listen");
    lines.wait("changed, restart to apply: server.shutdown_grace_secs");
    assert!(
        !login_result(addr, "bob", "old-code").await.1,
        "old code refused"
    );
    let (_bob, ok) = login_result(addr, "bob", "new-code").await;
    assert!(ok, "new code accepted");
    ann.wait_user_list(&["ann", "bob"]).await;

    std::fs::write(&path, "[server]\nlisten = 5\n").expect("break config");
    signal(&running.0, "-HUP");
    let line = lines.wait("SIGHUP: keeping the running settings");
    assert!(line.contains("config.toml"), "{line}");
    let (_carol, ok) = login_result(addr, "carol", "new-code").await;
    assert!(ok, "the applied code still works after a bad file");

    signal(&running.0, "-TERM");
    lines.wait("SIGTERM: shutting down");
}

fn edge_config(port: u16, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[metrics]\nlisten = \"\"\n\
         [turn]\nenabled = false\n[signaling]\n{extra}"
    )
}

#[tokio::test]
async fn sighup_lowers_max_frame_bytes_for_new_connections_and_keeps_ping_timing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    let port = common::free_port();
    std::fs::write(&path, edge_config(port, "")).expect("write config");
    let (running, mut lines) = common::spawn_callbox(&path);
    lines.wait("callbox is running");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut ann = common::connect(addr, "/ws").await;
    ann.login("ann").await;

    let lower = "max_frame_bytes = 1024\nping_interval_secs = 7\n";
    std::fs::write(&path, edge_config(port, lower)).expect("rewrite config");
    signal(&running.0, "-HUP");
    lines.wait("SIGHUP: applied signaling.max_frame_bytes");
    lines.wait("changed, restart to apply: signaling.ping_interval_secs");
    // A 1.5 KB chat: over the new limit, under the one ann's connection started with.
    let chat = json!({"type": "message", "text": "x".repeat(1500)});
    ann.send(chat.clone()).await;
    let mut bob = common::connect(addr, "/ws").await;
    bob.login("bob").await;
    ann.wait_user_list(&["ann", "bob"]).await;
    // The server may close before the whole frame is written; either way it closes 1009.
    let _ = bob.ws.send(Message::Text(chat.to_string().into())).await;
    assert_eq!(common::code(&bob.closed().await), Some(1009));
    ann.send(chat).await;
    let mut carol = common::connect(addr, "/ws").await;
    carol.login("carol").await;
    ann.wait_user_list(&["ann", "carol"]).await;

    signal(&running.0, "-TERM");
    lines.wait("SIGTERM: shutting down");
}

const SECRET_A: &str = "9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
const SECRET_B: &str = "3f9a0c7e12b45d68e9f0a1b2c3d4e5f60a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d";

/// Relay ranges start above the kernel's ephemeral ports (32768-60999 by default), clear of
/// the listening ports common::free_port picks and of every port the OS hands out.
const RELAY_MIN: u16 = 61000;

fn turn_config(port: u16, turn_port: u16, secret: &str, allow: &str, relay_min: u16) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[metrics]\nlisten = \"\"\n\
         [turn]\nlisten_udp = [\"127.0.0.1:{turn_port}\"]\nlisten_tcp = []\n\
         on_https_port = false\nsecrets = [\"{secret}\"]\nallow_peers = [{allow}]\n\
         relay_port_min = {relay_min}\nrelay_port_max = 65535\n"
    )
}

/// Logs `name` in over /ws; the socket (which keeps the login live) and its TURN credentials.
async fn turn_login(addr: SocketAddr, name: &str) -> (common::Client, String, String) {
    let mut client = common::connect(addr, "/ws").await;
    let reply = client.login(name).await;
    let server = &reply["iceServers"][0];
    let user = server["username"]
        .as_str()
        .expect("TURN username")
        .to_string();
    let pass = server["credential"]
        .as_str()
        .expect("TURN password")
        .to_string();
    (client, user, pass)
}

#[tokio::test]
async fn sighup_swaps_turn_secrets_and_allow_peers_under_a_live_allocation() {
    let port = common::free_port();
    let turn_port = common::free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, turn_config(port, turn_port, SECRET_A, "", RELAY_MIN)).expect("write");
    let (running, mut lines) = common::spawn_callbox(&path);
    lines.wait("callbox is running");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let turn = SocketAddr::from(([127, 0, 0, 1], turn_port));
    let lan: SocketAddr = "10.1.2.3:5000".parse().expect("addr");
    let code = |r: Option<turn_support::Reply>| r.map(|r| r.code);

    let (_ann, old_user, old_pass) = turn_login(addr, "ann").await;
    let mut live = turn_support::RawClient::new(turn, &old_user, &old_pass).await;
    assert_eq!(code(live.allocate().await), Some(0));
    assert_eq!(code(live.create_permission(&[lan]).await), Some(403));

    let allow = "\"10.0.0.0/8\"";
    std::fs::write(
        &path,
        turn_config(port, turn_port, SECRET_B, allow, RELAY_MIN + 500),
    )
    .expect("write");
    signal(&running.0, "-HUP");
    let applied = lines.wait("SIGHUP: applied");
    assert!(
        applied.contains("turn.allow_peers") && applied.contains("turn.secrets"),
        "{applied}"
    );
    lines.wait("listeners changed, restart to apply: turn.relay_port_min");

    // The allocation made under the old secret goes on, and sees the new allow-list.
    assert_eq!(code(live.create_permission(&[lan]).await), Some(0));
    // Credentials from the old secret no longer make allocations; the new secret's do.
    let mut stale = turn_support::RawClient::new(turn, &old_user, &old_pass).await;
    assert_eq!(code(stale.allocate().await), Some(401));
    let (_bob, user, pass) = turn_login(addr, "bob").await;
    let mut fresh = turn_support::RawClient::new(turn, &user, &pass).await;
    assert_eq!(code(fresh.allocate().await), Some(0));

    // A placeholder secret is refused: the running secret stays.
    let placeholder = "replace-with-output-of: openssl rand -hex 32";
    std::fs::write(
        &path,
        turn_config(port, turn_port, placeholder, allow, RELAY_MIN + 500),
    )
    .expect("write");
    signal(&running.0, "-HUP");
    let line = lines.wait("SIGHUP: keeping the running settings");
    assert!(line.contains("turn.secrets"), "{line}");
    let (_cat, user, pass) = turn_login(addr, "cat").await;
    let mut after = turn_support::RawClient::new(turn, &user, &pass).await;
    assert_eq!(code(after.allocate().await), Some(0));
    signal(&running.0, "-TERM");
    lines.wait("SIGTERM: shutting down");
}

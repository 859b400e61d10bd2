//! Interop with clients nobody here wrote: coturn's `turnutils_uclient` and
//! `turnutils_stunclient` (Debian package `coturn`; install it before running these tests,
//! never run its `turnserver`) allocate and relay through callbox over UDP and TCP.

mod turn_support;

use std::process::Output;
use std::time::Duration;

use tokio::process::Command;
use turn_support::*;

/// Runs a coturn tool with a hard time limit; the child is killed (by its own handle) on
/// timeout or drop.
async fn run(tool: &str, args: &[String]) -> Output {
    let child = Command::new(tool).args(args).kill_on_drop(true).output();
    match tokio::time::timeout(Duration::from_secs(60), child).await {
        Ok(Ok(out)) => out,
        Ok(Err(err)) => {
            panic!("cannot run {tool} ({err}); install it with: apt-get install -y coturn")
        }
        Err(_) => panic!("{tool} did not finish within 60 s"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `-y`: two clients relay to each other through their allocations; `-n` messages each.
fn uclient_args(port: u16, tcp: bool, auth: &[&str], extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["-y", "-n", "10", "-z", "5", "-p", &port.to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if tcp {
        args.push("-t".into());
    }
    args.extend(auth.iter().chain(extra).map(|s| s.to_string()));
    args.push("127.0.0.1".into());
    args
}

fn assert_relayed_everything(out: &Output) {
    let t = text(out);
    assert!(out.status.success(), "uclient failed: {t}");
    assert!(t.contains("Total lost packets 0 (0.000000%)"), "{t}");
    assert!(
        t.contains("tot_recv_msgs=40"),
        "expected 2 clients x 2 x 10 messages back: {t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_uclient_relays_over_udp_with_a_static_user() {
    let server = start(config()).await;
    let port = server.udp_addrs()[0].port();
    let out = run(
        "turnutils_uclient",
        &uclient_args(port, false, &["-u", "tool", "-w", "toolpass"], &[]),
    )
    .await;
    assert_relayed_everything(&out);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_uclient_relays_over_udp_with_rest_credentials_and_send_indications() {
    let server = start(config()).await;
    let port = server.udp_addrs()[0].port();
    // -W: the tool mints its own REST username/password from the shared secret, for a live
    // login's id; -s: Send indications instead of channels.
    let login = live_login(&server);
    let out = run(
        "turnutils_uclient",
        &uclient_args(port, false, &["-W", SECRET, "-u", &login], &["-s"]),
    )
    .await;
    assert_relayed_everything(&out);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_uclient_relays_over_tcp() {
    let server = start(config()).await;
    let port = server.tcp_addrs()[0].port();
    let login = live_login(&server);
    let out = run(
        "turnutils_uclient",
        &uclient_args(port, true, &["-W", SECRET, "-u", &login], &[]),
    )
    .await;
    assert_relayed_everything(&out);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_uclient_with_the_secret_is_refused_for_a_name_that_is_no_live_login() {
    let server = start(config()).await;
    let port = server.udp_addrs()[0].port();
    // Knowing the secret's output for a display name is not enough: the login id must be live.
    let out = run(
        "turnutils_uclient",
        &uclient_args(port, false, &["-W", SECRET, "-u", "alice"], &["-n", "1"]),
    )
    .await;
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(server.stats().refused_401 >= 1, "{t}");
    assert_eq!(server.stats().allocations, 0);
    server.close().await;
}

/// The login id of a fresh live login, as the tool's `-u` with `-W` (it adds the expiry).
fn live_login(server: &callbox::turn::TurnServer) -> String {
    let (username, _) = rest_credentials(server, "interop-login");
    username
        .split_once(':')
        .expect("REST username")
        .1
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_uclient_is_refused_with_a_wrong_password() {
    let server = start(config()).await;
    let port = server.udp_addrs()[0].port();
    let out = run(
        "turnutils_uclient",
        &uclient_args(port, false, &["-u", "tool", "-w", "wrong"], &["-n", "1"]),
    )
    .await;
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("Cannot complete Allocation"), "{t}");
    assert!(server.stats().refused_401 >= 1);
    assert_eq!(server.stats().allocations, 0);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_stunclient_gets_its_reflexive_address() {
    let server = start(config()).await;
    let port = server.udp_addrs()[0].port();
    let out = run(
        "turnutils_stunclient",
        &["-p".to_string(), port.to_string(), "127.0.0.1".to_string()],
    )
    .await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("UDP reflexive addr: 127.0.0.1:"), "{t}");
    server.close().await;
}

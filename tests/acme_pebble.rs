//! Built-in ACME end to end against a real Pebble on loopback, with real validation: Pebble
//! connects to callbox's own HTTPS listener for TLS-ALPN-01 and to `server.http_redirect` for
//! HTTP-01. Each test checks, through a rustls client that trusts only Pebble's root, that
//! callbox serves a certificate Pebble issued on HTTPS and on TURN over TLS.

mod acme_support;

use std::path::Path;
use std::time::Duration;

use acme_support::{
    pebble_https_cert, start_pebble, tls_connect, wait_for_issued, Forwarder, WAIT,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOST: &str = "localhost";
/// A first order takes Pebble well under this; the bound only keeps a broken run finite.
const ISSUE_WITHIN: Duration = Duration::from_secs(60);

fn config(dir: &Path, forwarder: &Forwarder, extra_server: &str, extra_acme: &str) -> String {
    let ca = dir.join("pebble-cert.pem");
    let state = dir.join("state");
    format!(
        "[server]\npublic_host = \"{HOST}\"\nlisten = \"127.0.0.1:0\"\n{extra_server}\n\
         [metrics]\nlisten = \"\"\n\
         [tls]\nenabled = true\nacme = {{ domains = [\"{HOST}\"], email = \"ops@example.com\", \
         directory = \"https://{}/dir\", directory_ca = {ca:?}, state_dir = {state:?}{extra_acme} }}\n\
         [turn]\nlisten_udp = []\nlisten_tcp = []\nlisten_tls = [\"127.0.0.1:0\"]\n\
         relay_port_min = 20000\nrelay_port_max = 20100\n",
        forwarder.addr
    )
}

async fn start(text: &str) -> callbox::app::Running {
    let config = callbox::config::Config::parse(text).expect("config");
    tokio::time::timeout(WAIT, callbox::app::start(config))
        .await
        .expect("start in time")
        .expect("start")
}

#[tokio::test]
async fn tls_alpn_01_on_the_https_port_issues_for_every_listener_and_a_restart_uses_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    pebble_https_cert(dir.path());
    let forwarder = Forwarder::start().await;
    let text = config(dir.path(), &forwarder, "", "");
    // ACME errors (the CA's reasons) show in the output of a failing run.
    callbox::app::init_logging();
    let running = start(&text).await;
    let turn_tls = running.turn.as_ref().expect("turn").tls_addrs()[0];
    // Pebble validates TLS-ALPN-01 on callbox's HTTPS port; HTTP-01 is not offered a listener.
    let pebble = start_pebble(dir.path(), running.http_addr.port(), 9, 157_766_400).await;
    forwarder.forward_to(pebble.directory);
    let root = pebble.issuing_root(dir.path()).await;

    let issued = wait_for_issued(running.http_addr, HOST, &root, &[], ISSUE_WITHIN).await;
    let on_turn = wait_for_issued(turn_tls, HOST, &root, &[], WAIT).await;
    assert_eq!(
        on_turn, issued,
        "TURN over TLS presents the same certificate"
    );
    assert_eq!(pebble.logged("/sign-me-up"), 1, "one account created");
    let cache = dir
        .path()
        .join("state/acme")
        .join(format!("127.0.0.1_{}_dir", forwarder.addr.port()));
    for file in ["account.json", "fullchain.pem", "privkey.pem"] {
        assert!(cache.join(file).is_file(), "{file} cached in {cache:?}");
    }
    running.shutdown().await;

    // Without Pebble, a restart still serves the issued certificate at once, from the cache,
    // and does not even connect to the CA: no new order, no new account.
    drop(pebble);
    let before = forwarder.connections();
    let running = start(&text).await;
    let tls = tls_connect(running.http_addr, HOST, std::slice::from_ref(&root), &[])
        .await
        .expect("the cached Pebble certificate verifies");
    assert_eq!(acme_support::presented(&tls), issued);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        forwarder.connections(),
        before,
        "no ACME traffic on restart"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn http_01_on_the_redirect_listener_issues_and_renewal_switches_listeners_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    pebble_https_cert(dir.path());
    let forwarder = Forwarder::start().await;
    let text = config(
        dir.path(),
        &forwarder,
        "http_redirect = \"127.0.0.1:0\"",
        ", challenge = \"http-01\"",
    );
    let running = start(&text).await;
    let redirect = running.redirect_addr.expect("redirect listener");
    let turn_tls = running.turn.as_ref().expect("turn").tls_addrs()[0];
    // 15-second certificates: renewal is due 10 s after issue (a third of the lifetime left).
    let pebble = start_pebble(dir.path(), 9, redirect.port(), 15).await;
    forwarder.forward_to(pebble.directory);
    let root = pebble.issuing_root(dir.path()).await;
    let first = wait_for_issued(running.http_addr, HOST, &root, &[], ISSUE_WITHIN).await;

    // Anything else on the plain listener is sent to the same path on the HTTPS origin.
    let reply = plain_get(redirect, "/room/a?x=1").await;
    let location = format!(
        "location: https://{HOST}:{}/room/a?x=1",
        running.http_addr.port()
    );
    assert!(reply.starts_with("HTTP/1.1 301"), "{reply}");
    assert!(reply.to_ascii_lowercase().contains(&location), "{reply}");

    // A keep-alive HTTPS connection opened under the first certificate...
    let mut open = tls_connect(running.http_addr, HOST, std::slice::from_ref(&root), &[])
        .await
        .expect("handshake");
    assert!(healthz(&mut open).await, "first request");
    wait_for_issued(
        running.http_addr,
        HOST,
        &root,
        std::slice::from_ref(&first),
        ISSUE_WITHIN,
    )
    .await;
    // TURN over TLS switches too (to this renewal, or to the next one if it came meanwhile).
    wait_for_issued(turn_tls, HOST, &root, &[first], WAIT).await;
    // ...is still served after the switch, and the renewal reused the cached account.
    assert!(healthz(&mut open).await, "request after the renewal");
    assert_eq!(
        pebble.logged("/sign-me-up"),
        1,
        "one account for both orders"
    );
    running.shutdown().await;
}

/// GET /healthz on an open keep-alive connection; true on a 200 with body "ok".
async fn healthz(tls: &mut tokio_rustls::client::TlsStream<TcpStream>) -> bool {
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    if tls.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&reply).ends_with("ok") {
        match tokio::time::timeout(WAIT, tls.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => reply.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200")
}

async fn plain_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).to_string()
}

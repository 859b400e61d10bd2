//! What every client of the web listener gets: the security headers on every response (page,
//! 404, the relay's refusals), HSTS only over TLS; and an upgraded WebSocket that keeps its
//! listener slot for as long as it is open.

mod common;
mod web_edge_support;

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use web_edge_support::{header, host, start, WAIT};

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

fn assert_security_headers(response: &str, tls: bool) {
    let csp = header(response, "content-security-policy").unwrap_or_default();
    assert!(csp.starts_with("default-src 'none'"), "{response}");
    assert!(csp.contains("frame-ancestors 'none'"), "{response}");
    assert_eq!(header(response, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(response, "x-frame-options"), Some("DENY"));
    assert_eq!(header(response, "referrer-policy"), Some("no-referrer"));
    let hsts = header(response, "strict-transport-security");
    match tls {
        true => assert_eq!(hsts, Some("max-age=31536000"), "{response}"),
        false => assert_eq!(hsts, None, "{response}"),
    }
}

async fn check_every_kind_of_response(tls: bool) {
    let server = start(tls, "", "").await;
    let page = server.get_from(host(1), "/r/team").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert_security_headers(&page, tls);

    let missing = server.get_from(host(1), "/no-such-file.js").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert_security_headers(&missing, tls);

    let origin = format!("{UPGRADE}Origin: https://evil.example\r\n");
    let foreign = server.get_with(host(1), "/ws", &origin).await;
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    assert_security_headers(&foreign, tls);

    let bad_room = server.get_with(host(1), "/ws?room=%00", UPGRADE).await;
    assert!(bad_room.starts_with("HTTP/1.1 400"), "{bad_room}");
    assert_security_headers(&bad_room, tls);
    server.stop().await;
}

#[tokio::test]
async fn security_headers_are_on_every_response_over_plain_http_without_hsts() {
    check_every_kind_of_response(false).await;
}

#[tokio::test]
async fn security_headers_are_on_every_response_over_tls_with_hsts() {
    check_every_kind_of_response(true).await;
}

#[tokio::test]
async fn an_upgraded_websocket_keeps_its_listener_slot_until_it_closes() {
    let running = common::start("[signaling]\nmax_connections = 2\n").await;
    let addr = running.http_addr;
    let _ann = common::connect(addr, "/ws").await;
    let mut bob = common::connect(addr, "/ws").await;

    // Both slots are held by the WebSockets: a third client waits in the accept queue.
    let mut third = tokio::net::TcpStream::connect(addr).await.expect("connect");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    assert!(
        !web_edge_support::closed_within(&mut third, Duration::from_secs(1)).await,
        "served while both slots were held"
    );

    bob.ws.close(None).await.expect("close");
    while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, bob.ws.next()).await {}
    // Closing one frees its slot, and the waiting client is served.
    let reply = web_edge_support::exchange(third, "").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    tokio::time::timeout(WAIT, running.shutdown())
        .await
        .expect("shutdown in time");
}

//! The web listener stays up when one host misbehaves: sockets that stall in any phase before
//! useful work are closed at that phase's deadline, one address cannot take more than its share,
//! and HTTP/2 by prior knowledge is not spoken. Real sockets on loopback; each 127.0.0.x source
//! address is another client host.

mod web_edge_support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::io::AsyncWriteExt;
use web_edge_support::{closed_within, exchange, host, start, WAIT};

/// The first byte of an HTTP/2 connection preface ("PRI * HTTP/2.0...").
const H2_FIRST_BYTE: &[u8] = b"P";

#[tokio::test]
async fn a_flooding_address_does_not_keep_the_page_from_another_client() {
    // Deadlines far longer than the test: only the per-address cap can let the fresh client in.
    let server = start(
        true,
        "max_connections_per_address = 1\nhandshake_timeout_secs = 600\n\
         request_header_timeout_secs = 600\n",
        "[signaling]\nmax_connections = 4\n",
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(server.tcp_from(host(1)).await);
    }
    let handshakes = join_all((0..16).map(|_| server.tls_from(host(3)))).await;
    let mut stalled = Vec::new();
    for mut tls in handshakes.into_iter().flatten() {
        if tls.write_all(H2_FIRST_BYTE).await.is_ok() && tls.flush().await.is_ok() {
            stalled.push(tls);
        }
    }
    assert_eq!(
        stalled.len(),
        1,
        "one TLS connection per address gets through"
    );

    let fresh = tokio::time::timeout(Duration::from_secs(3), server.get_from(host(2), "/"))
        .await
        .expect("the page answers a fresh client while the flood holds its share");
    assert!(fresh.starts_with("HTTP/1.1 200"), "{fresh}");

    // The flooder's sockets over its cap were closed; the one within it is still held.
    let mut closed = 0;
    for socket in idle.iter_mut() {
        if closed_within(socket, Duration::from_millis(200)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 15, "all idle sockets but the first were refused");
    server.stop().await;
}

#[tokio::test]
async fn stalled_connections_are_closed_at_their_phase_deadline() {
    let server = start(
        true,
        "handshake_timeout_secs = 1\nrequest_header_timeout_secs = 1\n",
        "[signaling]\nmax_connections = 64\n",
    )
    .await;
    let started = Instant::now();
    // Connected and silent: stalls the TLS handshake.
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(server.tcp_from(host(1)).await);
    }
    // Handshake done, then one byte of an HTTP/2 preface and nothing more.
    let mut stalled = Vec::new();
    for _ in 0..16 {
        let mut tls = server.tls_from(host(1)).await.expect("TLS handshake");
        tls.write_all(H2_FIRST_BYTE).await.expect("send a byte");
        tls.flush().await.expect("flush");
        stalled.push(tls);
    }
    let idle_closed = join_all(idle.iter_mut().map(|s| closed_within(s, WAIT))).await;
    let stalled_closed = join_all(stalled.iter_mut().map(|s| closed_within(s, WAIT))).await;
    assert!(idle_closed.iter().all(|c| *c), "{idle_closed:?}");
    assert!(stalled_closed.iter().all(|c| *c), "{stalled_closed:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed by the deadline, not before it"
    );
    let page = server.get_from(host(2), "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    server.stop().await;
}

#[tokio::test]
async fn a_slow_request_header_and_an_idle_keep_alive_connection_are_closed() {
    let server = start(
        false,
        "request_header_timeout_secs = 1\nkeep_alive_idle_secs = 2\n",
        "",
    )
    .await;
    let mut slow = server.tcp_from(host(1)).await;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("send half a header");
    assert!(closed_within(&mut slow, WAIT).await, "slow header closed");

    // One request answered on a keep-alive connection, then silence.
    let mut kept = server.tcp_from(host(1)).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send request");
    let answered = Instant::now();
    assert!(
        closed_within(&mut kept, WAIT).await,
        "idle keep-alive connection closed"
    );
    assert!(
        answered.elapsed() >= Duration::from_secs(2),
        "kept open for the idle limit"
    );
    server.stop().await;
}

#[tokio::test]
async fn http2_prior_knowledge_is_refused_on_plain_http() {
    let server = start(false, "", "").await;
    let tcp = server.tcp_from(host(1)).await;
    let reply = exchange(tcp, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    // An HTTP/2 server would answer with a SETTINGS frame (binary, starting with a length).
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 "),
        "{reply:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_address_over_its_cap_is_refused_while_another_is_served() {
    let server = start(
        false,
        "max_connections_per_address = 2\nrequest_header_timeout_secs = 600\n",
        "[signaling]\nmax_connections = 16\n",
    )
    .await;
    let first = server.tcp_from(host(1)).await;
    let _second = server.tcp_from(host(1)).await;
    let mut third = server.tcp_from(host(1)).await;
    assert!(closed_within(&mut third, WAIT).await, "third refused");
    let other = server.get_from(host(2), "/").await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");

    // Closing one gives the share back (once the server has seen the close).
    drop(first);
    let mut served = false;
    for _ in 0..50 {
        if server
            .get_from(host(1), "/")
            .await
            .starts_with("HTTP/1.1 200")
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the address got its share back");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_responses_is_closed() {
    let server = start(false, "keep_alive_idle_secs = 1\n", "").await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    socket
        .bind(std::net::SocketAddr::new(host(1), 0))
        .expect("bind");
    let mut tcp = tokio::time::timeout(WAIT, socket.connect(server.addr))
        .await
        .expect("connect in time")
        .expect("connect");
    // Far more responses than the socket buffers on both sides can hold.
    const REQUESTS: usize = 4000;
    let pipelined = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(REQUESTS);
    tokio::time::timeout(WAIT, tcp.write_all(pipelined.as_bytes()))
        .await
        .expect("requests sent in time")
        .expect("send requests");
    // Never reading: the server must give up on its stalled writes and drop the connection,
    // which resets it (the unread requests are still queued), so a write here starts to fail.
    let mut reset = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match tcp.try_write(b"\r\n") {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                reset = true;
                break;
            }
        }
    }
    assert!(
        reset,
        "the connection was still open after 10 s of not reading"
    );
    let page = server.get_from(host(2), "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    server.stop().await;
}

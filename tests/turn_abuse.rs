//! TURN on the open internet: sources that never authenticate must not keep client slots,
//! drain budgets others need, or hold TCP/TLS connections open. Loopback only; the client
//! "addresses" are 127.0.0.x, which Linux routes to `lo`.

mod turn_support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use callbox::turn::limits::TurnLimits;
use stun::message::{METHOD_ALLOCATE, METHOD_BINDING, METHOD_REFRESH};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use turn_support::*;

fn short_lifetimes() -> TurnLimits {
    TurnLimits {
        unauthenticated_lifetime: Duration::from_millis(600),
        first_message: Duration::from_millis(300),
        tls_handshake: Duration::from_millis(300),
        ..TurnLimits::default()
    }
}

async fn tcp_from(ip: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(ip.parse().unwrap(), 0))
        .unwrap();
    socket.connect(server).await.unwrap()
}

/// True if the server closes `stream` within `wait` (EOF or reset).
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(wait, stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// One unauthenticated request then junk every 50 ms, from `ip`, until `stop`.
fn squat(ip: &'static str, server: SocketAddr, stop: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let c = RawClient::new_from(ip, server, "x", "y").await;
        let (refresh, _) = c.build(METHOD_REFRESH, vec![], false);
        c.send(&refresh).await;
        for _ in 0..200 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => c.send(&[0xde]).await,
                _ = stop.cancelled() => break,
            }
        }
    });
}

#[tokio::test]
async fn squatters_from_one_address_leave_a_client_from_another_served() {
    let mut cfg = config();
    cfg.max_clients = 8;
    let server = start(cfg).await;
    let addr = server.udp_addrs()[0];
    let stop = tokio_util::sync::CancellationToken::new();
    for _ in 0..8 {
        squat("127.0.0.2", addr, stop.clone());
    }
    assert!(eventually(|| server.stats().clients_refused >= 6).await);
    let stats = server.stats();
    assert_eq!(
        stats.clients, 2,
        "the per-address cap is max_clients/4: {stats:?}"
    );

    let (u, p) = rest_credentials(&server, "alice");
    let mut alice = RawClient::new_from("127.0.0.3", addr, &u, &p).await;
    let reply = alice.allocate().await.expect("an answer to the Allocate");
    assert_eq!(reply.code, 0);
    assert_eq!(server.stats().allocations, 1);
    stop.cancel();
    server.close().await;
}

#[tokio::test]
async fn an_unauthenticated_session_ends_after_its_lifetime_even_while_sending_junk() {
    let server = start_with_limits(config(), None, short_lifetimes()).await;
    let addr = server.udp_addrs()[0];
    let stop = tokio_util::sync::CancellationToken::new();
    squat("127.0.0.4", addr, stop.clone());
    assert!(eventually(|| server.stats().clients == 1).await);
    let started = std::time::Instant::now();
    assert!(
        eventually(|| server.stats().clients == 0).await,
        "{:?}",
        server.stats()
    );
    // It ended on its fixed lifetime, not at once, and the junk kept flowing meanwhile.
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(!stop.is_cancelled());
    stop.cancel();
    server.close().await;
}

#[tokio::test]
async fn an_authenticated_session_is_not_bound_by_the_unauthenticated_lifetime() {
    let server = start_with_limits(config(), None, short_lifetimes()).await;
    let addr = server.udp_addrs()[0];
    let (u, p) = rest_credentials(&server, "alice");
    let mut alice = RawClient::new(addr, &u, &p).await;
    assert_eq!(alice.allocate().await.unwrap().code, 0);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stats = server.stats();
    assert_eq!((stats.clients, stats.allocations), (1, 1), "{stats:?}");
    server.close().await;
}

#[tokio::test]
async fn tcp_connections_are_capped_per_address_before_anything_is_read() {
    let mut cfg = config();
    cfg.max_clients = 8;
    let server = start(cfg).await;
    let tcp = server.tcp_addrs()[0];
    let _a = tcp_from("127.0.0.5", tcp).await;
    let _b = tcp_from("127.0.0.5", tcp).await;
    assert!(eventually(|| server.stats().clients == 2).await);
    let mut third = tcp_from("127.0.0.5", tcp).await;
    assert!(closed_within(&mut third, Duration::from_secs(2)).await);
    assert_eq!(server.stats().clients_refused, 1);

    // Another address still gets a connection, and an allocation over it.
    let (u, p) = rest_credentials(&server, "alice");
    let stream = tcp_from("127.0.0.6", tcp).await;
    let local = stream.local_addr().unwrap();
    let conn = std::sync::Arc::new(StreamConn::new(stream, tcp, local));
    let c = client(conn, tcp, &u, &p).await;
    let relay = c.allocate().await.expect("allocation over TCP");
    drop(relay);
    server.close().await;
}

#[tokio::test]
async fn a_silent_tcp_connection_is_closed_at_the_first_message_deadline() {
    let server = start_with_limits(config(), None, short_lifetimes()).await;
    let mut silent = tcp_from("127.0.0.7", server.tcp_addrs()[0]).await;
    assert!(eventually(|| server.stats().clients == 1).await);
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
    assert!(eventually(|| server.stats().clients == 0).await);
    server.close().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_at_its_deadline() {
    let (server_tls, _) = tls_pair();
    let mut cfg = config();
    cfg.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
    let server = start_with_limits(cfg, Some(server_tls), short_lifetimes()).await;
    let mut stalled = tcp_from("127.0.0.8", server.tls_addrs()[0]).await;
    assert!(eventually(|| server.stats().clients == 1).await);
    assert!(closed_within(&mut stalled, Duration::from_secs(3)).await);
    assert!(eventually(|| server.stats().clients == 0).await);
    server.close().await;
}

/// Sends `count` copies of `bytes` from each of `sockets` (what the socket buffer takes).
async fn flood(sockets: &[RawClient], bytes: &[u8], count: usize) {
    for c in sockets {
        for _ in 0..count {
            if c.socket.try_send_to(bytes, c.server).is_err() {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Replies waiting on `sockets`, once the server has had time to answer.
fn drain(sockets: &[RawClient]) -> usize {
    let mut buf = [0u8; 1500];
    let mut replies = 0;
    for c in sockets {
        while c.socket.try_recv_from(&mut buf).is_ok() {
            replies += 1;
        }
    }
    replies
}

#[tokio::test]
async fn many_flooding_sources_leave_the_nonce_budget_to_others() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    // 60 sources with 3 sockets each: each source can spend its per-source burst (20), which
    // added up is far more than the old global budget (400 + 200/s).
    let mut floods = Vec::new();
    for i in 0..60u8 {
        let mut sockets = Vec::new();
        for _ in 0..3 {
            let ip = IpAddr::from([127, 0, 1, 10 + i]).to_string();
            sockets.push(RawClient::new_from(&ip, addr, "x", "y").await);
        }
        floods.push(sockets);
    }
    for sockets in &floods {
        // A fresh transaction each time: a retransmission would be answered from the cache,
        // which has a budget of its own (tested below).
        for c in sockets {
            for _ in 0..30 {
                let (allocate, _) = c.build(METHOD_ALLOCATE, vec![], false);
                if c.socket.try_send_to(&allocate, c.server).is_err() {
                    // Not writable yet (a fresh socket before the reactor ran): let it run.
                    tokio::task::yield_now().await;
                }
            }
        }
        // Paced so the server's socket buffer never overflows: this is about budgets.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let per_source: Vec<usize> = floods.iter().map(|s| drain(s)).collect();
    // Each source got at most its burst plus what refilled meanwhile (2/s) of 401s.
    let most = per_source.iter().copied().max().unwrap_or(0);
    assert!(most <= 24, "one source got {most} answers: {per_source:?}");
    assert!(per_source.iter().all(|&n| n >= 16), "{per_source:?}");

    let (u, p) = rest_credentials(&server, "alice");
    let mut alice = RawClient::new_from("127.0.0.9", addr, &u, &p).await;
    assert_eq!(alice.allocate().await.expect("answered").code, 0);
    server.close().await;
}

#[tokio::test]
async fn binding_answers_come_out_of_a_per_source_budget() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let flooder = RawClient::new_from("127.0.0.11", addr, "", "").await;
    let (binding, _) = flooder.build(METHOD_BINDING, vec![], false);
    let flooders = std::slice::from_ref(&flooder);
    flood(flooders, &binding, 2000).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered = drain(flooders);
    // The burst (100) plus 20/s refill; fewer if the kernel dropped some of the flood.
    assert!(
        (20..=130).contains(&answered),
        "the flooder got {answered} answers"
    );
    let other = RawClient::new_from("127.0.0.12", addr, "", "").await;
    let (binding, txn) = other.build(METHOD_BINDING, vec![], false);
    other.send(&binding).await;
    assert_eq!(other.response(txn).await.expect("answered").code, 0);
    server.close().await;
}

#[tokio::test]
async fn replayed_answers_to_one_retransmitted_request_come_out_of_a_per_source_budget() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let flooder = RawClient::new_from("127.0.0.13", addr, "", "").await;
    let (allocate, _) = flooder.build(METHOD_ALLOCATE, vec![], false);
    let flooders = std::slice::from_ref(&flooder);
    flood(flooders, &allocate, 300).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered = drain(flooders);
    // The first answer, then replays from the cache: burst 20 plus 5/s refill.
    assert!(
        (2..=25).contains(&answered),
        "one request repeated 300 times got {answered} answers"
    );
    server.close().await;
}

#[tokio::test]
async fn bad_credential_401s_come_out_of_a_per_source_budget() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let transport = || -> Vec<Box<dyn stun::message::Setter>> {
        vec![Box::new(turn::proto::reqtrans::RequestedTransport {
            protocol: turn::proto::PROTO_UDP,
        })]
    };
    let (u, _) = rest_credentials(&server, "alice");
    let mut guesser = RawClient::new_from("127.0.0.13", addr, &u, "a wrong guess").await;
    assert_eq!(
        guesser
            .request(METHOD_ALLOCATE, transport())
            .await
            .unwrap()
            .code,
        401
    );
    let guessers = std::slice::from_ref(&guesser);
    for i in 0..200 {
        let (signed, _) = guesser.build(METHOD_ALLOCATE, transport(), true);
        flood(guessers, &signed, 1).await;
        if i % 20 == 19 {
            // Paced so the session's 64-message queue does not drop the guesses.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered = drain(guessers);
    assert!(
        (1..=12).contains(&answered),
        "{answered} answers to 200 guesses"
    );
    // The guard checked (and refused) far more guesses than it answered.
    assert!(server.stats().refused_401 >= 100, "{:?}", server.stats());

    // Another source guessing wrong is still told so.
    let mut other = RawClient::new_from("127.0.0.14", addr, &u, "another guess").await;
    assert_eq!(
        other
            .request(METHOD_ALLOCATE, transport())
            .await
            .unwrap()
            .code,
        401
    );
    let reply = other.request(METHOD_ALLOCATE, transport()).await;
    assert_eq!(reply.expect("answered").code, 401);
    server.close().await;
}

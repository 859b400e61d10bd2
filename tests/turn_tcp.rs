//! TURN over TCP and TLS (its own port, and the HTTPS port's first-byte split) on loopback.

mod turn_support;

use std::sync::Arc;

use turn_support::*;
use webrtc_util::Conn;

#[tokio::test]
async fn allocate_over_tcp_and_relay_to_a_udp_client_both_ways() {
    let server = start(config()).await;
    let (ua, pa) = rest_credentials(&server, "alice");
    let (ub, pb) = rest_credentials(&server, "bob");
    let a = client(
        tcp_conn(server.tcp_addrs()[0]).await,
        server.tcp_addrs()[0],
        &ua,
        &pa,
    )
    .await;
    let b = udp_client(server.udp_addrs()[0], &ub, &pb).await;
    let ra = a.allocate().await.unwrap();
    let rb = b.allocate().await.unwrap();
    let (a_relay, b_relay) = (ra.local_addr().unwrap(), rb.local_addr().unwrap());
    let _ = rb.send_to(b"open", a_relay).await;
    relay_once(&ra, &rb, b_relay, b"tcp to udp")
        .await
        .expect("a -> b");
    relay_once(&rb, &ra, a_relay, b"udp to tcp")
        .await
        .expect("b -> a");
    for i in 0..5u8 {
        // Odd lengths exercise ChannelData padding over TCP.
        relay_once(&ra, &rb, b_relay, &vec![i; 101 + i as usize])
            .await
            .expect("channel");
        relay_once(&rb, &ra, a_relay, &vec![i; 57 + i as usize])
            .await
            .expect("channel back");
    }
    server.close().await;
}

#[tokio::test]
async fn closing_the_tcp_connection_frees_its_allocation() {
    let server = start(config()).await;
    let (u, p) = rest_credentials(&server, "alice");
    let conn = tcp_conn(server.tcp_addrs()[0]).await;
    let c = client(conn.clone(), server.tcp_addrs()[0], &u, &p).await;
    let relay = c.allocate().await.unwrap();
    let relayed = relay.local_addr().unwrap();
    assert_eq!(server.stats().allocations, 1);
    assert!(
        tokio::net::UdpSocket::bind(relayed).await.is_err(),
        "relay port in use"
    );

    conn.shutdown().await;
    c.close().await.unwrap();
    drop(relay);
    assert!(
        eventually(|| server.stats().allocations == 0).await,
        "{:?}",
        server.stats()
    );
    assert!(
        eventually(|| server.stats().clients == 0).await,
        "{:?}",
        server.stats()
    );
    let mut freed = false;
    for _ in 0..100 {
        if tokio::net::UdpSocket::bind(relayed).await.is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        freed,
        "relay socket {relayed} still bound after the TCP close"
    );
    server.close().await;
}

#[tokio::test]
async fn allocate_over_tls_on_the_turn_tls_port() {
    let (server_tls, client_tls) = tls_pair();
    let mut cfg = config();
    cfg.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
    let server = start_with_tls(cfg, Some(server_tls)).await;
    let addr = server.tls_addrs()[0];
    let (ice, _) = server.ice_servers_for("alice");
    let urls = ice[0]["urls"].to_string();
    assert!(
        urls.contains(&format!("turns:localhost:{}?transport=tcp", addr.port())),
        "{urls}"
    );

    let (u, p) = rest_credentials(&server, "alice");
    let stream = tls_connect(addr, client_tls).await;
    let local = stream.get_ref().0.local_addr().unwrap();
    let c = client(Arc::new(StreamConn::new(stream, addr, local)), addr, &u, &p).await;
    let relay = c.allocate().await.unwrap();
    assert_eq!(relay.local_addr().unwrap().ip().to_string(), "127.0.0.1");
    assert_eq!(server.stats().allocations, 1);

    let (ub, pb) = rest_credentials(&server, "bob");
    let b = udp_client(server.udp_addrs()[0], &ub, &pb).await;
    let rb = b.allocate().await.unwrap();
    let _ = rb.send_to(b"open", relay.local_addr().unwrap()).await;
    relay_once(&relay, &rb, rb.local_addr().unwrap(), b"over tls")
        .await
        .expect("tls -> udp");
    server.close().await;
}

#[tokio::test]
async fn allocate_over_tls_on_the_https_port() {
    let dir = tempfile::tempdir().unwrap();
    let (chain, key) = callbox::web::tls::self_signed(HOST).unwrap();
    let pem = |label: &str, der: &[u8]| {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    std::fs::write(
        dir.path().join("cert.pem"),
        pem("CERTIFICATE", chain[0].as_ref()),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        pem("PRIVATE KEY", key.secret_der()),
    )
    .unwrap();
    let toml = format!(
        "[server]\npublic_host = \"localhost\"\nlisten = \"127.0.0.1:0\"\n\
         [tls]\nenabled = true\ncert = \"{}\"\nkey = \"{}\"\n\
         [turn]\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = [\"127.0.0.1:0\"]\n\
         secrets = [\"{SECRET}\"]\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    );
    let config = callbox::config::Config::parse(&toml).unwrap();
    let running = callbox::app::start(config).await.unwrap();
    let turn = running.turn.clone().unwrap();
    let https = running.http_addr;
    let (ice, _) = turn.ice_servers_for("alice");
    let urls = ice[0]["urls"].to_string();
    assert!(
        urls.contains(&format!("turns:localhost:{}?transport=tcp", https.port())),
        "{urls}"
    );

    let (u, p) = rest_credentials(&turn, "alice");
    let stream = tls_connect(https, Arc::new(tls_client(&chain[0]))).await;
    let local = stream.get_ref().0.local_addr().unwrap();
    let c = client(
        Arc::new(StreamConn::new(stream, https, local)),
        https,
        &u,
        &p,
    )
    .await;
    let relay = c.allocate().await.unwrap();
    assert_eq!(relay.local_addr().unwrap().ip().to_string(), "127.0.0.1");
    assert_eq!(turn.stats().allocations, 1);
    running.shutdown().await;
}

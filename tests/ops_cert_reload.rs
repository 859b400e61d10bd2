//! Live certificate reload: certbot-style PEM files replaced under a running server show up at
//! the next handshake on every TLS listener (HTTPS/WSS and TURN over TLS on 443 and on
//! `turn.listen_tls`), while a WebSocket opened over wss before the swap stays open.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

const HOST: &str = "call.example.com";

fn write_cert(dir: &Path) -> CertificateDer<'static> {
    let certified = rcgen::generate_simple_self_signed(vec![HOST.to_string()]).expect("cert");
    // Write to a side file and rename, as certbot's symlink swap is atomic too.
    for (name, text) in [
        ("fullchain.pem", certified.cert.pem()),
        ("privkey.pem", certified.key_pair.serialize_pem()),
    ] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, dir.join(name)).expect("rename");
    }
    certified.cert.der().clone()
}

async fn tls_connect(addr: SocketAddr, roots: &[CertificateDer<'static>]) -> TlsStream<TcpStream> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("trust root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from(HOST).expect("name");
    tokio::time::timeout(common::WAIT, connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake")
}

fn presented(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    let (_, session) = tls.get_ref();
    session.peer_certificates().expect("server certificate")[0].clone()
}

/// Handshakes until the server presents `want` (bounded), then checks TURN answers on it.
async fn wait_for_cert(
    addr: SocketAddr,
    roots: &[CertificateDer<'static>],
    want: &CertificateDer<'_>,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut tls = tls_connect(addr, roots).await;
        if presented(&tls) == *want {
            let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
            request.extend_from_slice(&[9u8; 12]);
            tls.write_all(&request).await.expect("send STUN");
            let mut header = [0u8; 20];
            tokio::time::timeout(common::WAIT, tls.read_exact(&mut header))
                .await
                .expect("STUN answer in time")
                .expect("STUN answer");
            assert_eq!(
                header[0..2],
                [0x01, 0x01],
                "Binding success over TLS on {addr}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} still presents the old certificate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

type Wss = tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>;

async fn wss(addr: SocketAddr, roots: &[CertificateDer<'static>]) -> Wss {
    let tls = tls_connect(addr, roots).await;
    let url = format!("wss://{HOST}:{}/ws", addr.port());
    let (ws, _) = tokio::time::timeout(common::WAIT, tokio_tungstenite::client_async(url, tls))
        .await
        .expect("upgrade in time")
        .expect("upgrade");
    ws
}

/// Logs in as `name` and returns once the login reply arrived.
async fn login(ws: &mut Wss, name: &str) {
    let frame = serde_json::json!({"type": "login", "name": name}).to_string();
    ws.send(Message::Text(frame.into()))
        .await
        .expect("send login");
    let reply = recv_type(ws, "login").await;
    assert_eq!(reply["success"], true, "{reply}");
}

/// Skips frames until one of type `kind` (bounded in count and time).
async fn recv_type(ws: &mut Wss, kind: &str) -> serde_json::Value {
    for _ in 0..100 {
        let frame = tokio::time::timeout(common::WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("connection open")
            .expect("frame");
        if let Message::Text(text) = frame {
            let value: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
            if value["type"] == kind {
                return value;
            }
        }
    }
    panic!("no {kind} frame within 100 frames");
}

#[tokio::test]
async fn replaced_pem_files_reach_every_tls_listener_and_open_wss_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = write_cert(dir.path());
    let (cert, key) = (
        dir.path().join("fullchain.pem"),
        dir.path().join("privkey.pem"),
    );
    let config = callbox::config::Config::parse(&format!(
        "[server]\npublic_host = \"{HOST}\"\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"\"\n\
         [tls]\nenabled = true\ncert = {cert:?}\nkey = {key:?}\n\
         [turn]\nlisten_udp = []\nlisten_tcp = []\nlisten_tls = [\"127.0.0.1:0\"]\n\
         relay_port_min = 20000\nrelay_port_max = 20100\n",
    ))
    .expect("config");
    let running = callbox::app::start(config).await.expect("start");
    let turn_tls = running.turn.as_ref().expect("turn").tls_addrs()[0];
    let mut ann = wss(running.http_addr, std::slice::from_ref(&first)).await;
    login(&mut ann, "ann").await;
    let second = write_cert(dir.path());
    let roots = [first, second.clone()];
    wait_for_cert(running.http_addr, &roots, &second).await;
    wait_for_cert(turn_tls, &roots, &second).await;
    // Ann's wss, opened under the old certificate, still carries presence news.
    let mut bob = wss(running.http_addr, &roots).await;
    login(&mut bob, "bob").await;
    for _ in 0..10 {
        let list = recv_type(&mut ann, "userlist").await;
        if list["users"] == serde_json::json!(["ann", "bob"]) {
            running.shutdown().await;
            return;
        }
    }
    panic!("ann's WebSocket never showed bob");
}

//! Shared by the web listener tests (tests/web_edge_*.rs): start callbox with or without TLS
//! and chosen `[server]` limits, and talk to it from a chosen loopback source address (all of
//! 127.0.0.0/8 is loopback, so each address stands for another client host). Every wait is
//! bounded by [`WAIT`].

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub const WAIT: Duration = Duration::from_secs(5);

/// A running instance; with TLS, the connector that trusts its certificate.
pub struct Server {
    pub running: callbox::app::Running,
    pub addr: SocketAddr,
    pub tls: Option<TlsConnector>,
    _dir: Option<tempfile::TempDir>,
}

/// Starts callbox on 127.0.0.1:0 with TURN off; `server` is extra `[server]` keys and `extra`
/// further sections. With `tls`, a fresh certificate for "localhost" is written and trusted.
pub async fn start(tls: bool, server: &str, extra: &str) -> Server {
    let mut text =
        format!("[server]\nlisten = \"127.0.0.1:0\"\n{server}\n[turn]\nenabled = false\n");
    let mut dir = None;
    let mut connector = None;
    if tls {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("generate certificate");
        let tmp = tempfile::tempdir().expect("tempdir");
        let cert = tmp.path().join("fullchain.pem");
        let key = tmp.path().join("privkey.pem");
        std::fs::write(&cert, certified.cert.pem()).expect("write cert");
        std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key");
        text.push_str(&format!(
            "[tls]\nenabled = true\ncert = {cert:?}\nkey = {key:?}\n"
        ));
        connector = Some(connector_for(certified.cert.der().clone()));
        dir = Some(tmp);
    }
    text.push_str(extra);
    let config = callbox::config::Config::parse(&text).expect("test config parses");
    let running = tokio::time::timeout(WAIT, callbox::app::start(config))
        .await
        .expect("start in time")
        .expect("callbox starts");
    Server {
        addr: running.http_addr,
        running,
        tls: connector,
        _dir: dir,
    }
}

fn connector_for(root: CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).expect("trust test root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// 127.0.0.`n`, a client host of its own.
pub fn host(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

impl Server {
    /// A TCP connection from `from` (any port).
    pub async fn tcp_from(&self, from: IpAddr) -> TcpStream {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(from, 0))
            .expect("bind client address");
        tokio::time::timeout(WAIT, socket.connect(self.addr))
            .await
            .expect("TCP connect in time")
            .expect("TCP connect")
    }

    /// A TLS connection from `from`, or the handshake error (e.g. the server closed it).
    pub async fn tls_from(&self, from: IpAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = self.tcp_from(from).await;
        let connector = self.tls.as_ref().expect("server has TLS");
        let name = ServerName::try_from("localhost").expect("server name");
        match tokio::time::timeout(WAIT, connector.connect(name, tcp)).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake not done in time",
            )),
        }
    }

    /// `GET path` with `Connection: close` from `from` (over TLS when the server has it); the
    /// whole response as text.
    pub async fn get_from(&self, from: IpAddr, path: &str) -> String {
        self.get_with(from, path, "").await
    }

    /// Like [`Server::get_from`] with extra header lines (each ending in "\r\n").
    pub async fn get_with(&self, from: IpAddr, path: &str, headers: &str) -> String {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n");
        match self.tls {
            Some(_) => {
                let tls = self.tls_from(from).await.expect("TLS handshake");
                exchange(tls, &request).await
            }
            None => exchange(self.tcp_from(from).await, &request).await,
        }
    }

    pub async fn stop(self) {
        tokio::time::timeout(WAIT, self.running.shutdown())
            .await
            .expect("shutdown in time");
    }
}

/// Writes `request` and reads until the server closes (bounded by [`WAIT`]); what was read,
/// empty if the server refused the connection.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &str) -> String {
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut response = Vec::new();
    // A reset after the response still leaves the response read so far.
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("response in time");
    String::from_utf8_lossy(&response).into_owned()
}

/// Waits (at most `limit`) for the server to close `stream`: true on end-of-stream or reset,
/// false if it is still open. Bytes the server sends first are skipped (at most 64 KiB).
pub async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    for _ in 0..16 {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
    false
}

/// The value of header `name` in a raw HTTP/1.1 response, if present.
pub fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

//! Test-only helpers for the TURN tests: a server on loopback with port-0 listeners, a
//! `webrtc_util::Conn` over TCP/TLS so `turn::client::Client` can speak TURN over streams, and
//! a raw STUN client that shows the error codes the crate's client hides.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use callbox::turn::limits::TurnLimits;
use callbox::turn::{TurnConfig, TurnContext, TurnServer, TurnUser};
use stun::agent::TransactionId;
use stun::attributes::*;
use stun::error_code::ErrorCodeAttribute;
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::*;
use stun::textattrs::*;
use stun::xoraddr::XorMappedAddress;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::UdpSocket;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use turn::client::{Client, ClientConfig};
use turn::proto::peeraddr::PeerAddress;
use turn::proto::reqtrans::RequestedTransport;
use webrtc_util::Conn;

pub const SECRET: &str = "integration-test-secret-0123456789";
pub const HOST: &str = "localhost";
pub const STEP: Duration = Duration::from_secs(5);

/// A loopback config: every listener on port 0, the default relay range, one static user.
pub fn config() -> TurnConfig {
    TurnConfig {
        listen_udp: vec!["127.0.0.1:0".parse().unwrap()],
        listen_tcp: vec!["127.0.0.1:0".parse().unwrap()],
        listen_tls: vec![],
        secrets: vec![SECRET.into()],
        users: vec![TurnUser {
            name: "tool".into(),
            password: "toolpass".into(),
        }],
        ..TurnConfig::default()
    }
}

pub async fn start(config: TurnConfig) -> TurnServer {
    start_with_tls(config, None).await
}

pub async fn start_with_tls(
    config: TurnConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> TurnServer {
    start_with_limits(config, tls, TurnLimits::default()).await
}

/// A server with other built-in limits (shorter lifetimes, smaller caps).
pub async fn start_with_limits(
    config: TurnConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: TurnLimits,
) -> TurnServer {
    TurnServer::start_with_limits(
        &config,
        TurnContext {
            public_host: HOST.into(),
            https_port: None,
            tls,
            shutdown: CancellationToken::new(),
        },
        limits,
    )
    .await
    .unwrap()
}

/// REST credentials as a login would get them.
pub fn rest_credentials(server: &TurnServer, name: &str) -> (String, String) {
    let (ice, _) = server.ice_servers_for(name);
    (
        ice[0]["username"].as_str().unwrap().to_string(),
        ice[0]["credential"].as_str().unwrap().to_string(),
    )
}

/// A `turn::client::Client` over `conn`, listening.
pub async fn client(
    conn: Arc<dyn Conn + Send + Sync>,
    server: SocketAddr,
    user: &str,
    pass: &str,
) -> Client {
    let c = Client::new(ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: user.into(),
        password: pass.into(),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await
    .unwrap();
    c.listen().await.unwrap();
    c
}

pub async fn udp_client(server: SocketAddr, user: &str, pass: &str) -> Client {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client(Arc::new(socket), server, user, pass).await
}

/// Alice and Bob with REST credentials, each holding an allocation on `server`'s UDP listener:
/// (clients, relay conns). The clients must outlive the relays.
pub async fn alice_and_bob_allocated(
    server: &TurnServer,
) -> ((Client, Client), (impl Conn, impl Conn)) {
    let addr = server.udp_addrs()[0];
    let (ua, pa) = rest_credentials(server, "alice");
    let (ub, pb) = rest_credentials(server, "bob");
    let a = udp_client(addr, &ua, &pa).await;
    let b = udp_client(addr, &ub, &pb).await;
    let ra = a.allocate().await.unwrap();
    let rb = b.allocate().await.unwrap();
    ((a, b), (ra, rb))
}

/// Polls `f` every 20 ms, at most `STEP`, until it is true.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..(STEP.as_millis() / 20) {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// Sends from `a` to `b_addr` until `b` receives it (permissions and channel binds take a
/// round trip), at most 50 tries. Returns what `b` saw.
pub async fn relay_once(
    a: &(impl Conn + ?Sized),
    b: &(impl Conn + ?Sized),
    b_addr: SocketAddr,
    payload: &[u8],
) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 1500];
    for _ in 0..50 {
        let _ = a.send_to(payload, b_addr).await;
        if let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_millis(100), b.recv_from(&mut buf)).await
        {
            if &buf[..n] == payload {
                return Some((buf[..n].to_vec(), from));
            }
        }
    }
    None
}

/// TURN framing over a byte stream (RFC 8656 §12.5), as a packet `Conn` for the crate's client.
pub struct StreamConn<S> {
    reader: Mutex<ReadHalf<S>>,
    writer: Mutex<WriteHalf<S>>,
    server: SocketAddr,
    local: SocketAddr,
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> StreamConn<S> {
    pub fn new(stream: S, server: SocketAddr, local: SocketAddr) -> Self {
        let (r, w) = tokio::io::split(stream);
        StreamConn {
            reader: Mutex::new(r),
            writer: Mutex::new(w),
            server,
            local,
        }
    }

    pub async fn shutdown(&self) {
        let _ = self.writer.lock().await.shutdown().await;
    }
}

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Send + Sync + 'static> Conn for StreamConn<S> {
    async fn connect(&self, _: SocketAddr) -> webrtc_util::Result<()> {
        Ok(())
    }
    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }
    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut r = self.reader.lock().await;
        let mut header = [0u8; 4];
        r.read_exact(&mut header).await?;
        let len = u16::from_be_bytes([header[2], header[3]]) as usize;
        let (body, keep) = if header[0] < 0x40 {
            (16 + len, 20 + len)
        } else {
            (len.div_ceil(4) * 4, 4 + len)
        };
        let mut frame = vec![0u8; 4 + body];
        frame[..4].copy_from_slice(&header);
        r.read_exact(&mut frame[4..]).await?;
        let n = keep.min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok((n, self.server))
    }
    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.send_to(buf, self.server).await
    }
    async fn send_to(&self, buf: &[u8], _: SocketAddr) -> webrtc_util::Result<usize> {
        let mut w = self.writer.lock().await;
        w.write_all(buf).await?;
        if buf[0] >= 0x40 && !buf.len().is_multiple_of(4) {
            w.write_all(&[0u8; 3][..4 - buf.len() % 4]).await?;
        }
        w.flush().await?;
        Ok(buf.len())
    }
    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.server)
    }
    async fn close(&self) -> webrtc_util::Result<()> {
        self.shutdown().await;
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// A hand-driven TURN client over UDP that reports error codes instead of hiding them.
pub struct RawClient {
    pub socket: UdpSocket,
    pub server: SocketAddr,
    pub user: String,
    pub pass: String,
    pub realm: String,
    pub nonce: String,
}

/// A response: its class and error code (0 for success) and the message.
pub struct Reply {
    pub code: u16,
    pub msg: Message,
}

impl RawClient {
    pub async fn new(server: SocketAddr, user: &str, pass: &str) -> RawClient {
        let local = if server.is_ipv4() { "127.0.0.1" } else { "::1" };
        RawClient::new_from(local, server, user, pass).await
    }

    /// A client whose socket is bound to `ip` (any 127.0.0.x works on Linux loopback, so a
    /// test can play several client addresses).
    pub async fn new_from(ip: &str, server: SocketAddr, user: &str, pass: &str) -> RawClient {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        RawClient {
            socket: UdpSocket::bind(SocketAddr::new(ip, 0)).await.unwrap(),
            server,
            user: user.into(),
            pass: pass.into(),
            realm: String::new(),
            nonce: String::new(),
        }
    }

    pub async fn send(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).await.unwrap();
    }

    /// Waits for the response to `txn`, skipping indications and data.
    pub async fn response(&self, txn: [u8; 12]) -> Option<Reply> {
        let mut buf = vec![0u8; 2048];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let r = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await;
            let Ok(Ok((n, _))) = r else { return None };
            let mut m = Message::new();
            m.raw = buf[..n].to_vec();
            if m.decode().is_err() || m.transaction_id.0 != txn {
                continue;
            }
            let mut code = ErrorCodeAttribute::default();
            let code = if m.typ.class == CLASS_ERROR_RESPONSE {
                use stun::message::Getter;
                code.get_from(&m).map(|_| code.code.0).unwrap_or(1)
            } else {
                0
            };
            return Some(Reply { code, msg: m });
        }
    }

    /// Sends a request signed with the current realm/nonce (unsigned before the first 401).
    pub async fn request(&mut self, method: Method, extra: Vec<Box<dyn Setter>>) -> Option<Reply> {
        let raw = self.build(method, extra, true);
        let txn = raw.1;
        self.send(&raw.0).await;
        let reply = self.response(txn).await?;
        if let Ok(n) = TextAttribute::get_from_as(&reply.msg, ATTR_NONCE) {
            self.nonce = n.text;
        }
        if let Ok(r) = TextAttribute::get_from_as(&reply.msg, ATTR_REALM) {
            self.realm = r.text;
        }
        Some(reply)
    }

    pub fn build(
        &self,
        method: Method,
        mut extra: Vec<Box<dyn Setter>>,
        sign: bool,
    ) -> (Vec<u8>, [u8; 12]) {
        let txn = TransactionId::new();
        let id = txn.0;
        let mut attrs: Vec<Box<dyn Setter>> = vec![
            Box::new(txn),
            Box::new(MessageType::new(method, CLASS_REQUEST)),
        ];
        attrs.append(&mut extra);
        if sign && !self.nonce.is_empty() {
            attrs.push(Box::new(Username::new(ATTR_USERNAME, self.user.clone())));
            attrs.push(Box::new(Realm::new(ATTR_REALM, self.realm.clone())));
            attrs.push(Box::new(Nonce::new(ATTR_NONCE, self.nonce.clone())));
            attrs.push(Box::new(MessageIntegrity::new_long_term_integrity(
                self.user.clone(),
                self.realm.clone(),
                self.pass.clone(),
            )));
        }
        attrs.push(Box::new(FINGERPRINT));
        let mut m = Message::new();
        m.build(&attrs).unwrap();
        (m.raw, id)
    }

    /// Allocate with the long-term mechanism (401 first); returns the final reply.
    pub async fn allocate(&mut self) -> Option<Reply> {
        self.allocate_family(None).await
    }

    /// Allocate asking for a relay family (REQUESTED-ADDRESS-FAMILY, RFC 6156) when given.
    pub async fn allocate_family(&mut self, ipv6: Option<bool>) -> Option<Reply> {
        let attrs = || -> Vec<Box<dyn Setter>> {
            let mut a: Vec<Box<dyn Setter>> = vec![Box::new(RequestedTransport {
                protocol: turn::proto::PROTO_UDP,
            })];
            match ipv6 {
                Some(true) => a.push(Box::new(turn::proto::reqfamily::REQUESTED_FAMILY_IPV6)),
                Some(false) => a.push(Box::new(turn::proto::reqfamily::REQUESTED_FAMILY_IPV4)),
                None => {}
            }
            a
        };
        let first = self.request(METHOD_ALLOCATE, attrs()).await?;
        if first.code != 401 {
            return Some(first);
        }
        self.request(METHOD_ALLOCATE, attrs()).await
    }

    pub fn relayed(reply: &Reply) -> SocketAddr {
        let mut a = XorMappedAddress::default();
        a.get_from_as(&reply.msg, ATTR_XOR_RELAYED_ADDRESS).unwrap();
        SocketAddr::new(a.ip, a.port)
    }

    pub async fn create_permission(&mut self, peers: &[SocketAddr]) -> Option<Reply> {
        let attrs: Vec<Box<dyn Setter>> = peers
            .iter()
            .map(|p| -> Box<dyn Setter> {
                Box::new(PeerAddress {
                    ip: p.ip(),
                    port: p.port(),
                })
            })
            .collect();
        self.request(METHOD_CREATE_PERMISSION, attrs).await
    }

    pub async fn channel_bind(&mut self, number: u16, peer: SocketAddr) -> Option<Reply> {
        self.request(
            METHOD_CHANNEL_BIND,
            vec![
                Box::new(turn::proto::channum::ChannelNumber(number)),
                Box::new(PeerAddress {
                    ip: peer.ip(),
                    port: peer.port(),
                }),
            ],
        )
        .await
    }

    pub async fn send_indication(&self, peer: SocketAddr, data: &[u8]) {
        let mut m = Message::new();
        m.build(&[
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
            Box::new(PeerAddress {
                ip: peer.ip(),
                port: peer.port(),
            }),
            Box::new(turn::proto::data::Data(data.to_vec())),
        ])
        .unwrap();
        self.send(&m.raw).await;
    }

    /// Next Data indication or ChannelData payload, with its peer (for ChannelData, None).
    pub async fn next_data(&self, wait: Duration) -> Option<(Vec<u8>, Option<SocketAddr>)> {
        let mut buf = vec![0u8; 2048];
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let r = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await;
            let Ok(Ok((n, _))) = r else { return None };
            if (0x40..=0x7f).contains(&buf[0]) && n >= 4 {
                let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
                return Some((buf[4..4 + len.min(n - 4)].to_vec(), None));
            }
            let mut m = Message::new();
            m.raw = buf[..n].to_vec();
            if m.decode().is_err() || m.typ != MessageType::new(METHOD_DATA, CLASS_INDICATION) {
                continue;
            }
            use stun::message::Getter;
            let mut peer = PeerAddress::default();
            let mut data = turn::proto::data::Data::default();
            if peer.get_from(&m).is_ok() && data.get_from(&m).is_ok() {
                return Some((data.0, Some(SocketAddr::new(peer.ip, peer.port))));
            }
        }
    }
}

/// A self-signed certificate for `localhost`: the server side, and a client that trusts it.
pub fn tls_pair() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let (chain, key) = callbox::web::tls::self_signed(HOST).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key)
        .unwrap();
    (Arc::new(server), Arc::new(tls_client(&chain[0])))
}

pub fn tls_client(cert: &rustls_pki_types::CertificateDer<'static>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

pub async fn tls_connect(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(HOST).unwrap();
    tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .unwrap()
}

pub async fn tcp_conn(addr: SocketAddr) -> Arc<StreamConn<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    Arc::new(StreamConn::new(tcp, addr, local))
}

//! For the ACME tests: a real Pebble (Debian's `pebble`) on loopback with its own config and
//! HTTPS certificate, a forwarder in front of its directory, and TLS clients that check which
//! certificate callbox presents.
//!
//! Why the forwarder: Pebble's challenge ports (`tlsPort`, `httpPort`) must be callbox's, which
//! are only known once callbox has bound port 0, yet callbox needs the directory URL at start.
//! So the test owns a listener on port 0 for the directory, starts callbox, then Pebble (on
//! port 0 too, found through /proc), and forwards to it. It also counts the connections, so a
//! test can prove callbox did not talk to the CA at all.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;

/// Bound for one wait (Pebble's start, one handshake, one reply).
pub const WAIT: Duration = Duration::from_secs(10);

/// A Pebble process this test started; killed (by its PID) when dropped.
pub struct Pebble {
    child: Child,
    pub directory: SocketAddr,
    pub management: SocketAddr,
    pub log: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pebble's HTTPS certificate (for 127.0.0.1), written to `dir`; its PEM file is the root
/// callbox trusts for the ACME connection (`tls.acme.directory_ca`).
pub fn pebble_https_cert(dir: &Path) -> (PathBuf, CertificateDer<'static>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "pebble.test".into()])
            .expect("pebble cert");
    let cert = dir.join("pebble-cert.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(
        dir.join("pebble-key.pem"),
        certified.key_pair.serialize_pem(),
    )
    .expect("write key");
    (cert, certified.cert.der().clone())
}

/// Starts Pebble validating challenges for real on `tls_port` / `http_port` of localhost.
pub async fn start_pebble(dir: &Path, tls_port: u16, http_port: u16, validity_secs: u64) -> Pebble {
    let config = serde_json::json!({"pebble": {
        "listenAddress": "127.0.0.1:0",
        "managementListenAddress": "127.0.0.1:0",
        "certificate": dir.join("pebble-cert.pem"),
        "privateKey": dir.join("pebble-key.pem"),
        "httpPort": http_port,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
        "certificateValidityPeriod": validity_secs,
    }});
    let config_path = dir.join("pebble.json");
    std::fs::write(&config_path, config.to_string()).expect("write pebble config");
    let log = dir.join("pebble.log");
    let out = std::fs::File::create(&log).expect("log file");
    let mut command = Command::new("/usr/bin/pebble");
    // SAFETY: prctl is async-signal-safe, as code between fork and exec must be. With it the
    // kernel kills this Pebble if the test dies without unwinding (a signal), so none is left.
    unsafe {
        command.pre_exec(
            || match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            },
        );
    }
    let child = command
        .arg("-config")
        .arg(&config_path)
        // No random validation sleeps, no rejected nonces, a fresh authorization per order:
        // every order really validates, quickly and the same way each run.
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .env("PEBBLE_AUTHZREUSE", "0")
        .stdout(Stdio::from(out.try_clone().expect("clone log")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("start /usr/bin/pebble");
    let pid = child.id();
    let mut pebble = Pebble {
        child,
        directory: SocketAddr::from(([127, 0, 0, 1], 0)),
        management: SocketAddr::from(([127, 0, 0, 1], 0)),
        log,
    };
    let ports = listening_ports(pid, 2).await;
    for port in ports {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let (status, body) = https_get(addr, dir, "/dir").await;
        if status == 200 && body.contains("newNonce") {
            pebble.directory = addr;
        } else {
            pebble.management = addr;
        }
    }
    assert_ne!(pebble.directory.port(), 0, "pebble directory not found");
    assert_ne!(pebble.management.port(), 0, "pebble management not found");
    pebble
}

impl Pebble {
    /// Pebble's root CA for the certificates it issues (from its management interface).
    pub async fn issuing_root(&self, dir: &Path) -> CertificateDer<'static> {
        let (status, body) = https_get(self.management, dir, "/roots/0").await;
        assert_eq!(status, 200, "{body}");
        let root = rustls_pemfile::certs(&mut body.as_bytes())
            .next()
            .expect("a root")
            .expect("PEM");
        root.into_owned()
    }

    /// Requests of one kind Pebble logged (e.g. "/sign-me-up" for new accounts).
    pub fn logged(&self, path: &str) -> usize {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter(|l| l.contains(path)).count()
    }
}

/// TCP ports `pid` listens on, from /proc (its socket inodes among the LISTEN rows).
async fn listening_ports(pid: u32, want: usize) -> Vec<u16> {
    let deadline = Instant::now() + WAIT;
    loop {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| {
                dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter_map(|l| {
                        let l = l.to_string_lossy().to_string();
                        l.strip_prefix("socket:[")?
                            .strip_suffix(']')
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut ports = Vec::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            for row in text.lines().skip(1) {
                let f: Vec<&str> = row.split_whitespace().collect();
                if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                    let port = f[1].rsplit(':').next().unwrap_or("0");
                    ports.push(u16::from_str_radix(port, 16).expect("hex port"));
                }
            }
        }
        if ports.len() >= want {
            return ports;
        }
        assert!(Instant::now() < deadline, "pebble did not listen in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A GET over HTTPS to Pebble (trusting its certificate in `dir`); status and body.
async fn https_get(addr: SocketAddr, dir: &Path, path: &str) -> (u16, String) {
    let pem = std::fs::read(dir.join("pebble-cert.pem")).expect("pebble cert");
    let root = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .expect("cert")
        .expect("pem");
    let mut tls = tls_connect(addr, "127.0.0.1", &[root], &[])
        .await
        .expect("pebble TLS");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("send");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut reply)).await;
    let text = String::from_utf8_lossy(&reply).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// A TLS client trusting only `roots`, offering `alpn`; the handshake's outcome.
pub async fn tls_connect(
    addr: SocketAddr,
    name: &str,
    roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("trust root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).expect("server name");
    tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// The leaf certificate the server presented.
pub fn presented(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("server certificate")[0]
        .clone()
}

/// Handshakes until `addr` presents a certificate for `name` that chains to `root` and is not
/// one of `not` (bounded by `limit`); returns it.
pub async fn wait_for_issued(
    addr: SocketAddr,
    name: &str,
    root: &CertificateDer<'static>,
    not: &[CertificateDer<'static>],
    limit: Duration,
) -> CertificateDer<'static> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(tls) = tls_connect(addr, name, std::slice::from_ref(root), &[]).await {
            let leaf = presented(&tls);
            if !not.contains(&leaf) {
                return leaf;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{addr} presents no new certificate from Pebble within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A listener on port 0 that forwards each connection to the address set later.
pub struct Forwarder {
    pub addr: SocketAddr,
    target: watch::Sender<Option<SocketAddr>>,
    connections: Arc<AtomicUsize>,
}

impl Forwarder {
    pub async fn start() -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (target, watching) = watch::channel(None);
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut watching = watching.clone();
                tokio::spawn(async move {
                    let Ok(Ok(_)) = tokio::time::timeout(
                        Duration::from_secs(30),
                        watching.wait_for(|t| t.is_some()),
                    )
                    .await
                    else {
                        return;
                    };
                    let Some(to) = *watching.borrow() else { return };
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Forwarder {
            addr,
            target,
            connections,
        }
    }

    pub fn forward_to(&self, to: SocketAddr) {
        let _ = self.target.send(Some(to));
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

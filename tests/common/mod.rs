//! Shared by integration tests: start callbox in-process on an ephemeral loopback port and talk
//! to it with tokio-tungstenite clients. Every wait is bounded by [`WAIT`].

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(5);

/// Starts callbox with plain HTTP on 127.0.0.1:0, TURN off, and `extra` TOML appended (it may
/// add `[signaling]` and `[[rooms]]` sections).
pub async fn start(extra: &str) -> callbox::app::Running {
    let text =
        format!("[server]\nlisten = \"127.0.0.1:0\"\n\n[turn]\nenabled = false\n\n{extra}\n");
    let config = callbox::config::Config::parse(&text).expect("test config parses");
    tokio::time::timeout(WAIT, callbox::app::start(config))
        .await
        .expect("start in time")
        .expect("callbox starts")
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client speaking JSON text frames.
pub struct Client {
    pub ws: Ws,
}

/// The `ws://` URL of `path` (e.g. "/ws?room=x") on a running instance.
pub fn ws_url(addr: SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

/// Connects without an Origin header (a non-browser client) and reads the `id` frame.
pub async fn connect(addr: SocketAddr, path: &str) -> Client {
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(ws_url(addr, path)))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut client = Client { ws };
    let id = client.recv().await;
    assert_eq!(id["type"], "id", "{id}");
    assert!(id["id"].is_u64(), "{id}");
    client
}

/// Tries an upgrade with extra request headers; returns the HTTP status on refusal.
pub async fn try_connect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<(Ws, tungstenite::handshake::client::Response), u16> {
    let mut request = ws_url(addr, path).into_client_request().expect("request");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("header value"));
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake in time")
    {
        Ok(ok) => Ok(ok),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("unexpected handshake error: {other}"),
    }
}

impl Client {
    pub async fn send(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        tokio::time::timeout(WAIT, self.ws.send(Message::Text(text.into())))
            .await
            .expect("send in time")
            .expect("send");
    }

    /// The next JSON text frame that is not presence. Presence (`userlist`, `presence`) comes
    /// in batches every 200 ms, so it may land between a request and its answer; tests that
    /// are about presence read it with [`Client::recv_type`] or [`Client::recv_any`].
    pub async fn recv(&mut self) -> Value {
        for _ in 0..100 {
            let frame = self.recv_any().await;
            if frame["type"] != "userlist" && frame["type"] != "presence" {
                return frame;
            }
        }
        panic!("only presence frames, 100 of them");
    }

    /// The next JSON text frame, whatever it is (pings and pongs skipped).
    pub async fn recv_any(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("connection open")
                .expect("frame");
            match msg {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).expect("server sends JSON")
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Skips frames until one of type `kind` (at most 100 frames).
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        for _ in 0..100 {
            let frame = self.recv_any().await;
            if frame["type"] == kind {
                return frame;
            }
        }
        panic!("no {kind} frame within 100 frames");
    }

    /// Skips frames until a user list equal to `users`.
    pub async fn wait_user_list(&mut self, users: &[&str]) {
        for _ in 0..100 {
            let list = self.recv_type("userlist").await;
            if list["users"] == serde_json::json!(users) {
                return;
            }
        }
        panic!("user list never became {users:?}");
    }

    /// Logs in with the tutorial dialect; returns the success reply (and eats the user list).
    pub async fn login(&mut self, name: &str) -> Value {
        self.login_with(serde_json::json!({"type": "login", "name": name}))
            .await
    }

    pub async fn login_with(&mut self, frame: Value) -> Value {
        self.send(frame).await;
        let reply = self.recv_type("login").await;
        assert_eq!(reply["success"], true, "{reply}");
        self.recv_type("userlist").await;
        reply
    }

    /// Reads until the server closes; returns the close frame (None if the TCP stream just
    /// ended). Text frames before the close are skipped (at most 1000).
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        for _ in 0..1000 {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close in time");
            match next {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return None,
            }
        }
        panic!("no close within 1000 frames");
    }
}

/// The close code of a frame, as a number.
pub fn code(frame: &Option<CloseFrame>) -> Option<u16> {
    frame.as_ref().map(|f| u16::from(f.code))
}

/// Ann and Bob logged in to the lobby, both past the user list that shows them together.
pub async fn ann_and_bob(addr: SocketAddr) -> (Client, Client) {
    let mut ann = connect(addr, "/ws").await;
    ann.login("ann").await;
    let mut bob = connect(addr, "/ws").await;
    bob.login("bob").await;
    // Presence comes in batches: each sees the other in the next one.
    ann.wait_user_list(&["ann", "bob"]).await;
    bob.wait_user_list(&["ann", "bob"]).await;
    (ann, bob)
}

/// A `callbox` process started by a test, killed (by its own PID) when dropped.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts the real binary on `config` with info logging in plain text lines (as under
/// systemd: `JOURNAL_STREAM` set, no colour codes); its stderr lines arrive on the receiver,
/// read by a thread that ends with the process.
pub fn spawn_callbox(config: &std::path::Path) -> (Running, LogLines) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_callbox"))
        .arg("--config")
        .arg(config)
        .env("CALLBOX_LOG", "info")
        .env("JOURNAL_STREAM", "8:1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start callbox");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (
        Running(child),
        LogLines {
            lines,
            seen: Vec::new(),
        },
    )
}

/// A child's log lines as they arrive, and every line read so far, which a failed wait
/// prints: a child that exited at start shows why (a port taken, a config refused).
pub struct LogLines {
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl LogLines {
    /// Every line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Reads lines until one contains `needle` (at most 10 s) and returns it.
    pub fn wait(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no log line containing {needle:?} in:\n{}",
            self.seen.join("\n")
        );
    }
}

/// Ports that tests name as a child's TURN relay range (`relay_port_min`..`relay_port_max`);
/// [`free_port`] never picks one.
pub const TEST_RELAY_PORTS: std::ops::RangeInclusive<u16> = 20000..=20999;

/// A loopback port free right now for both UDP and TCP, for a child process's config to name.
///
/// Picked below the kernel's ephemeral range (`ip_local_port_range`, 32768-60999 by default):
/// a port taken with bind(0) and dropped can be handed to another socket's bind(0) or to an
/// outgoing connection's source port before the child binds it, and then the child exits at
/// start (ops_reload did, once). Below the range only another explicit pick can take it, and
/// this binary never hands out the same port twice. It is free for both UDP and TCP, since
/// TURN listens on both with one number. It is never inside [`TEST_RELAY_PORTS`]: callbox
/// refuses to start when a listener's port lies in its relay range (ops_systemd's child
/// exited at start about once in a hundred runs when a pick landed in 20000-20100).
pub fn free_port() -> u16 {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
        .clamp(12000, 32768);
    let span = u64::from(low - 10000);
    let seed = u64::from(std::process::id()).wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    for i in 0..span {
        let port = 10000 + ((seed + i * 7919) % span) as u16;
        if TEST_RELAY_PORTS.contains(&port) {
            continue;
        }
        let free = std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free && given.insert(port) {
            return port;
        }
    }
    panic!("no free loopback port in 10000..{low}");
}

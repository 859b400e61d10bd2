//! callbox under systemd: the real binary with a real `$NOTIFY_SOCKET` (READY only once every
//! port answers, WATCHDOG pings, STATUS lines that follow the hub, STOPPING on SIGTERM), and
//! the shipped unit file passing `systemd-analyze verify`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::{TcpStream, UdpSocket, UnixDatagram};

const BIN: &str = env!("CARGO_BIN_EXE_callbox");

/// Kills the child if the test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The next notification, or panics after `within`.
async fn next_message(socket: &UnixDatagram, within: Duration) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(within, socket.recv(&mut buf))
        .await
        .expect("a notification in time")
        .expect("recv");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A STUN Binding request answered with a Binding success response.
async fn stun_answers(addr: SocketAddr) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&[7u8; 12]);
    socket.send_to(&request, addr).await.expect("send");
    let mut buf = [0u8; 512];
    match tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await {
        Ok(Ok(n)) => n >= 20 && buf[0..2] == [0x01, 0x01],
        _ => false,
    }
}

#[tokio::test]
async fn ready_after_every_port_answers_then_watchdog_status_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    let (http, turn_udp, turn_tcp) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{http}\"\n[metrics]\nlisten = \"\"\n\
             [turn]\nlisten_udp = [\"127.0.0.1:{turn_udp}\"]\nlisten_tcp = [\"127.0.0.1:{turn_tcp}\"]\n\
             relay_port_min = {relay_min}\nrelay_port_max = {relay_max}\n",
            relay_min = common::TEST_RELAY_PORTS.start(),
            relay_max = common::TEST_RELAY_PORTS.start() + 100,
        ),
    )
    .expect("write config");
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).expect("stderr log"))
        .spawn()
        .expect("start callbox");
    let mut running = Running(child);

    let mut buf = vec![0u8; 4096];
    let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(20), socket.recv(&mut buf)).await
    else {
        let exited = running.0.try_wait().ok().flatten();
        let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
        panic!("no READY within 20 s (exited: {exited:?}); callbox said:\n{log}");
    };
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.contains("READY=1\n"), "first notification: {ready:?}");
    assert!(ready.contains("STATUS=0 users online"), "{ready:?}");
    // Nothing may be sent before every listener is bound: at READY they all answer at once.
    let http_addr = SocketAddr::from(([127, 0, 0, 1], http));
    TcpStream::connect(http_addr)
        .await
        .expect("HTTP port accepts");
    TcpStream::connect(("127.0.0.1", turn_tcp))
        .await
        .expect("TURN TCP port accepts");
    assert!(stun_answers(SocketAddr::from(([127, 0, 0, 1], turn_udp))).await);

    let mut ann = common::connect(http_addr, "/ws").await;
    ann.login("ann").await;
    let (mut pings, mut saw_ann) = (0, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (pings < 3 || !saw_ann) && Instant::now() < deadline {
        let message = next_message(&socket, Duration::from_secs(2)).await;
        pings += message.lines().filter(|l| *l == "WATCHDOG=1").count();
        saw_ann |= message.contains("STATUS=1 user online in 1 room, 0 calls, 0 TURN allocations");
    }
    assert!(pings >= 3, "watchdog pings seen: {pings}");
    assert!(saw_ann, "no STATUS line showed the logged-in user");

    let pid = running.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.expect("kill").success());
    let mut stopping = false;
    for _ in 0..50 {
        let message = next_message(&socket, Duration::from_secs(5)).await;
        if message.contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = running.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "callbox still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}

#[test]
fn shipped_unit_passes_systemd_analyze_verify() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        eprintln!("SKIPPED: systemd-analyze is not installed; the unit was NOT verified");
        return;
    }
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/callbox.service");
    let text = std::fs::read_to_string(unit).expect("read unit");
    assert!(
        text.contains("ExecStart=/usr/bin/callbox "),
        "unit runs /usr/bin/callbox"
    );
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(text.contains(line), "unit lacks {line}");
    }
    // verify checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("callbox.service");
    std::fs::write(&copy, text.replace("/usr/bin/callbox", BIN)).expect("write unit");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

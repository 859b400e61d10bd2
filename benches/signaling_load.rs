//! Signaling load: what one logged-in WebSocket costs the server, and how fast a targeted
//! message crosses it. Runs the real `callbox` binary on loopback and prints figures; it asserts
//! nothing about speed (a noisy machine would make that flaky).
//!
//!     cargo bench --bench signaling_load            # 1000 connections
//!     CALLBOX_BENCH_CONNECTIONS=5000 cargo bench --bench signaling_load

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const ROOM_SIZE: usize = 10;
const RELAYS: usize = 2000;

/// The server's resident memory in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Starts callbox with limits opened for one loopback address; returns it and its address.
fn start_server(dir: &std::path::Path, connections: usize) -> (Child, SocketAddr) {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nmax_connections_per_address = {}\n\
             [signaling]\nmax_connections_per_ip = {}\nmax_connections = {}\nmessages_per_second = 100000\n\
             [turn]\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = [\"127.0.0.1:0\"]\n",
            connections + 10,
            connections + 10,
            connections + 10
        ),
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_callbox"))
        .arg("--config")
        .arg(&config)
        .env("CALLBOX_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start callbox");
    let mut banner = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut banner)
        .expect("banner");
    let port: u16 = banner
        .trim()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in banner");
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

#[tokio::main]
async fn main() {
    let connections: usize = std::env::var("CALLBOX_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, addr) = start_server(dir.path(), connections);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = rss_kib(server.id());

    let started = Instant::now();
    let mut clients = Vec::with_capacity(connections);
    for i in 0..connections {
        let room = i / ROOM_SIZE;
        let mut client = common::connect(addr, &format!("/ws?room=r{room}")).await;
        client.login(&format!("u{i}")).await;
        clients.push(client);
    }
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = rss_kib(server.id());

    // Targeted relay: u0 -> u1 in room r0, with an SDP-sized body, one at a time.
    let sdp = "v=0 ".repeat(1000);
    let mut latencies = Vec::with_capacity(RELAYS);
    let (first, rest) = clients.split_at_mut(1);
    let (sender, receiver) = (&mut first[0], &mut rest[0]);
    let relay_started = Instant::now();
    for _ in 0..RELAYS {
        let t = Instant::now();
        sender
            .send(json!({"type": "video-offer", "target": "u1", "sdp": sdp}))
            .await;
        receiver.recv_type("video-offer").await;
        latencies.push(t.elapsed());
    }
    let relay_time = relay_started.elapsed();
    latencies.sort();

    println!("signaling_load: {connections} logged-in WebSockets in rooms of {ROOM_SIZE}");
    println!(
        "  connect + login: {:.0} per second ({:.2} s in all)",
        connections as f64 / connect_time.as_secs_f64(),
        connect_time.as_secs_f64()
    );
    println!(
        "  server RSS: {idle} KiB idle, {loaded} KiB loaded: {:.1} KiB per connection",
        (loaded.saturating_sub(idle)) as f64 / connections as f64
    );
    println!(
        "  targeted 4 kB message, send to receive: p50 {:?}, p99 {:?}, {:.0} messages per second",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        RELAYS as f64 / relay_time.as_secs_f64()
    );

    drop(clients);
    let _ = server.kill();
    let _ = server.wait();
}

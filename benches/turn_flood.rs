//! TURN flood: what unauthenticated STUN traffic from many sources costs the real `callbox`
//! binary, and whether that cost goes away once the flood stops and the unauthenticated
//! sessions reach their fixed lifetime (15 s). Runs on loopback only, from source addresses
//! 127.0.0.2..=127.0.0.101 (Linux routes all of 127/8 to `lo`), and prints figures; it
//! asserts nothing about speed.
//!
//! Two rounds of flood then quiet: CPU drops back to idle once each flood stops, and the
//! second round's peak memory stays at the first one's, because what the expired sessions
//! held was freed and is reused (glibc keeps freed pages mapped, so RSS itself stays near
//! the first peak rather than dropping to the idle figure).
//!
//!     cargo bench --bench turn_flood                      # ~60 s: 2 x (12 s flood, 18 s quiet)
//!     CALLBOX_BENCH_SECS=20 cargo bench --bench turn_flood
//!     CALLBOX_BENCH_RATE=5000 cargo bench --bench turn_flood   # datagrams per second

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

const SOURCES: u8 = 100;
const SOCKETS_PER_SOURCE: usize = 4;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (resident KiB, CPU ticks user+system) of `pid`, from /proc.
fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    (rss, ticks)
}

/// A UDP port free right now on 127.0.0.1 (the server binds it a moment later).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_server(dir: &std::path::Path, turn_port: u16) -> Child {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\
             [turn]\nlisten_udp = [\"127.0.0.1:{turn_port}\"]\nlisten_tcp = []\n"
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
    child
}

/// A STUN request with no credentials: `method` 0x001 Binding, 0x003 Allocate.
fn request(method: u16, n: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(28);
    m.extend_from_slice(&method.to_be_bytes());
    let attrs: &[u8] = match method {
        // REQUESTED-TRANSPORT UDP, as a browser's first Allocate carries.
        0x0003 => &[0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0],
        _ => &[],
    };
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&0x2112_a442u32.to_be_bytes());
    m.extend_from_slice(&n.to_be_bytes());
    m.extend_from_slice(&[7u8; 8]);
    m.extend_from_slice(attrs);
    m
}

struct Sample {
    at: Duration,
    rss: u64,
    cpu_percent: f64,
}

fn sample(pid: u32, start: Instant, last: &mut (Instant, u64)) -> Sample {
    let (rss, ticks) = usage(pid);
    let secs = last.0.elapsed().as_secs_f64().max(0.001);
    // Linux reports CPU time in 1/100 s ticks (USER_HZ).
    let cpu_percent = (ticks.saturating_sub(last.1)) as f64 / secs;
    *last = (Instant::now(), ticks);
    Sample {
        at: start.elapsed(),
        rss,
        cpu_percent,
    }
}

fn print(phase: &str, s: &Sample, sent: u64, answered: u64) {
    println!(
        "{:>6.1}s  {phase:<6} rss {:>7} KiB  cpu {:>5.1}%  sent {sent:>8}  answered {answered:>7}",
        s.at.as_secs_f64(),
        s.rss,
        s.cpu_percent
    );
}

async fn sources(server: SocketAddr) -> Vec<UdpSocket> {
    let mut sockets = Vec::new();
    for i in 0..SOURCES {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i));
        for _ in 0..SOCKETS_PER_SOURCE {
            let s = UdpSocket::bind(SocketAddr::new(ip, 0)).await.expect("bind");
            s.connect(server).await.expect("connect");
            sockets.push(s);
        }
    }
    sockets
}

fn drain(sockets: &[UdpSocket]) -> u64 {
    let mut buf = [0u8; 1500];
    let mut n = 0;
    for s in sockets {
        while s.try_recv(&mut buf).is_ok() {
            n += 1;
        }
    }
    n
}

#[tokio::main]
async fn main() {
    let total = Duration::from_secs(env_or("CALLBOX_BENCH_SECS", 60).clamp(4, 600));
    let rate = env_or("CALLBOX_BENCH_RATE", 20_000).clamp(100, 200_000);
    let round = total / 2;
    let flood_for = round * 2 / 5;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let mut server = start_server(dir.path(), port);
    let pid = server.id();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let start = Instant::now();
    let mut last = (Instant::now(), usage(pid).1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = sample(pid, start, &mut last);
    println!(
        "turn_flood: {SOURCES} sources x {SOCKETS_PER_SOURCE} sockets, 2 rounds of {rate} datagrams/s \
         for {flood_for:?} then quiet for {:?}",
        round - flood_for
    );
    print("idle", &baseline, 0, 0);

    let sockets = sources(addr).await;
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut report = Instant::now();
    let (mut sent, mut answered, mut n) = (0u64, 0u64, 0u32);
    let mut peaks = [baseline.rss; 2];
    let mut round_end = [baseline.rss; 2];
    while start.elapsed() < total {
        tick.tick().await;
        let in_round = start.elapsed().saturating_sub(Duration::from_secs(1));
        let r = usize::from(in_round >= round);
        let flooding = in_round.saturating_sub(round * r as u32) < flood_for;
        if flooding {
            for _ in 0..per_tick {
                n = n.wrapping_add(1);
                let s = &sockets[n as usize % sockets.len()];
                let bytes = match n % 3 {
                    0 => request(0x0003, n),
                    1 => request(0x0001, n),
                    _ => vec![0xde, 0xad, 0xbe, 0xef, n as u8],
                };
                if s.try_send(&bytes).is_ok() {
                    sent += 1;
                }
            }
        }
        if report.elapsed() >= Duration::from_secs(2) {
            answered += drain(&sockets);
            let s = sample(pid, start, &mut last);
            peaks[r] = peaks[r].max(s.rss);
            round_end[r] = s.rss;
            print(if flooding { "flood" } else { "quiet" }, &s, sent, answered);
            report = Instant::now();
        }
    }
    let end = sample(pid, start, &mut last);
    println!(
        "rss KiB: idle {}, round 1 peak {} / end {}, round 2 peak {} / end {} ({:+} vs round 1 \
         peak); cpu at the end {:.1}%; {sent} sent, {answered} answered",
        baseline.rss,
        peaks[0],
        round_end[0],
        peaks[1],
        end.rss,
        peaks[1] as i64 - peaks[0] as i64,
        end.cpu_percent
    );
    let _ = server.kill();
    let _ = server.wait();
}

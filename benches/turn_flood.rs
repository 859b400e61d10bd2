//! TURN flood: what unauthenticated STUN traffic from many sources costs the real `callbox`
//! binary, and whether that cost goes away once the flood stops and the unauthenticated
//! sessions reach their fixed lifetime (15 s). Runs on loopback only, from source addresses
//! 127.0.0.2..=127.0.0.101 (Linux routes all of 127/8 to `lo`), and prints figures; it
//! asserts nothing about speed.
//!
//! One bounded flood (Binding, Allocate without credentials, and junk, round robin over
//! 400 sockets), then quiet long enough for every session to end and for the server's
//! periodic sweep and memory trim to run. It prints the resident memory and CPU of the server
//! idle before, at the flood's peak, and after the flood, side by side: memory after the flood
//! must be back near the idle figure (src/ops/memory.rs says how).
//!
//!     cargo bench --bench turn_flood                           # 60 s flood, 45 s quiet
//!     CALLBOX_BENCH_SECS=20 CALLBOX_BENCH_QUIET=40 cargo bench --bench turn_flood
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
        .stderr(std::fs::File::create(dir.join("server.log")).expect("server log"))
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

/// Resident memory and CPU of one phase.
struct Phase {
    rss: u64,
    cpu_percent: f64,
}

/// Sends the flood for `flood_for`; the peak RSS and the mean CPU while it lasted.
async fn flood(pid: u32, sockets: &[UdpSocket], rate: u64, flood_for: Duration) -> (Phase, u64) {
    let start = Instant::now();
    let mut last = (Instant::now(), usage(pid).1);
    let ticks_before = last.1;
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut report = Instant::now();
    let (mut sent, mut answered, mut n, mut peak) = (0u64, 0u64, 0u32, 0u64);
    while start.elapsed() < flood_for {
        tick.tick().await;
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
        if report.elapsed() >= Duration::from_secs(2) {
            answered += drain(sockets);
            let s = sample(pid, start, &mut last);
            peak = peak.max(s.rss);
            print("flood", &s, sent, answered);
            report = Instant::now();
        }
    }
    let ticks = usage(pid).1.saturating_sub(ticks_before);
    let cpu_percent = ticks as f64 / start.elapsed().as_secs_f64().max(0.001);
    (
        Phase {
            rss: peak.max(usage(pid).0),
            cpu_percent,
        },
        sent,
    )
}

#[tokio::main]
async fn main() {
    let flood_for = Duration::from_secs(env_or("CALLBOX_BENCH_SECS", 60).clamp(2, 600));
    let quiet_for = Duration::from_secs(env_or("CALLBOX_BENCH_QUIET", 45).clamp(20, 600));
    let rate = env_or("CALLBOX_BENCH_RATE", 20_000).clamp(100, 200_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let mut server = start_server(dir.path(), port);
    let pid = server.id();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let start = Instant::now();
    let mut last = (Instant::now(), usage(pid).1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = sample(pid, start, &mut last);
    if let Ok(Some(status)) = server.try_wait() {
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        panic!("callbox exited before the flood ({status}):\n{log}");
    }
    println!(
        "turn_flood: {SOURCES} sources x {SOCKETS_PER_SOURCE} sockets, {rate} datagrams/s for \
         {flood_for:?}, then quiet for {quiet_for:?}"
    );
    print("idle", &idle, 0, 0);
    let sockets = sources(addr).await;
    let (peak, sent) = flood(pid, &sockets, rate, flood_for).await;

    let quiet = Instant::now();
    let mut last = (Instant::now(), usage(pid).1);
    while quiet.elapsed() < quiet_for {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let s = sample(pid, start, &mut last);
        print("quiet", &s, sent, 0);
    }
    // The last 5 s of the quiet phase: CPU with nothing to do.
    let after = sample(pid, start, &mut last);
    let phases = [
        ("baseline (idle)", idle.rss, idle.cpu_percent),
        ("flood (peak rss, mean cpu)", peak.rss, peak.cpu_percent),
        ("after the flood", after.rss, after.cpu_percent),
    ];
    println!("\n{:<28} {:>10} {:>7}", "phase", "rss KiB", "cpu %");
    for (name, rss, cpu) in phases {
        println!("{name:<28} {rss:>10} {cpu:>7.1}");
    }
    let back = after.rss as i64 - idle.rss as i64;
    let risen = (peak.rss as i64 - idle.rss as i64).max(1);
    println!(
        "after - baseline: {back:+} KiB ({:.0}% of the flood's rise); {sent} datagrams sent",
        back as f64 * 100.0 / risen as f64
    );
    let _ = server.kill();
    let _ = server.wait();
}

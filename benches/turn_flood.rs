//! TURN flood: what unauthenticated STUN traffic from many sources costs the real `callbox`
//! binary, and whether that cost goes away once the flood stops and the unauthenticated
//! sessions reach their fixed lifetime (15 s). Runs on loopback only, from source addresses
//! 127.0.0.2..=127.0.0.101 (Linux routes all of 127/8 to `lo`), and prints figures; it
//! asserts nothing about speed.
//!
//! Bounded floods (Binding, Allocate without credentials, and junk, round robin over 400
//! sockets), two by default, each followed by quiet long enough for every session to end and
//! for the server's periodic sweep and memory trim to run. It prints the resident memory and
//! CPU of the server idle before, at each flood's peak, and after each flood, side by side:
//! memory after every flood must be back near the idle figure (src/ops/memory.rs says how),
//! and the second flood must not leave more behind than the first (that would be a leak).
//!
//!     cargo bench --bench turn_flood                           # 60 s flood, 45 s quiet
//!     CALLBOX_BENCH_SECS=20 CALLBOX_BENCH_QUIET=40 cargo bench --bench turn_flood
//!     CALLBOX_BENCH_RATE=5000 cargo bench --bench turn_flood   # datagrams per second
//!     CALLBOX_BENCH_FLOODS=3 cargo bench --bench turn_flood    # floods in the one run

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

/// Resident memory of a process, in KiB: all of it, and its private part (heap, stacks).
/// RssFile (the rest) is the binary's and libc's code pages, touched once when a code path
/// first runs and shared with the page cache: warm-up, not memory the flood holds.
#[derive(Clone, Copy, Default)]
struct Resident {
    rss: u64,
    anon: u64,
}

impl Resident {
    /// Each figure's larger value (the peak of a phase).
    fn max(self, other: Resident) -> Resident {
        Resident {
            rss: self.rss.max(other.rss),
            anon: self.anon.max(other.anon),
        }
    }
}

/// (resident memory, CPU ticks user+system) of `pid`, from /proc.
fn usage(pid: u32) -> (Resident, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let resident = Resident {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    (resident, ticks)
}

/// A UDP port free right now on 127.0.0.1 (the server binds it a moment later), below the
/// default relay range (49152-65535), which the server refuses as a listening port.
fn free_udp_port() -> u16 {
    (0..1000)
        .filter_map(|_| std::net::UdpSocket::bind("127.0.0.1:0").ok())
        .filter_map(|s| s.local_addr().ok())
        .map(|a| a.port())
        .find(|&port| port < 49152)
        .expect("a free port below the relay range")
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
        .env(
            "CALLBOX_LOG",
            std::env::var("CALLBOX_LOG").unwrap_or_else(|_| "warn".into()),
        )
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
    mem: Resident,
    cpu_percent: f64,
}

fn sample(pid: u32, start: Instant, last: &mut (Instant, u64)) -> Sample {
    let (mem, ticks) = usage(pid);
    let secs = last.0.elapsed().as_secs_f64().max(0.001);
    // Linux reports CPU time in 1/100 s ticks (USER_HZ).
    let cpu_percent = (ticks.saturating_sub(last.1)) as f64 / secs;
    *last = (Instant::now(), ticks);
    Sample {
        at: start.elapsed(),
        mem,
        cpu_percent,
    }
}

fn print(phase: &str, s: &Sample, sent: u64, answered: u64) {
    println!(
        "{:>6.1}s  {phase:<6} rss {:>7} KiB  anon {:>7} KiB  cpu {:>5.1}%  sent {sent:>8}  \
         answered {answered:>7}",
        s.at.as_secs_f64(),
        s.mem.rss,
        s.mem.anon,
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

/// Resident memory (peak) and CPU (mean) of one flood.
struct Phase {
    mem: Resident,
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
    let (mut sent, mut answered, mut n) = (0u64, 0u64, 0u32);
    let mut peak = Resident::default();
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
            peak = peak.max(s.mem);
            print("flood", &s, sent, answered);
            report = Instant::now();
        }
    }
    let ticks = usage(pid).1.saturating_sub(ticks_before);
    let cpu_percent = ticks as f64 / start.elapsed().as_secs_f64().max(0.001);
    (
        Phase {
            mem: peak.max(usage(pid).0),
            cpu_percent,
        },
        sent,
    )
}

/// Quiet for `quiet_for`, printing a sample every 5 s; the last sample (the server idle again).
async fn quiet(pid: u32, start: Instant, quiet_for: Duration, sent: u64) -> Sample {
    let quiet = Instant::now();
    let mut last = (Instant::now(), usage(pid).1);
    while quiet.elapsed() < quiet_for {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let s = sample(pid, start, &mut last);
        print("quiet", &s, sent, 0);
    }
    // The last 5 s of the quiet phase: CPU with nothing to do.
    sample(pid, start, &mut last)
}

#[tokio::main]
async fn main() {
    let flood_for = Duration::from_secs(env_or("CALLBOX_BENCH_SECS", 60).clamp(2, 600));
    let quiet_for = Duration::from_secs(env_or("CALLBOX_BENCH_QUIET", 45).clamp(20, 600));
    let rate = env_or("CALLBOX_BENCH_RATE", 20_000).clamp(100, 200_000);
    // Two floods by default: the first one's leftovers may be one-time warm-up (thread stacks,
    // pools); a leak shows as the second flood's "after" standing above the first one's.
    let floods = env_or("CALLBOX_BENCH_FLOODS", 2).clamp(1, 5);
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
         {flood_for:?}, then quiet for {quiet_for:?}; {floods} time(s)"
    );
    print("idle", &idle, 0, 0);
    let sockets = sources(addr).await;
    let mut rows = vec![("baseline (idle)".to_string(), idle.mem, idle.cpu_percent)];
    let mut total = 0;
    for round in 1..=floods {
        let (peak, sent) = flood(pid, &sockets, rate, flood_for).await;
        total += sent;
        let after = quiet(pid, start, quiet_for, sent).await;
        rows.push((
            format!("flood {round} (peak, mean cpu)"),
            peak.mem,
            peak.cpu_percent,
        ));
        rows.push((format!("after flood {round}"), after.mem, after.cpu_percent));
    }
    println!(
        "\n{:<28} {:>9} {:>10} {:>7} {:>12} {:>13}",
        "phase", "rss KiB", "anon KiB", "cpu %", "rss vs base", "anon vs base"
    );
    for (name, mem, cpu) in &rows {
        let rss = mem.rss as i64 - idle.mem.rss as i64;
        let anon = mem.anon as i64 - idle.mem.anon as i64;
        println!(
            "{name:<28} {:>9} {:>10} {cpu:>7.1} {rss:>+12} {anon:>+13}",
            mem.rss, mem.anon
        );
    }
    println!("{total} datagrams sent");
    let _ = server.kill();
    let _ = server.wait();
    // To read what the server logged (e.g. CALLBOX_LOG=warn,callbox::ops::memory=debug).
    if let Ok(keep) = std::env::var("CALLBOX_BENCH_LOG") {
        let _ = std::fs::copy(dir.path().join("server.log"), keep);
    }
}

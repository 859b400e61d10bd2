//! callbox's relay against the Spanish seed tutorial's Node `ws` server, driven by the same
//! load generator: connect + login at several room sizes (everyone in one room; the Node server
//! has no rooms), idle memory per connection, targeted-message latency at fixed rates, and
//! saturation throughput with server CPU per message. Prints `callbox | Node | ratio`; asserts
//! nothing (the machine is shared). Run it through bench/signaling.sh, which installs `ws`,
//! writes the tutorial's server and raises the open-file limit.

#[path = "vs_node/load.rs"]
mod load;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use load::{Figures, Target};

/// Starts callbox with per-address and rate limits opened.
fn start_callbox(dir: &std::path::Path, n: usize) -> (Child, Target) {
    let config = dir.join("config.toml");
    let max = n + 100;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_connections_per_address = {max}\n\
         [signaling]\nmax_connections_per_ip = {max}\nmax_connections = {max}\n\
         messages_per_second = 1000000\nmessage_burst = 1000000\n\
         [turn]\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = [\"127.0.0.1:0\"]\n"
    );
    std::fs::write(&config, text).expect("write config");
    // CALLBOX_BIN: another build of callbox (e.g. a baseline kept aside) under the same load.
    let bin = std::env::var("CALLBOX_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_callbox").into());
    let mut child = Command::new(bin)
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
    let target = Target {
        url: format!("ws://127.0.0.1:{port}/ws"),
        login_extra: r#","presence":"delta""#,
        pid: child.id(),
    };
    (child, target)
}

/// Starts the tutorial's server (NODE_SERVER: its path, with the port read from PORT).
fn start_node(port: u16) -> Option<(Child, Target)> {
    let script = std::env::var("NODE_SERVER").ok()?;
    let child = Command::new("node")
        .arg(&script)
        .env("PORT", port.to_string())
        .env("NODE_PATH", std::env::var("NODE_PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(800));
    let target = Target {
        url: format!("ws://127.0.0.1:{port}/"),
        login_extra: "",
        pid: child.id(),
    };
    Some((child, target))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(19090)
}

fn sizes() -> Vec<usize> {
    std::env::var("BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1000, 10_000])
}

/// One server, fresh per room size so its memory figure starts from idle.
async fn measure(
    start: impl Fn(usize) -> Option<(Child, Target)>,
    n: usize,
    full: bool,
) -> Option<Figures> {
    let (mut child, target) = start(n)?;
    let figures = load::run(&target, n, full).await;
    let _ = child.kill();
    let _ = child.wait();
    tokio::time::sleep(Duration::from_millis(500)).await;
    Some(figures)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sizes = sizes();
    let mut rows = Vec::new();
    for &n in &sizes {
        // Latency and saturation once, at 1000 users (or the largest size below that);
        // BENCH_IDLE_ONLY=1 skips them (login and idle memory only).
        let full = (n == 1000 || sizes.len() == 1) && std::env::var_os("BENCH_IDLE_ONLY").is_none();
        let ours = measure(|n| Some(start_callbox(dir.path(), n)), n, full).await;
        let theirs = measure(|_| start_node(free_port()), n, full).await;
        rows.push((n, ours, theirs));
    }
    println!();
    println!("| figure | callbox | Node (seed 001) | ratio |");
    println!("|---|---|---|---|");
    for (n, ours, theirs) in &rows {
        let empty = Figures::default();
        let ours = ours.as_ref().unwrap_or(&empty);
        let theirs = theirs.as_ref().unwrap_or(&empty);
        for (name, a, b) in ours.lines(theirs, *n) {
            let ratio = if b > 0.0 {
                format!("{:.2}", a / b)
            } else {
                "-".into()
            };
            println!("| {name} | {a:.1} | {b:.1} | {ratio} |");
        }
    }
}

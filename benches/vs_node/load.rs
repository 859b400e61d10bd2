//! The load generator both servers get: n WebSocket clients that log in with the tutorial's
//! `login` and send each other the tutorial's `candidate` (which both servers relay by name),
//! each carrying its send time so the receiver measures latency. Server CPU comes from
//! /proc/PID/stat, memory from /proc/PID/status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message;

pub struct Target {
    pub url: String,
    /// Extra JSON fields for the login (callbox's page asks for presence deltas).
    pub login_extra: &'static str,
    pub pid: u32,
}

#[derive(Default, Clone)]
pub struct Figures {
    pub logged_in: usize,
    pub login_secs: f64,
    pub cpu_us_per_login: f64,
    pub rss_bytes_per_conn: f64,
    /// (rate, p50 µs, p99 µs)
    pub latency: Vec<(u64, f64, f64)>,
    pub saturation_per_sec: f64,
    pub cpu_us_per_msg: f64,
}

impl Figures {
    pub fn lines(&self, other: &Figures, n: usize) -> Vec<(String, f64, f64)> {
        let mut rows = vec![
            (
                format!("n={n}: logged in"),
                self.logged_in as f64,
                other.logged_in as f64,
            ),
            (
                format!("n={n}: connect+login, s"),
                self.login_secs,
                other.login_secs,
            ),
            (
                format!("n={n}: server CPU per login, µs"),
                self.cpu_us_per_login,
                other.cpu_us_per_login,
            ),
            (
                format!("n={n}: RSS per idle ws, bytes"),
                self.rss_bytes_per_conn,
                other.rss_bytes_per_conn,
            ),
        ];
        for (i, (rate, p50, p99)) in self.latency.iter().enumerate() {
            let (o50, o99) = other.latency.get(i).map(|l| (l.1, l.2)).unwrap_or_default();
            rows.push((format!("n={n}: latency p50 at {rate}/s, µs"), *p50, o50));
            rows.push((format!("n={n}: latency p99 at {rate}/s, µs"), *p99, o99));
        }
        if self.saturation_per_sec > 0.0 {
            rows.push((
                format!("n={n}: saturation, msg/s"),
                self.saturation_per_sec,
                other.saturation_per_sec,
            ));
            rows.push((
                format!("n={n}: server CPU per relayed msg, µs"),
                self.cpu_us_per_msg,
                other.cpu_us_per_msg,
            ));
        }
        rows
    }
}

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Server CPU time (user + system) in µs; assumes 100 clock ticks per second.
fn cpu_us(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks * 10_000.0
}

fn rss_bytes(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        * 1024.0
}

/// What the receiving side of every client shares.
struct Shared {
    received: AtomicU64,
    /// Latencies in µs while a fixed-rate run records them.
    latencies: Mutex<Option<Vec<u32>>>,
    /// Saturation: permits for messages in flight.
    window: Semaphore,
}

fn sent_at(text: &str) -> Option<u64> {
    let at = text.find("\"bench_t\":")? + "\"bench_t\":".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// One client: connects, logs in as `u{i}`, then sends what it is told and notes what arrives.
async fn client(
    i: usize,
    target: Arc<(String, &'static str)>,
    shared: Arc<Shared>,
    mut cmds: mpsc::Receiver<String>,
) -> bool {
    let Ok(Ok((ws, _))) = tokio::time::timeout(
        Duration::from_secs(60),
        tokio_tungstenite::connect_async(target.0.as_str()),
    )
    .await
    else {
        return false;
    };
    let (mut tx, mut rx) = ws.split();
    let login = format!(r#"{{"type":"login","name":"u{i}"{}}}"#, target.1);
    if tx.send(Message::Text(login.into())).await.is_err() {
        return false;
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(60), rx.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"login\"") => break,
            Ok(Some(Ok(_))) => continue,
            _ => return false,
        }
    }
    tokio::spawn(async move {
        while let Some(text) = cmds.recv().await {
            if tx.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(msg)) = rx.next().await {
            let Message::Text(text) = msg else { continue };
            let Some(t) = sent_at(text.as_str()) else {
                continue;
            };
            shared.received.fetch_add(1, Ordering::Relaxed);
            shared.window.add_permits(1);
            let now = epoch().elapsed().as_micros() as u64;
            if let Ok(mut lat) = shared.latencies.lock() {
                if let Some(lat) = lat.as_mut() {
                    lat.push(now.saturating_sub(t) as u32);
                }
            }
        }
    });
    true
}

fn relay_frame(to: usize) -> String {
    let t = epoch().elapsed().as_micros();
    // ~340 bytes on the wire, like a trickled ICE candidate.
    format!(
        r#"{{"type":"candidate","name":"u{to}","candidate":{{"candidate":"candidate:842163049 1 udp 1677729535 192.0.2.17 53422 typ srflx raddr 10.0.0.5 rport 53422 generation 0 ufrag Hx8b network-cost 999 pad-pad-pad-pad-pad-pad-pad-pad-pad-pad-pad-pad-pad-pad","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"Hx8b","bench_t":{t}}}}}"#
    )
}

pub async fn run(target: &Target, n: usize, full: bool) -> Figures {
    let mut figures = Figures::default();
    let shared = Arc::new(Shared {
        received: AtomicU64::new(0),
        latencies: Mutex::new(None),
        window: Semaphore::new(0),
    });
    let addr = Arc::new((target.url.clone(), target.login_extra));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss0, cpu0) = (rss_bytes(target.pid), cpu_us(target.pid));
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(256));
    let mut senders = Vec::with_capacity(n);
    let mut joins = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = mpsc::channel(64);
        senders.push(tx);
        let (addr, shared, gate) = (addr.clone(), shared.clone(), gate.clone());
        joins.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            client(i, addr, shared, rx).await
        }));
    }
    for join in joins {
        figures.logged_in += usize::from(join.await.unwrap_or(false));
    }
    figures.login_secs = started.elapsed().as_secs_f64();
    figures.cpu_us_per_login = (cpu_us(target.pid) - cpu0) / n as f64;
    // Presence batches settle, then the room is idle.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    figures.rss_bytes_per_conn = (rss_bytes(target.pid) - rss0) / n as f64;
    if full && figures.logged_in == n {
        for rate in [1000, 5000] {
            figures
                .latency
                .push(fixed_rate(&senders, &shared, rate).await);
        }
        (figures.saturation_per_sec, figures.cpu_us_per_msg) =
            saturate(&senders, &shared, target.pid).await;
    }
    figures
}

/// Pairs: client i sends to client i + n/2.
fn pair(i: usize, n: usize) -> (usize, usize) {
    let half = (n / 2).max(1);
    let from = i % half;
    (from, (from + half) % n)
}

async fn fixed_rate(
    senders: &[mpsc::Sender<String>],
    shared: &Shared,
    rate: u64,
) -> (u64, f64, f64) {
    let n = senders.len();
    *shared.latencies.lock().expect("lock") = Some(Vec::new());
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let per_tick = rate / 1000;
    let mut k = 0;
    for _ in 0..2000 {
        tick.tick().await;
        for _ in 0..per_tick {
            let (from, to) = pair(k, n);
            let _ = senders[from].try_send(relay_frame(to));
            k += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut lat = shared
        .latencies
        .lock()
        .expect("lock")
        .take()
        .unwrap_or_default();
    lat.sort_unstable();
    let p = |q: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0) as f64
    };
    (rate, p(0.5), p(0.99))
}

/// As fast as the server relays, with 64 messages in flight per sending pair (50 pairs).
async fn saturate(senders: &[mpsc::Sender<String>], shared: &Shared, pid: u32) -> (f64, f64) {
    let n = senders.len();
    let pairs = 50.min(n / 2).max(1);
    // Arrivals during the fixed-rate runs added permits too: start from exactly the window.
    shared
        .window
        .forget_permits(shared.window.available_permits());
    shared.window.add_permits(pairs * 64);
    let received0 = shared.received.load(Ordering::Relaxed);
    let cpu0 = cpu_us(pid);
    let started = Instant::now();
    let mut k = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let Ok(Ok(permit)) =
            tokio::time::timeout(Duration::from_secs(1), shared.window.acquire()).await
        else {
            break;
        };
        permit.forget();
        let (from, to) = pair(k % pairs, n);
        if senders[from].send(relay_frame(to)).await.is_err() {
            break;
        }
        k += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let got = (shared.received.load(Ordering::Relaxed) - received0) as f64;
    let cpu = cpu_us(pid) - cpu0;
    (got / secs, if got > 0.0 { cpu / got } else { 0.0 })
}

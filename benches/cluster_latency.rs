//! Cross-node message latency and CPU per message, beside the single-node figures. Starts a
//! real redis-server and callbox processes on loopback (as tests/cluster_nodes.rs does), then
//! plays ping-pong: ann sends a call message to bob, bob answers, N times, one at a time.
//! Prints one-way latency (half the round trip) percentiles and the CPU time the callbox
//! processes (and Redis) spent per relayed message. Figures only, no assertions.
//!
//!     cargo bench --bench cluster_latency            # ROUNDS=5000 to change the count

#[path = "../tests/cluster_support/mod.rs"]
mod cluster_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cluster_support::{Node, Redis};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const LIMITS: &str = "[signaling]\nmessages_per_second = 1000000\nmessage_burst = 1000000\n";

async fn recv_type(ws: &mut Ws, kind: &str) -> Value {
    for _ in 0..10_000 {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).expect("json");
        if frame["type"] == kind {
            return frame;
        }
    }
    panic!("no {kind} frame");
}

async fn user(addr: SocketAddr, name: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("connect");
    let login = json!({"type": "login", "name": name}).to_string();
    ws.send(Message::Text(login.into())).await.expect("send");
    let reply = recv_type(&mut ws, "login").await;
    assert_eq!(reply["success"], true, "{reply}");
    ws
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat, counted after the ")" that ends the command name.
    (ticks(11) + ticks(12)) / 100.0
}

struct Figures {
    p50_us: f64,
    p99_us: f64,
    callbox_us_per_msg: f64,
    redis_us_per_msg: f64,
}

/// `tag` keeps each scenario's names apart (the previous scenario's logouts may still be on
/// their way).
async fn ping_pong(
    tag: &str,
    (a, b): (SocketAddr, SocketAddr),
    pids: &[u32],
    redis: Option<u32>,
    rounds: usize,
) -> Figures {
    let (ann_name, bob_name) = (format!("ann{tag}"), format!("bob{tag}"));
    let mut ann = user(a, &ann_name).await;
    let mut bob = user(b, &bob_name).await;
    // Both must see each other before call messages can be routed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_secs(*p)).sum::<f64>();
    let (start, redis_start) = (cpu(pids), redis.map(cpu_secs).unwrap_or(0.0));
    let mut one_way = Vec::with_capacity(rounds);
    for seq in 0..rounds {
        let sent = Instant::now();
        let offer = json!({"type": "offer", "name": bob_name, "offer": {"seq": seq}}).to_string();
        ann.send(Message::Text(offer.into())).await.expect("send");
        recv_type(&mut bob, "offer").await;
        let answer =
            json!({"type": "answer", "name": ann_name, "answer": {"seq": seq}}).to_string();
        bob.send(Message::Text(answer.into())).await.expect("send");
        recv_type(&mut ann, "answer").await;
        one_way.push(sent.elapsed().as_secs_f64() * 1e6 / 2.0);
    }
    let messages = (2 * rounds) as f64;
    let used = cpu(pids) - start;
    let redis_used = redis.map(cpu_secs).unwrap_or(0.0) - redis_start;
    one_way.sort_by(f64::total_cmp);
    let at = |q: f64| one_way[((one_way.len() as f64 * q) as usize).min(one_way.len() - 1)];
    Figures {
        p50_us: at(0.5),
        p99_us: at(0.99),
        callbox_us_per_msg: used * 1e6 / messages,
        redis_us_per_msg: redis_used * 1e6 / messages,
    }
}

fn print(label: &str, f: &Figures) {
    println!(
        "{label:<28} one-way p50 {:>7.0} µs  p99 {:>7.0} µs  callbox CPU {:>6.1} µs/msg  redis CPU {:>6.1} µs/msg",
        f.p50_us, f.p99_us, f.callbox_us_per_msg, f.redis_us_per_msg
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2000);
    println!("cluster_latency: {rounds} round trips (2 messages each), one at a time");

    let single = Node::single("127.0.0.2", LIMITS);
    let pids: Vec<u32> = single.pid().into_iter().collect();
    let f = ping_pong("1", (single.addr, single.addr), &pids, None, rounds).await;
    print("single node, no [cluster]", &f);
    drop(single);

    let redis = Redis::start();
    let a = Node::start("127.0.0.2", "a", &redis, LIMITS);
    let pids: Vec<u32> = a.pid().into_iter().collect();
    let f = ping_pong("2", (a.addr, a.addr), &pids, redis.pid(), rounds).await;
    print("cluster, both on one node", &f);
    let b = Node::start("127.0.0.3", "b", &redis, LIMITS);
    let pids: Vec<u32> = a.pid().into_iter().chain(b.pid()).collect();
    let f = ping_pong("3", (a.addr, b.addr), &pids, redis.pid(), rounds).await;
    print("cluster, across two nodes", &f);
}

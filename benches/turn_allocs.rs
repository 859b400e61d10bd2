//! TURN allocations: what an allocation costs a running server, whichever it is (bench/turn.sh
//! runs it against coturn and against callbox). Two figures, printed as `figure<TAB>value`:
//!
//! * allocations per second: 4 workers, each doing Allocate (unsigned, 401 with a nonce),
//!   Allocate (signed), Refresh(0) from a fresh UDP socket per cycle, as a browser allocates
//!   from a fresh port, for 5 s; plus the server's CPU per cycle from /proc/PID/stat;
//! * memory per live allocation: 1000 allocations, each with one permission and one channel,
//!   held at once; (server RSS after - before) / 1000.
//!
//! Sources are spread over 127.1.0.0/16 and 127.2.0.0/16 (Linux routes all of 127/8 to `lo`),
//! so per-address limits are not what is measured.
//!
//!     turn_allocs 127.0.0.1:3478 SERVER_PID -u user -w password
//!     turn_allocs 127.0.0.1:3478 SERVER_PID -W rest-secret -u user

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use stun::agent::TransactionId;
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{
    Getter, Message, MessageType, Setter, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE,
    METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH,
};
use stun::textattrs::{Nonce, Realm, Username};
use turn::proto::channum::ChannelNumber;
use turn::proto::lifetime::Lifetime;
use turn::proto::peeraddr::PeerAddress;
use turn::proto::reqtrans::RequestedTransport;
use turn::proto::PROTO_UDP;

const WORKERS: u32 = 4;
const CYCLE_SECS: u64 = 5;
const HELD: u32 = 1000;

/// (VmRSS KiB, utime + stime ticks) of `pid`.
fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    (
        rss,
        f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0),
    )
}

#[derive(Clone)]
struct Auth {
    username: String,
    password: String,
}

fn auth_from_args(args: &[String]) -> Auth {
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let user = value("-u").unwrap_or_else(|| "bench".into());
    match value("-W") {
        Some(secret) => {
            let expiry = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                + 3600;
            let username = format!("{expiry}:{user}");
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("hmac key");
            mac.update(username.as_bytes());
            let password =
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            Auth { username, password }
        }
        None => Auth {
            username: user,
            password: value("-w").unwrap_or_default(),
        },
    }
}

/// One client transport: a UDP socket with the server's realm and nonce once it has them.
struct Client {
    socket: UdpSocket,
    auth: Auth,
    realm: String,
    nonce: String,
}

impl Client {
    fn new(source: Ipv4Addr, server: SocketAddr, auth: &Auth) -> Option<Client> {
        let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(source), 0)).ok()?;
        socket.connect(server).ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        Some(Client {
            socket,
            auth: auth.clone(),
            realm: String::new(),
            nonce: String::new(),
        })
    }

    fn round_trip(&self, m: &Message) -> Option<Message> {
        self.socket.send(&m.raw).ok()?;
        let mut buf = [0u8; 1500];
        loop {
            let n = self.socket.recv(&mut buf).ok()?;
            let mut r = Message::new();
            r.raw = buf[..n].to_vec();
            if r.decode().is_ok() && r.transaction_id == m.transaction_id {
                return Some(r);
            }
        }
    }

    /// A request with `attrs`, signed when the client has a nonce.
    fn request(&self, method: stun::message::Method, attrs: Vec<Box<dyn Setter>>) -> Message {
        let mut all: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(method, CLASS_REQUEST)),
        ];
        all.extend(attrs);
        if !self.nonce.is_empty() {
            all.push(Box::new(Username::new(
                stun::attributes::ATTR_USERNAME,
                self.auth.username.clone(),
            )));
            all.push(Box::new(Realm::new(
                stun::attributes::ATTR_REALM,
                self.realm.clone(),
            )));
            all.push(Box::new(Nonce::new(
                stun::attributes::ATTR_NONCE,
                self.nonce.clone(),
            )));
            all.push(Box::new(MessageIntegrity::new_long_term_integrity(
                self.auth.username.clone(),
                self.realm.clone(),
                self.auth.password.clone(),
            )));
        }
        all.push(Box::new(FINGERPRINT));
        let mut m = Message::new();
        let _ = m.build(&all);
        m
    }

    fn allocate(&mut self) -> bool {
        let transport = || -> Vec<Box<dyn Setter>> {
            vec![Box::new(RequestedTransport {
                protocol: PROTO_UDP,
            })]
        };
        let Some(first) = self.round_trip(&self.request(METHOD_ALLOCATE, transport())) else {
            return false;
        };
        let mut nonce = Nonce::new(stun::attributes::ATTR_NONCE, String::new());
        let mut realm = Realm::new(stun::attributes::ATTR_REALM, String::new());
        if nonce.get_from(&first).is_err() || realm.get_from(&first).is_err() {
            return false;
        }
        self.nonce = nonce.text;
        self.realm = realm.text;
        self.ok(self.request(METHOD_ALLOCATE, transport()))
    }

    fn ok(&self, m: Message) -> bool {
        self.round_trip(&m)
            .is_some_and(|r| r.typ.class == CLASS_SUCCESS_RESPONSE)
    }

    fn refresh0(&self) -> bool {
        self.ok(self.request(METHOD_REFRESH, vec![Box::new(Lifetime(Duration::ZERO))]))
    }

    fn peer_and_channel(&self, peer: SocketAddr) -> bool {
        let addr = || PeerAddress {
            ip: peer.ip(),
            port: peer.port(),
        };
        self.ok(self.request(METHOD_CREATE_PERMISSION, vec![Box::new(addr())]))
            && self.ok(self.request(
                METHOD_CHANNEL_BIND,
                vec![Box::new(ChannelNumber(0x4000)), Box::new(addr())],
            ))
    }
}

fn source(net: u8, i: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, net, (i >> 8) as u8, (i & 0xff).max(1) as u8)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` runs this with `--bench`; without a server there is nothing to measure.
    let (Some(server), Some(pid)) = (
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(2).and_then(|a| a.parse::<u32>().ok()),
    ) else {
        eprintln!("turn_allocs: run through bench/turn.sh (needs SERVER_ADDR PID AUTH...)");
        return;
    };
    let auth = auth_from_args(&args[3..]);

    let cycles = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let t0 = usage(pid).1;
    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (cycles, failed, auth) = (Arc::clone(&cycles), Arc::clone(&failed), auth.clone());
            std::thread::spawn(move || {
                let mut i = w;
                while start.elapsed() < Duration::from_secs(CYCLE_SECS) {
                    i += WORKERS;
                    let done = Client::new(source(1, i % 65000), server, &auth)
                        .is_some_and(|mut c| c.allocate() && c.refresh0());
                    let counter = if done { &cycles } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let secs = start.elapsed().as_secs_f64();
    let ticks = usage(pid).1.saturating_sub(t0);
    let n = cycles.load(Ordering::Relaxed);
    println!("allocs/s\t{:.0}", n as f64 / secs);
    println!(
        "µs CPU/alloc\t{:.0}",
        ticks as f64 * 10_000.0 / n.max(1) as f64
    );
    println!("alloc failures\t{}", failed.load(Ordering::Relaxed));

    // Give the server a moment to let go of the cycled allocations before the baseline.
    std::thread::sleep(Duration::from_secs(2));
    let before = usage(pid).0;
    let peer = SocketAddr::from(([127, 0, 0, 2], 34800));
    let mut held = Vec::new();
    for i in 0..HELD {
        if let Some(mut c) = Client::new(source(2, i + 1), server, &auth) {
            if c.allocate() && c.peer_and_channel(peer) {
                held.push(c);
            }
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = usage(pid).0;
    println!("held allocations\t{}", held.len());
    println!(
        "bytes RSS/alloc\t{:.0}",
        after.saturating_sub(before) as f64 * 1024.0 / held.len().max(1) as f64
    );
    for c in &held {
        let _ = c.refresh0();
    }
}

//! Relay sockets: bound on `relay_ips` within the relay port range, in the family the client
//! asked for, advertising `external_ip` behind 1:1 NAT. The socket, the bandwidth budget and
//! the allocation's byte counters (for the one summary line logged when it ends) live in a
//! [`RelayCore`] shared with the client transport's data path (`fastpath/`), which relays
//! packets without the crate; the crate's packet loop drives the peer side by reading from
//! [`RelayConn`], which never hands it a packet. Each relay socket is registered with the
//! policy while it is open, so our own relay address is a peer on live relay ports only; the
//! data path checks datagrams to and from our own addresses per packet, because the crate
//! keys permissions by IP only and a permission for our own relay port would otherwise open
//! every port of that IP, both ways.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use turn::relay::RelayAddressGenerator;
use webrtc_util::Conn;

use super::credentials::user_of;
use super::fastpath::frame::{FRAME, HEADROOM, MAX_PAYLOAD};
use super::fastpath::FastPath;
use super::guard::AuthCell;
use super::limiter::Bucket;
use super::mmsg::RecvBatch;
use super::peer_policy::PeerPolicy;
use crate::lock::lock;

/// Receive buffer asked for on a relay socket (the kernel doubles it, capped by
/// `net.core.rmem_max`): the default 208 KiB overflowed under uclient's flood.
const RELAY_RCVBUF: usize = 512 << 10;

/// Datagrams one read of a relay socket takes: a peer's burst in a few calls, and
/// 8 × 1.5 KiB per active allocation (the slots are made on its first datagram).
const RELAY_BATCH: usize = 8;

/// How a server binds relay sockets.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub ips: Vec<IpAddr>,
    pub external_ip: Option<IpAddr>,
    pub port_min: u16,
    pub port_max: u16,
    /// Bytes per second each way, 0 for unlimited.
    pub bytes_per_sec: u64,
}

impl RelaySettings {
    /// The address a relay bound on `bound` is advertised as.
    pub fn advertised(&self, bound: SocketAddr) -> SocketAddr {
        match self.external_ip {
            Some(ext) if ext.is_ipv4() == bound.is_ipv4() => SocketAddr::new(ext, bound.port()),
            _ => bound,
        }
    }
}

/// Told the advertised relay address when a relay socket is gone for good.
pub type OnDrop = Arc<dyn Fn(SocketAddr) + Send + Sync>;

/// One per client transport, so it knows whose allocation it is binding.
pub struct Generator {
    pub settings: Arc<RelaySettings>,
    pub policy: Arc<PeerPolicy>,
    pub auth: AuthCell,
    /// The crate drops a relay socket only once its allocation is out of its table and the
    /// allocation's packet loop has ended, so the quota slot is given back here.
    pub on_drop: OnDrop,
    /// The client transport's data path, told of the relay socket while it is open.
    pub fast: Arc<FastPath>,
}

#[async_trait]
impl RelayAddressGenerator for Generator {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let s = &self.settings;
        let ip = s
            .ips
            .iter()
            .copied()
            .find(|ip| ip.is_ipv4() == use_ipv4)
            .ok_or(turn::Error::ErrNoAvailableConns)?;
        let socket = bind_in_range(ip, s.port_min, s.port_max, requested_port)
            .await
            .ok_or(turn::Error::ErrMaxRetriesExceeded)?;
        // Best effort, as on the listeners: room for a peer's burst while the TURN thread
        // serves other sockets (a limit, not memory taken up front).
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(RELAY_RCVBUF);
        let bound = socket
            .local_addr()
            .map_err(|e| turn::Error::Other(e.to_string()))?;
        let advertised = s.advertised(bound);
        let user = lock(&self.auth, "TURN auth cell")
            .as_ref()
            .map(|(u, _)| user_of(u).to_string())
            .unwrap_or_default();
        tracing::debug!(%user, relay = %advertised, "TURN allocation created");
        self.policy.relay_opened(bound);
        self.policy.relay_opened(advertised);
        let core = Arc::new(RelayCore {
            socket,
            bound,
            hairpin: s
                .external_ip
                .filter(|ext| ext.is_ipv4() == bound.is_ipv4())
                .map(|ext| (ext, bound.ip())),
            relay_ports: s.port_min..=s.port_max,
            to_peer: AtomicU64::new(0),
            from_peer: AtomicU64::new(0),
            bytes_per_sec: s.bytes_per_sec,
            out_bucket: Mutex::new(Bucket::full(burst(s.bytes_per_sec), Instant::now())),
            in_bucket: Mutex::new(Bucket::full(burst(s.bytes_per_sec), Instant::now())),
        });
        self.fast.relay_opened(Arc::clone(&core));
        let conn = RelayConn {
            core,
            fast: Arc::clone(&self.fast),
            policy: Arc::clone(&self.policy),
            user,
            relay: advertised,
            started: Instant::now(),
            closed: CancellationToken::new(),
            logged: AtomicBool::new(false),
            on_drop: Arc::clone(&self.on_drop),
        };
        Ok((Arc::new(conn), advertised))
    }
}

fn burst(bytes_per_sec: u64) -> f64 {
    (bytes_per_sec as f64).max(16_384.0)
}

/// Tries random ports in the range (all of them, for a small range) until one binds.
async fn bind_in_range(ip: IpAddr, min: u16, max: u16, requested: u16) -> Option<UdpSocket> {
    if requested != 0 {
        if !(min..=max).contains(&requested) {
            return None;
        }
        return UdpSocket::bind(SocketAddr::new(ip, requested)).await.ok();
    }
    let span = u32::from(max - min) + 1;
    let start = rand::random::<u32>() % span;
    let tries = span.min(256);
    for i in 0..tries {
        let offset = if span <= 256 {
            (start + i) % span
        } else {
            rand::random::<u32>() % span
        };
        let port = (u32::from(min) + offset) as u16;
        if let Ok(socket) = UdpSocket::bind(SocketAddr::new(ip, port)).await {
            return Some(socket);
        }
    }
    None
}

/// The socket, budgets and counters of one relay, shared by the crate's view of it
/// ([`RelayConn`]) and the data path.
pub struct RelayCore {
    socket: UdpSocket,
    bound: SocketAddr,
    /// (advertised, bound) when they differ: traffic between two of our own relays goes
    /// directly between the bound addresses, since a 1:1 NAT often cannot hairpin.
    hairpin: Option<(IpAddr, IpAddr)>,
    relay_ports: std::ops::RangeInclusive<u16>,
    to_peer: AtomicU64,
    from_peer: AtomicU64,
    bytes_per_sec: u64,
    out_bucket: Mutex<Bucket>,
    in_bucket: Mutex<Bucket>,
}

impl RelayCore {
    fn within_budget(&self, bucket: &Mutex<Bucket>, len: usize) -> bool {
        if self.bytes_per_sec == 0 {
            return true;
        }
        let rate = self.bytes_per_sec as f64;
        lock(bucket, "TURN relay bandwidth budget").take(
            len as f64,
            rate,
            burst(self.bytes_per_sec),
            Instant::now(),
        )
    }

    /// Sends `payload` to `peer` (already allowed by the policy) within the budget, waiting
    /// for room in the socket buffer (backpressure on the client's reads, as the crate had).
    pub async fn send_to_peer(&self, payload: &[u8], peer: SocketAddr) {
        if !self.within_budget(&self.out_bucket, payload.len()) {
            return;
        }
        if let Ok(n) = self.socket.send_to(payload, self.as_bound(peer)).await {
            self.to_peer.fetch_add(n as u64, Ordering::Relaxed);
            crate::counters::RELAYED.to_peer(n);
        }
    }

    /// Takes `n` bytes from a peer out of the inbound budget and counts them; false: drop.
    pub fn take_from_peer(&self, n: usize) -> bool {
        if !self.within_budget(&self.in_bucket, n) {
            return false;
        }
        self.from_peer.fetch_add(n as u64, Ordering::Relaxed);
        crate::counters::RELAYED.from_peer(n);
        true
    }

    /// A peer that is another of our relays, as the clients know it (advertised address).
    pub fn as_advertised(&self, from: SocketAddr) -> SocketAddr {
        match self.hairpin {
            Some((ext, bound)) if from.ip() == bound && self.relay_ports.contains(&from.port()) => {
                SocketAddr::new(ext, from.port())
            }
            _ => from,
        }
    }

    /// Where to really send for a peer that is another of our relays.
    fn as_bound(&self, to: SocketAddr) -> SocketAddr {
        match self.hairpin {
            Some((ext, bound)) if to.ip() == ext => SocketAddr::new(bound, to.port()),
            _ => to,
        }
    }
}

/// The crate's view of a relay socket: its packet loop reads here, and every datagram is
/// relayed to the client by the data path before the next read.
pub struct RelayConn {
    core: Arc<RelayCore>,
    fast: Arc<FastPath>,
    policy: Arc<PeerPolicy>,
    user: String,
    relay: SocketAddr,
    started: Instant,
    closed: CancellationToken,
    logged: AtomicBool,
    on_drop: OnDrop,
}

impl RelayConn {
    /// The one line per allocation: who, how long, how much each way. Also the moment this
    /// relay stops being a peer of other relays (the socket itself closes right after).
    fn log_summary(&self) {
        if self.logged.swap(true, Ordering::AcqRel) {
            return;
        }
        self.fast.relay_closed(&self.core);
        self.policy.relay_closed(self.core.bound);
        self.policy.relay_closed(self.relay);
        tracing::info!(
            user = %self.user,
            relay = %self.relay,
            duration_secs = self.started.elapsed().as_secs(),
            bytes_to_peers = self.core.to_peer.load(Ordering::Relaxed),
            bytes_from_peers = self.core.from_peer.load(Ordering::Relaxed),
            "TURN allocation ended"
        );
    }
}

impl Drop for RelayConn {
    fn drop(&mut self) {
        self.log_summary();
        (self.on_drop)(self.relay);
    }
}

#[async_trait]
impl Conn for RelayConn {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(webrtc_util::Error::Other(
            "relay sockets do not connect".into(),
        ))
    }

    async fn recv(&self, _buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("use recv_from".into()))
    }

    /// Relays what peers send until the relay closes; returns nothing to the crate. Reads
    /// with recvmmsg into slots with headroom for the header (`mmsg.rs`), made on the first
    /// datagram so an idle allocation holds no batch.
    async fn recv_from(&self, _buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut batch: Option<RecvBatch> = None;
        let mut frames = Vec::new();
        let mut scratch = Vec::new();
        // Made once: a fresh `cancelled()` per datagram would register a waiter each time.
        let closed = self.closed.cancelled();
        tokio::pin!(closed);
        loop {
            tokio::select! {
                r = self.core.socket.readable() => r?,
                _ = &mut closed => {
                    return Err(webrtc_util::Error::Other("relay closed".into()))
                }
            }
            let batch = batch
                .get_or_insert_with(|| RecvBatch::new(RELAY_BATCH, FRAME, HEADROOM, MAX_PAYLOAD));
            match batch.recv(&self.core.socket) {
                Ok(0) => continue,
                Ok(_) => {}
                // Unconnected UDP reports no ICMP errors: this is the socket itself failing.
                Err(e) => return Err(e.into()),
            }
            let now = Instant::now();
            self.fast
                .relay_batch_to_client(&self.core, batch, &mut frames, &mut scratch, now)
                .await;
        }
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("use send_to".into()))
    }

    /// Not used while the data path handles ChannelData and Send indications; kept correct.
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if self.policy.check(target).is_ok() {
            self.core.send_to_peer(buf, target).await;
        }
        Ok(buf.len())
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.core.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.closed.cancel();
        self.log_summary();
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ip_replaces_the_bound_address_of_its_family_only() {
        let s = RelaySettings {
            ips: vec![],
            external_ip: Some("203.0.113.9".parse().unwrap()),
            port_min: 1,
            port_max: 2,
            bytes_per_sec: 0,
        };
        assert_eq!(
            s.advertised("10.0.0.4:50000".parse().unwrap()),
            "203.0.113.9:50000".parse().unwrap()
        );
        assert_eq!(
            s.advertised("[fd00::4]:50000".parse().unwrap()),
            "[fd00::4]:50000".parse().unwrap()
        );
    }

    #[tokio::test]
    async fn relay_ports_stay_in_range() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = bind_in_range(ip, 40100, 40101, 0).await.unwrap();
        let b = bind_in_range(ip, 40100, 40101, 0).await.unwrap();
        let ports = [
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        ];
        assert!(ports.contains(&40100) && ports.contains(&40101));
        assert!(bind_in_range(ip, 40100, 40101, 0).await.is_none());
        assert!(bind_in_range(ip, 40100, 40101, 5).await.is_none());
    }
}

//! callbox's own TURN data path: ChannelData and Send indications from a client go straight
//! to its relay socket, and datagrams from peers straight back as ChannelData or Data
//! indications, without passing through the `turn` crate.
//!
//! The crate stays the control plane (Allocate, Refresh, CreatePermission, ChannelBind and
//! their authentication); what it installs is mirrored in a [`table::Table`] per client
//! transport, learnt from the requests the session hands the crate and the crate's success
//! answers (the crate answers each request before it reads the next, so the answer to the one
//! request in flight is all there is to match). The relay socket registers itself here when
//! the crate asks for it and leaves when the crate closes or drops it, which is how an
//! allocation's deletion (Refresh 0, expiry, end of transport) reaches the table.
//!
//! Why: the crate takes several async mutexes, decodes each message again, copies the payload
//! into fresh buffers and goes through the session's queue for every relayed packet. Here a
//! packet costs one std mutex (uncontended: one client transport), no heap allocation, no
//! decode beyond the attributes it needs, and a peer-policy decision taken per permission.

pub mod frame;
pub mod table;

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::guard::ServerState;
use super::mmsg::RecvBatch;
use super::quota::Counters;
use super::relay::{RelayCore, RelaySettings};
use super::session::Transport;
use super::wire;
use table::{Class, Table};

/// The one control request whose answer is awaited, and what its success installs.
#[derive(Debug)]
enum Pending {
    Permit([u8; 12], IpAddr),
    Bind([u8; 12], u16, SocketAddr),
}

#[derive(Default)]
struct State {
    relay: Option<Arc<RelayCore>>,
    table: Table,
    pending: Option<Pending>,
}

/// Where a relayed packet from a client goes.
enum Target {
    Channel(u16),
    Peer(SocketAddr),
}

/// The data path of one client transport.
pub struct FastPath {
    shared: Arc<ServerState>,
    /// Our own relay addresses (bound and advertised): peers there are checked per packet.
    own: Vec<IpAddr>,
    client: Arc<dyn Transport>,
    stream: bool,
    ended: CancellationToken,
    state: Mutex<State>,
    txid_seed: [u8; 8],
    txid_count: AtomicU32,
}

impl FastPath {
    pub fn new(
        shared: Arc<ServerState>,
        relay: &RelaySettings,
        client: Arc<dyn Transport>,
        ended: CancellationToken,
    ) -> Self {
        let mut own = relay.ips.clone();
        own.extend(relay.external_ip);
        FastPath {
            shared,
            own,
            stream: !client.is_datagram(),
            client,
            ended,
            state: Mutex::new(State::default()),
            txid_seed: rand::random(),
            txid_count: AtomicU32::new(0),
        }
    }

    /// The crate made a relay socket for this transport's (only) allocation.
    pub fn relay_opened(&self, relay: Arc<RelayCore>) {
        let mut s = self.table();
        s.relay = Some(relay);
        s.table.clear();
    }

    /// The crate closed or dropped that relay socket: its allocation is gone.
    pub fn relay_closed(&self, relay: &Arc<RelayCore>) {
        let mut s = self.table();
        if s.relay.as_ref().is_some_and(|r| Arc::ptr_eq(r, relay)) {
            s.relay = None;
            s.table.clear();
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, State> {
        crate::lock::lock(&self.state, "TURN data path table")
    }

    fn class(&self, ip: IpAddr) -> Class {
        match self.own.contains(&super::peer_policy::canonical(ip)) {
            true => Class::OwnRelay,
            false => Class::Ordinary,
        }
    }

    fn allowed(&self, peer: SocketAddr) -> bool {
        self.shared.policy.check(peer).is_ok()
    }

    /// A request is being handed to the crate: remember what a CreatePermission or
    /// ChannelBind would install (the crate reads only the first XOR-PEER-ADDRESS).
    pub fn note_request(&self, bytes: &[u8]) {
        let bind = match bytes.get(..2) {
            Some([0x00, 0x08]) => false,
            Some([0x00, 0x09]) => true,
            _ => return,
        };
        let pending = wire::parse(bytes).and_then(|m| {
            let txid = m.transaction_id.0;
            let peer = *wire::peer_addresses(&m).ok()?.first()?;
            Some(match bind {
                true => Pending::Bind(txid, wire::channel_number(&m)?, peer),
                false => Pending::Permit(txid, peer.ip()),
            })
        });
        self.table().pending = pending;
    }

    /// The crate answers a client: a CreatePermission or ChannelBind success installs what its
    /// request asked for, now.
    pub fn note_answer(&self, bytes: &[u8]) {
        let success = match bytes.get(..2) {
            Some([0x01, 0x08] | [0x01, 0x09]) => true,
            Some([0x01, 0x18] | [0x01, 0x19]) => false,
            _ => return,
        };
        let Some(txid) = bytes.get(8..20) else { return };
        let mut s = self.table();
        let now = Instant::now();
        match s.pending.take() {
            Some(Pending::Permit(t, ip)) if t == txid && success => {
                let class = self.class(ip);
                s.table.permit(ip, class, now);
            }
            Some(Pending::Bind(t, number, peer)) if t == txid && success => {
                let class = self.class(peer.ip());
                s.table.bind(number, peer, class, now);
            }
            other if other.as_ref().is_some_and(|p| pending_txid(p) != txid) => s.pending = other,
            _ => {}
        }
    }

    /// Relays ChannelData or a Send indication from the client. False: `bytes` is neither
    /// (a control message, for the crate); true: relayed or dropped.
    /// `now`: the time of the read that brought it (taken once per batch).
    pub async fn relay_from_client(&self, bytes: &[u8], now: Instant) -> bool {
        let (target, payload) = if frame::is_channel_data(bytes) {
            match frame::channel_data(bytes) {
                Some((number, payload)) => (Target::Channel(number), payload),
                None => return true,
            }
        } else if frame::is_send_indication(bytes) {
            match frame::send_indication(bytes) {
                Some((peer, payload)) => (Target::Peer(peer), payload),
                None => return true,
            }
        } else {
            return false;
        };
        if let Some((relay, peer)) = self.route(target, now) {
            relay.send_to_peer(payload, peer).await;
        }
        true
    }

    /// The relay socket and the peer a packet from the client goes to, if any.
    fn route(&self, target: Target, now: Instant) -> Option<(Arc<RelayCore>, SocketAddr)> {
        let check = |p| self.allowed(p);
        let mut s = self.table();
        let relay = s.relay.clone()?;
        let peer = match target {
            Target::Channel(number) => s.table.channel_peer(number, now, &check),
            Target::Peer(peer) => match s.table.permitted(peer, now, &check) {
                Some(true) => Some(peer),
                Some(false) => {
                    Counters::bump(&self.shared.counters.send_dropped);
                    None
                }
                None => {
                    if !check(peer) {
                        Counters::bump(&self.shared.counters.send_dropped);
                    }
                    None
                }
            },
        }?;
        Some((relay, peer))
    }

    /// Relays one read of the relay socket to the client: each datagram (its payload at
    /// `HEADROOM` in its slot) becomes ChannelData if a channel is bound to its source, else a
    /// Data indication if the source's IP has a permission, else it is dropped. The frames are
    /// built in place and leave in one call ([`Transport::send_frames`]: one sendmmsg on UDP,
    /// one write on TCP/TLS); the table is locked once per read.
    pub async fn relay_batch_to_client(
        &self,
        relay: &RelayCore,
        batch: &mut RecvBatch,
        frames: &mut Vec<Range<usize>>,
        scratch: &mut Vec<u8>,
        now: Instant,
    ) {
        let check = |p| self.allowed(p);
        frames.clear();
        {
            let mut s = self.table();
            for i in 0..batch.count() {
                let start = batch.slot_start(i);
                let (slot, n, from) = batch.slot_mut(i);
                let from = relay.as_advertised(from);
                let channel = match s.table.channel_of(from, now, &check) {
                    Some(number) => Some(number),
                    None if s.table.permitted(from, now, &check) == Some(true) => None,
                    None => continue,
                };
                if !relay.take_from_peer(n) {
                    continue;
                }
                let Ok(slot) = <&mut [u8; frame::FRAME]>::try_from(slot) else {
                    continue;
                };
                let base = slot.as_ptr() as usize;
                let bytes = match channel {
                    Some(number) => frame::channel_frame(slot, n, number, self.stream),
                    None => frame::data_frame(slot, n, from, self.next_txid()),
                };
                let at = start + (bytes.as_ptr() as usize - base);
                frames.push(at..at + bytes.len());
            }
        }
        if frames.is_empty() {
            return;
        }
        if self
            .client
            .send_frames(batch.bytes(), frames, scratch)
            .await
            .is_err()
        {
            // A dead or stuck client: end its session rather than keep relaying into it.
            self.ended.cancel();
        }
    }

    fn next_txid(&self) -> [u8; 12] {
        let mut t = [0u8; 12];
        t[..8].copy_from_slice(&self.txid_seed);
        let n = self.txid_count.fetch_add(1, Ordering::Relaxed);
        t[8..].copy_from_slice(&n.to_be_bytes());
        t
    }
}

fn pending_txid(p: &Pending) -> [u8; 12] {
    match p {
        Pending::Permit(t, _) | Pending::Bind(t, _, _) => *t,
    }
}

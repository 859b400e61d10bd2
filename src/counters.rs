//! Process-wide counters that code deep in a job bumps and the operator's metrics read, for
//! totals no single object holds (each relay socket counts its own bytes; these add them up).
//! A leaf: it depends on nothing, so any module can bump it without new wiring.

use std::sync::atomic::{AtomicU64, Ordering};

/// Everything the TURN relays moved, since the process started.
#[derive(Debug, Default)]
pub struct Relayed {
    pub bytes_to_peer: AtomicU64,
    pub packets_to_peer: AtomicU64,
    pub bytes_from_peer: AtomicU64,
    pub packets_from_peer: AtomicU64,
}

impl Relayed {
    /// One datagram of `bytes` sent from a relay to a peer.
    pub fn to_peer(&self, bytes: usize) {
        self.bytes_to_peer
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.packets_to_peer.fetch_add(1, Ordering::Relaxed);
    }

    /// One datagram of `bytes` received by a relay from a peer (and passed on).
    pub fn from_peer(&self, bytes: usize) {
        self.bytes_from_peer
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.packets_from_peer.fetch_add(1, Ordering::Relaxed);
    }
}

/// The relay totals of this process.
pub static RELAYED: Relayed = Relayed {
    bytes_to_peer: AtomicU64::new(0),
    packets_to_peer: AtomicU64::new(0),
    bytes_from_peer: AtomicU64::new(0),
    packets_from_peer: AtomicU64::new(0),
};

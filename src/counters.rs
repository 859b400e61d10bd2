//! Process-wide counters that code deep in a job bumps and the operator's metrics read, for
//! totals no single object holds (each relay socket counts its own bytes; these add them up;
//! each connection sees its own messages, each allocation its own permissions).
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

/// Counts by a label from a fixed vocabulary; anything outside it counts as the last name
/// (`other`), so a client can never mint a label.
#[derive(Debug)]
pub struct Labelled<const N: usize> {
    pub names: [&'static str; N],
    counts: [AtomicU64; N],
}

impl<const N: usize> Labelled<N> {
    pub const fn new(names: [&'static str; N]) -> Self {
        Labelled {
            names,
            counts: [const { AtomicU64::new(0) }; N],
        }
    }

    pub fn bump(&self, name: &str) {
        let i = self.names.iter().position(|n| *n == name).unwrap_or(N - 1);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// (label, count) pairs in vocabulary order.
    pub fn read(&self) -> Vec<(&'static str, u64)> {
        let counts = self.counts.iter().map(|c| c.load(Ordering::Relaxed));
        self.names.iter().copied().zip(counts).collect()
    }
}

/// What the signaling side received, answered with an error, and refused.
#[derive(Debug)]
pub struct Signaling {
    /// Client messages understood, by `type` (docs/protocol.md lists them).
    pub received: Labelled<16>,
    /// Error frames sent, by `code`.
    pub errors: Labelled<12>,
    /// Connections or logins refused before any message was handled, by reason.
    pub refused: Labelled<5>,
}

/// The signaling totals of this process.
pub static SIGNALING: Signaling = Signaling {
    received: Labelled::new([
        "login",
        "message",
        "video-offer",
        "video-answer",
        "new-ice-candidate",
        "hang-up",
        "call-request",
        "call-accept",
        "call-decline",
        "call-cancel",
        "call-media",
        "offer",
        "answer",
        "candidate",
        "leave",
        "other",
    ]),
    errors: Labelled::new([
        "invalid-json",
        "not-an-object",
        "missing-type",
        "unknown-type",
        "missing-target",
        "not-logged-in",
        "unknown-target",
        "forbidden-type",
        "too-long",
        "rate-limited",
        "replaced",
        "other",
    ]),
    refused: Labelled::new([
        "origin",
        "connections_per_address",
        "flood",
        "access_code_backoff",
        "other",
    ]),
};

/// TURN permissions and channels held now, over all allocations (as the guard's mirror of
/// the crate's tables holds them: an expired entry leaves at its allocation's next request
/// or when the allocation ends).
#[derive(Debug)]
pub struct Peers {
    pub permissions: AtomicU64,
    pub channels: AtomicU64,
}

pub static PEERS: Peers = Peers {
    permissions: AtomicU64::new(0),
    channels: AtomicU64::new(0),
};

impl Peers {
    /// One allocation's tables went from `old` to `new` (permissions, channels).
    pub fn changed(&self, old: (usize, usize), new: (usize, usize)) {
        adjust(&self.permissions, old.0, new.0);
        adjust(&self.channels, old.1, new.1);
    }
}

fn adjust(gauge: &AtomicU64, old: usize, new: usize) {
    if new > old {
        gauge.fetch_add((new - old) as u64, Ordering::Relaxed);
    } else if old > new {
        let down = (old - new) as u64;
        // Never below zero, even if a caller miscounted.
        let _ = gauge.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(down))
        });
    }
}

/// TURN refusals by why, over every TURN server of the process.
#[derive(Debug)]
pub struct TurnRefusals {
    /// 403 answers to CreatePermission/ChannelBind, by peer-policy reason.
    pub peer: Labelled<5>,
    /// 486/508 answers, by the quota or cap that was reached.
    pub quota: Labelled<8>,
}

pub static TURN_REFUSALS: TurnRefusals = TurnRefusals {
    peer: Labelled::new([
        "embedded_ipv4",
        "own_address",
        "denied",
        "port_zero",
        "other",
    ]),
    quota: Labelled::new([
        "allocations_per_login",
        "allocations_per_address",
        "allocations_server",
        "allocations_per_room",
        "permissions_per_allocation",
        "channels_per_allocation",
        "peer_creation_rate",
        "other",
    ]),
};

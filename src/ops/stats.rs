//! One read of everything an operator watches, taken from the running jobs themselves (the
//! hub's presence state, the TURN server's counters, the relay totals, the certificate store),
//! for the systemd STATUS line and the Prometheus scrape alike.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::counters::{PEERS, RELAYED, SIGNALING, TURN_REFUSALS};
use crate::signaling::hub::HubStats;
use crate::signaling::LocalSwitchboard;
use crate::turn::{TurnServer, TurnStats};

use super::certs::CertStore;

/// Where the figures come from.
pub struct Sources {
    pub switchboard: Arc<LocalSwitchboard>,
    pub turn: Option<Arc<TurnServer>>,
    pub certs: Option<Arc<CertStore>>,
}

/// The figures at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub hub: HubStats,
    pub turn: Option<TurnStats>,
    pub relayed: [u64; 4],
    pub cert_not_after: Option<i64>,
    pub tallies: Tallies,
}

/// The labelled process-wide counters ([`crate::counters`]), as (label, count).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tallies {
    pub messages: Vec<(&'static str, u64)>,
    pub errors: Vec<(&'static str, u64)>,
    pub refused: Vec<(&'static str, u64)>,
    pub peer_refusals: Vec<(&'static str, u64)>,
    pub quota_refusals: Vec<(&'static str, u64)>,
    /// TURN permissions and channels held now.
    pub permissions: u64,
    pub channels: u64,
}

impl Tallies {
    pub fn read() -> Tallies {
        Tallies {
            messages: SIGNALING.received.read(),
            errors: SIGNALING.errors.read(),
            refused: SIGNALING.refused.read(),
            peer_refusals: TURN_REFUSALS.peer.read(),
            quota_refusals: TURN_REFUSALS.quota.read(),
            permissions: PEERS.permissions.load(Ordering::Relaxed),
            channels: PEERS.channels.load(Ordering::Relaxed),
        }
    }
}

impl Sources {
    /// Takes the hub's and the TURN quotas' std locks for a moment each.
    pub fn snapshot(&self) -> Snapshot {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            hub: self.switchboard.stats(),
            turn: self.turn.as_ref().map(|t| t.stats()),
            relayed: [
                load(&RELAYED.bytes_to_peer),
                load(&RELAYED.packets_to_peer),
                load(&RELAYED.bytes_from_peer),
                load(&RELAYED.packets_from_peer),
            ],
            cert_not_after: self.certs.as_ref().map(|c| c.not_after()),
            tallies: Tallies::read(),
        }
    }
}

impl Snapshot {
    /// The systemd STATUS= text, e.g. "3 users online in 2 rooms, 1 call, 2 TURN allocations".
    pub fn status_line(&self) -> String {
        let plural = |n: usize, one: &str, many: &str| match n {
            1 => format!("1 {one}"),
            n => format!("{n} {many}"),
        };
        let mut line = format!(
            "{} online in {}, {}",
            plural(self.hub.users, "user", "users"),
            plural(self.hub.rooms, "room", "rooms"),
            plural(self.hub.calls, "call", "calls"),
        );
        if let Some(turn) = &self.turn {
            let allocations = plural(turn.allocations, "TURN allocation", "TURN allocations");
            line.push_str(&format!(", {allocations}"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_counts_in_words() {
        let snapshot = Snapshot {
            hub: HubStats {
                connections: 4,
                users: 3,
                rooms: 1,
                calls: 1,
            },
            turn: Some(TurnStats {
                allocations: 2,
                ..TurnStats::default()
            }),
            ..Snapshot::default()
        };
        assert_eq!(
            snapshot.status_line(),
            "3 users online in 1 room, 1 call, 2 TURN allocations"
        );
    }
}

//! How many permissions and channels one allocation may hold, and how fast it may add them.
//!
//! The `turn` crate keeps every permission and channel an authenticated client asks for, each
//! with its own timer task, with no bound. One allocation could hold thousands of them (and
//! use them to scan peers). The guard keeps this mirror of what the crate holds, keyed as the
//! crate keys it (permissions per peer IP, channels per number), expiring entries on the
//! RFC 8656 lifetimes, and refuses with 508 past the cap or the creation rate. Entries are
//! counted when the request is passed on; one the crate then refuses still counts until it
//! expires, which only costs the client that sent it. Plain state, no clock of its own.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::limiter::Bucket;
use super::limits::TurnLimits;

/// RFC 8656 §9: a permission lives 300 s unless refreshed.
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// RFC 8656 §12: a channel binding lives 600 s unless refreshed.
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);

/// Why a CreatePermission or ChannelBind is refused (both answered 508).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CapRefusal {
    #[error("too many permissions on this allocation")]
    Permissions,
    #[error("too many channels on this allocation")]
    Channels,
    #[error("permissions and channels created too fast")]
    Rate,
}

impl CapRefusal {
    /// The metrics label (`callbox_turn_quota_refusals_total`).
    pub fn label(self) -> &'static str {
        match self {
            CapRefusal::Permissions => "permissions_per_allocation",
            CapRefusal::Channels => "channels_per_allocation",
            CapRefusal::Rate => "peer_creation_rate",
        }
    }
}

/// The permissions and channels of one allocation.
#[derive(Debug)]
pub struct PeerCap {
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, (SocketAddr, Instant)>,
    creations: Bucket,
    max_permissions: usize,
    max_channels: usize,
    burst: f64,
    rate: f64,
    /// The sizes last added to the process-wide gauges ([`crate::counters::PEERS`]).
    published: (usize, usize),
}

impl PeerCap {
    pub fn new(limits: &TurnLimits, now: Instant) -> Self {
        PeerCap {
            permissions: HashMap::new(),
            channels: HashMap::new(),
            creations: Bucket::full(limits.peer_creations_burst, now),
            max_permissions: limits.permissions_per_allocation,
            max_channels: limits.channels_per_allocation,
            burst: limits.peer_creations_burst,
            rate: limits.peer_creations_per_sec,
            published: (0, 0),
        }
    }

    /// May a CreatePermission for `peers` go through? Records them if so.
    pub fn permit(&mut self, peers: &[SocketAddr], now: Instant) -> Result<(), CapRefusal> {
        self.expire(now);
        let mut new: Vec<IpAddr> = peers
            .iter()
            .map(|p| p.ip())
            .filter(|ip| !self.permissions.contains_key(ip))
            .collect();
        new.sort();
        new.dedup();
        if self.permissions.len() + new.len() > self.max_permissions {
            return Err(CapRefusal::Permissions);
        }
        self.spend(new.len(), now)?;
        for p in peers {
            self.permissions.insert(p.ip(), now);
        }
        self.publish();
        Ok(())
    }

    /// May a ChannelBind of `number` to `peer` go through? Records it (and the permission
    /// it installs) if so. Rebinding the same number to the same peer is a refresh.
    pub fn bind(&mut self, number: u16, peer: SocketAddr, now: Instant) -> Result<(), CapRefusal> {
        self.expire(now);
        let new_channel = !self.channels.contains_key(&number);
        let new_permission = !self.permissions.contains_key(&peer.ip());
        if new_channel && self.channels.len() >= self.max_channels {
            return Err(CapRefusal::Channels);
        }
        if new_permission && self.permissions.len() >= self.max_permissions {
            return Err(CapRefusal::Permissions);
        }
        self.spend(usize::from(new_channel) + usize::from(new_permission), now)?;
        match self.channels.get_mut(&number) {
            // Another peer on a bound number: the crate refuses it, nothing changes here.
            Some((bound, _)) if *bound != peer => {}
            _ => {
                self.channels.insert(number, (peer, now));
            }
        }
        self.permissions.insert(peer.ip(), now);
        self.publish();
        Ok(())
    }

    /// The allocation ended: its permissions and channels went with it.
    pub fn clear(&mut self) {
        self.permissions.clear();
        self.channels.clear();
        self.publish();
    }

    /// Moves the process-wide gauges by what changed here since the last call.
    fn publish(&mut self) {
        let now = (self.permissions.len(), self.channels.len());
        crate::counters::PEERS.changed(self.published, now);
        self.published = now;
    }

    fn spend(&mut self, creations: usize, now: Instant) -> Result<(), CapRefusal> {
        if creations == 0
            || self
                .creations
                .take(creations as f64, self.rate, self.burst, now)
        {
            Ok(())
        } else {
            Err(CapRefusal::Rate)
        }
    }

    fn expire(&mut self, now: Instant) {
        self.permissions
            .retain(|_, at| now.saturating_duration_since(*at) < PERMISSION_LIFETIME);
        self.channels
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < CHANNEL_LIFETIME);
        self.publish();
    }
}

impl Drop for PeerCap {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(max: usize, burst: f64, now: Instant) -> PeerCap {
        let limits = TurnLimits {
            permissions_per_allocation: max,
            channels_per_allocation: max,
            peer_creations_burst: burst,
            peer_creations_per_sec: 1.0,
            ..TurnLimits::default()
        };
        PeerCap::new(&limits, now)
    }

    fn peer(i: u8) -> SocketAddr {
        SocketAddr::from(([8, 8, 8, i], 5000))
    }

    #[test]
    fn permissions_are_capped_and_refreshing_one_is_free() {
        let t0 = Instant::now();
        let mut c = cap(3, 100.0, t0);
        for i in 0..3 {
            assert_eq!(c.permit(&[peer(i)], t0), Ok(()));
        }
        assert_eq!(c.permit(&[peer(9)], t0), Err(CapRefusal::Permissions));
        assert_eq!(c.permit(&[peer(0), peer(1)], t0), Ok(()));
        // Another port of a permitted IP is the same permission (the crate keys by IP).
        assert_eq!(c.permit(&[SocketAddr::from(([8, 8, 8, 2], 1))], t0), Ok(()));
        let later = t0 + PERMISSION_LIFETIME;
        assert_eq!(c.permit(&[peer(9)], later), Ok(()));
    }

    #[test]
    fn channels_are_capped_and_counted_as_permissions_too() {
        let t0 = Instant::now();
        let mut c = cap(2, 100.0, t0);
        assert_eq!(c.bind(0x4000, peer(1), t0), Ok(()));
        assert_eq!(c.bind(0x4001, peer(2), t0), Ok(()));
        assert_eq!(c.bind(0x4000, peer(1), t0), Ok(()), "a refresh");
        assert_eq!(c.bind(0x4002, peer(1), t0), Err(CapRefusal::Channels));
        assert_eq!(c.permit(&[peer(3)], t0), Err(CapRefusal::Permissions));
        c.clear();
        assert_eq!(c.bind(0x4002, peer(3), t0), Ok(()));
    }

    #[test]
    fn creations_are_rate_limited() {
        let t0 = Instant::now();
        let mut c = cap(100, 4.0, t0);
        for i in 0..4 {
            assert_eq!(c.permit(&[peer(i)], t0), Ok(()));
        }
        assert_eq!(c.permit(&[peer(5)], t0), Err(CapRefusal::Rate));
        assert_eq!(c.permit(&[peer(0)], t0), Ok(()), "refreshes cost nothing");
        assert_eq!(c.permit(&[peer(5)], t0 + Duration::from_secs(1)), Ok(()));
    }
}

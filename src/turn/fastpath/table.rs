//! The permissions and channels of one allocation, as the data path needs them: plain state
//! with time as an input, mirroring what the `turn` crate holds (same keys, same lifetimes,
//! same refresh rules), so a relayed packet is decided without the crate's async mutexes.
//!
//! The crate's rules, kept here: a permission is keyed by the peer's IP only and lives 300 s
//! from its last CreatePermission or ChannelBind; a channel lives 600 s from its last
//! ChannelBind and also installs or refreshes the permission of its peer's IP; ChannelData
//! from the client needs only the channel, a Send indication only the permission; a packet
//! from a peer goes out as ChannelData when a channel is bound to that exact address, else as
//! a Data indication when its IP has a permission, else nowhere.
//!
//! The peer policy is decided when an entry is installed, not per packet: peers that are not
//! our own relay addresses get one decision, re-taken every [`RECHECK`] (the host's address
//! list is re-read as often, see host_watch.rs); our own relay addresses are allowed on live
//! relay ports only, which changes as allocations come and go, so they are checked per packet.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The crate's PERMISSION_TIMEOUT (RFC 8656 §9).
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// The crate's channel lifetime (`channel_bind_timeout` 0 means its default, RFC 8656 §12).
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// How long one policy decision for an ordinary peer stands.
pub const RECHECK: Duration = Duration::from_secs(15);

/// How the peer policy applies to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Not one of our own relay addresses: the decision depends on the IP only.
    Ordinary,
    /// One of our own relay addresses: allowed on live relay ports only, checked per packet.
    OwnRelay,
}

#[derive(Debug, Clone, Copy)]
struct Decision {
    class: Class,
    allowed: bool,
    checked: Instant,
}

impl Decision {
    fn new(class: Class, now: Instant) -> Self {
        Decision {
            class,
            allowed: true,
            // Installed after the guard's own check of the request: that was the decision.
            checked: now,
        }
    }

    fn allows(
        &mut self,
        peer: SocketAddr,
        now: Instant,
        check: &dyn Fn(SocketAddr) -> bool,
    ) -> bool {
        match self.class {
            Class::OwnRelay => check(peer),
            Class::Ordinary => {
                if now.saturating_duration_since(self.checked) >= RECHECK {
                    self.allowed = check(peer);
                    self.checked = now;
                }
                self.allowed
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Permission {
    ip: IpAddr,
    expires: Instant,
    policy: Decision,
}

#[derive(Debug, Clone, Copy)]
struct Channel {
    number: u16,
    peer: SocketAddr,
    expires: Instant,
    policy: Decision,
}

/// The permissions and channels of one allocation (the guard caps both at 64).
#[derive(Debug, Default)]
pub struct Table {
    permissions: Vec<Permission>,
    channels: Vec<Channel>,
}

impl Table {
    /// A CreatePermission for `ip` succeeded (or a ChannelBind to a peer at `ip`).
    pub fn permit(&mut self, ip: IpAddr, class: Class, now: Instant) {
        let expires = now + PERMISSION_LIFETIME;
        self.permissions.retain(|p| p.expires > now || p.ip == ip);
        match self.permissions.iter_mut().find(|p| p.ip == ip) {
            Some(p) => {
                p.expires = expires;
                p.policy = Decision::new(class, now);
            }
            None => self.permissions.push(Permission {
                ip,
                expires,
                policy: Decision::new(class, now),
            }),
        }
    }

    /// A ChannelBind of `number` to `peer` succeeded: the crate refused it unless neither was
    /// bound to something else, so a live entry for either is this same binding.
    pub fn bind(&mut self, number: u16, peer: SocketAddr, class: Class, now: Instant) {
        self.channels
            .retain(|c| c.expires > now && c.number != number && c.peer != peer);
        self.channels.push(Channel {
            number,
            peer,
            expires: now + CHANNEL_LIFETIME,
            policy: Decision::new(class, now),
        });
        self.permit(peer.ip(), class, now);
    }

    /// The peer of channel `number`, if bound and allowed (ChannelData from the client).
    pub fn channel_peer(
        &mut self,
        number: u16,
        now: Instant,
        check: &dyn Fn(SocketAddr) -> bool,
    ) -> Option<SocketAddr> {
        let c = self
            .channels
            .iter_mut()
            .find(|c| c.number == number && c.expires > now)?;
        let peer = c.peer;
        c.policy.allows(peer, now, check).then_some(peer)
    }

    /// The channel bound to `peer`, if any and allowed (a packet from that peer).
    pub fn channel_of(
        &mut self,
        peer: SocketAddr,
        now: Instant,
        check: &dyn Fn(SocketAddr) -> bool,
    ) -> Option<u16> {
        let c = self
            .channels
            .iter_mut()
            .find(|c| c.peer == peer && c.expires > now)?;
        c.policy.allows(peer, now, check).then_some(c.number)
    }

    /// Is `peer` within a live permission, and allowed? `None`: no permission at all.
    pub fn permitted(
        &mut self,
        peer: SocketAddr,
        now: Instant,
        check: &dyn Fn(SocketAddr) -> bool,
    ) -> Option<bool> {
        let p = self
            .permissions
            .iter_mut()
            .find(|p| p.ip == peer.ip() && p.expires > now)?;
        Some(p.policy.allows(peer, now, check))
    }

    /// The allocation ended: nothing is relayed any more.
    pub fn clear(&mut self) {
        self.permissions.clear();
        self.channels.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yes(_: SocketAddr) -> bool {
        true
    }
    fn no(_: SocketAddr) -> bool {
        false
    }
    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_permission_lasts_300_s_from_its_last_refresh() {
        let t0 = Instant::now();
        let mut t = Table::default();
        let peer = addr("198.51.7.1:5000");
        assert_eq!(t.permitted(peer, t0, &yes), None);
        t.permit(peer.ip(), Class::Ordinary, t0);
        assert_eq!(t.permitted(addr("198.51.7.1:9"), t0, &yes), Some(true));
        let late = t0 + Duration::from_secs(299);
        assert_eq!(t.permitted(peer, late, &yes), Some(true));
        assert_eq!(t.permitted(peer, t0 + PERMISSION_LIFETIME, &yes), None);
        t.permit(peer.ip(), Class::Ordinary, late);
        assert_eq!(
            t.permitted(peer, late + Duration::from_secs(299), &yes),
            Some(true)
        );
    }

    #[test]
    fn a_channel_lasts_600_s_and_refreshes_its_permission() {
        let t0 = Instant::now();
        let mut t = Table::default();
        let peer = addr("198.51.7.1:5000");
        t.bind(0x4000, peer, Class::Ordinary, t0);
        assert_eq!(t.channel_peer(0x4000, t0, &yes), Some(peer));
        assert_eq!(t.channel_peer(0x4001, t0, &yes), None);
        assert_eq!(t.channel_of(peer, t0, &yes), Some(0x4000));
        assert_eq!(t.channel_of(addr("198.51.7.1:5001"), t0, &yes), None);
        assert_eq!(t.permitted(addr("198.51.7.1:1"), t0, &yes), Some(true));
        // As in the crate, the channel outlives the permission it installed.
        let t400 = t0 + Duration::from_secs(400);
        assert_eq!(t.permitted(peer, t400, &yes), None);
        assert_eq!(t.channel_peer(0x4000, t400, &yes), Some(peer));
        assert_eq!(t.channel_peer(0x4000, t0 + CHANNEL_LIFETIME, &yes), None);
    }

    #[test]
    fn an_expired_channel_number_may_be_bound_to_another_peer() {
        let t0 = Instant::now();
        let mut t = Table::default();
        t.bind(0x4000, addr("198.51.7.1:5000"), Class::Ordinary, t0);
        let later = t0 + CHANNEL_LIFETIME;
        t.bind(0x4000, addr("198.51.7.2:5000"), Class::Ordinary, later);
        assert_eq!(
            t.channel_peer(0x4000, later, &yes),
            Some(addr("198.51.7.2:5000"))
        );
        assert_eq!(t.channel_of(addr("198.51.7.1:5000"), later, &yes), None);
    }

    #[test]
    fn ordinary_peers_are_checked_once_per_recheck_period_own_relays_every_time() {
        let t0 = Instant::now();
        let mut t = Table::default();
        let peer = addr("198.51.7.1:5000");
        t.permit(peer.ip(), Class::Ordinary, t0);
        // Within the period the install-time decision stands, even if the policy changed.
        assert_eq!(
            t.permitted(peer, t0 + Duration::from_secs(1), &no),
            Some(true)
        );
        assert_eq!(t.permitted(peer, t0 + RECHECK, &no), Some(false));
        assert_eq!(t.permitted(peer, t0 + RECHECK * 2, &yes), Some(true));
        let own = addr("127.0.0.1:50000");
        t.permit(own.ip(), Class::OwnRelay, t0);
        assert_eq!(t.permitted(own, t0, &no), Some(false));
        assert_eq!(t.permitted(own, t0, &yes), Some(true));
    }

    #[test]
    fn clear_forgets_everything() {
        let t0 = Instant::now();
        let mut t = Table::default();
        t.bind(0x4000, addr("198.51.7.1:5000"), Class::Ordinary, t0);
        t.clear();
        assert_eq!(t.channel_peer(0x4000, t0, &yes), None);
        assert_eq!(t.permitted(addr("198.51.7.1:5000"), t0, &yes), None);
    }
}

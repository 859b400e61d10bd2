//! Allocation quotas (RFC 8656 §7.2 steps 7-8): per login, per client address and per room
//! (486), and for the whole server (508), plus the counters every refusal bumps so an operator can see
//! what is being refused.
//!
//! A login is the identity in its REST username (an opaque per-login id, see `logins.rs`) or a
//! static user's name, never a display name: one person logging in under a hundred names gets
//! a hundred logins, so the per-address cap is what stops one host filling the server, and the
//! per-room cap what stops one room's many hosts doing it. A room is the signaling room key of
//! the login (`logins.rs`); static users and expired logins count under no room.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why an Allocate was refused for capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaRefusal {
    /// 486 Allocation Quota Reached: this login holds its maximum.
    PerUser,
    /// 486 Allocation Quota Reached: this client address (IPv6: /64) holds its maximum.
    PerAddress,
    /// 486 Allocation Quota Reached: the logins of this room together hold its maximum.
    PerRoom,
    /// 508 Insufficient Capacity.
    Total,
}

impl QuotaRefusal {
    /// The metrics label (`callbox_turn_quota_refusals_total`).
    pub fn label(self) -> &'static str {
        match self {
            QuotaRefusal::PerUser => "allocations_per_login",
            QuotaRefusal::PerAddress => "allocations_per_address",
            QuotaRefusal::PerRoom => "allocations_per_room",
            QuotaRefusal::Total => "allocations_server",
        }
    }

    pub fn code(self) -> u16 {
        match self {
            QuotaRefusal::PerUser | QuotaRefusal::PerAddress | QuotaRefusal::PerRoom => 486,
            QuotaRefusal::Total => 508,
        }
    }
}

/// One allocation's place in the quotas, given back with [`Quotas::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    login: String,
    address: IpAddr,
    room: Option<String>,
}

/// Allocations held (or being created) per login, per client address, per room and in total.
#[derive(Debug)]
pub struct Quotas {
    per_user: HashMap<String, usize>,
    per_address: HashMap<IpAddr, usize>,
    per_room: HashMap<String, usize>,
    total: usize,
    max_per_user: usize,
    max_per_address: usize,
    max_per_room: usize,
    max_total: usize,
}

impl Quotas {
    /// Quotas with no room cap beyond the server's (see [`Quotas::set_room_limit`]).
    pub fn new(max_per_user: usize, max_per_address: usize, max_total: usize) -> Self {
        Quotas {
            per_user: HashMap::new(),
            per_address: HashMap::new(),
            per_room: HashMap::new(),
            total: 0,
            max_per_user,
            max_per_address,
            max_per_room: max_total,
            max_total,
        }
    }

    /// A new cap on the allocations one room's logins hold together (start or reload); as with
    /// [`Quotas::set_limits`], held allocations stay. True if it changed.
    pub fn set_room_limit(&mut self, max_per_room: usize) -> bool {
        let changed = max_per_room != self.max_per_room;
        self.max_per_room = max_per_room;
        changed
    }

    /// New caps (a config reload). Allocations already held stay; a lowered cap refuses new
    /// ones until enough have ended. True if any cap changed.
    pub fn set_limits(
        &mut self,
        max_per_user: usize,
        max_per_address: usize,
        max_total: usize,
    ) -> bool {
        let new = (max_per_user, max_per_address, max_total);
        let changed = new != (self.max_per_user, self.max_per_address, self.max_total);
        (self.max_per_user, self.max_per_address, self.max_total) = new;
        changed
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn of(&self, login: &str) -> usize {
        self.per_user.get(login).copied().unwrap_or(0)
    }

    #[cfg(test)]
    pub fn of_address(&self, ip: IpAddr) -> usize {
        self.per_address.get(&address_key(ip)).copied().unwrap_or(0)
    }

    pub fn of_room(&self, room: &str) -> usize {
        self.per_room.get(room).copied().unwrap_or(0)
    }

    #[cfg(test)]
    /// Takes one slot for `login` (in no room) at client address `ip`, or says which limit is hit.
    pub fn reserve(&mut self, login: &str, ip: IpAddr) -> Result<Slot, QuotaRefusal> {
        self.reserve_in(login, None, ip)
    }

    /// Takes one slot for `login`, in `room` if it has one, at client address `ip`, or says
    /// which limit is hit. Every count changes here together, and back in [`Quotas::release`].
    pub fn reserve_in(
        &mut self,
        login: &str,
        room: Option<&str>,
        ip: IpAddr,
    ) -> Result<Slot, QuotaRefusal> {
        let address = address_key(ip);
        if self.total >= self.max_total {
            return Err(QuotaRefusal::Total);
        }
        let held = self.of(login);
        if held >= self.max_per_user {
            return Err(QuotaRefusal::PerUser);
        }
        let at_address = self.per_address.get(&address).copied().unwrap_or(0);
        if at_address >= self.max_per_address {
            return Err(QuotaRefusal::PerAddress);
        }
        let in_room = room.map(|r| self.of_room(r));
        if in_room.is_some_and(|n| n >= self.max_per_room) {
            return Err(QuotaRefusal::PerRoom);
        }
        self.per_user.insert(login.to_string(), held + 1);
        self.per_address.insert(address, at_address + 1);
        if let (Some(room), Some(n)) = (room, in_room) {
            self.per_room.insert(room.to_string(), n + 1);
        }
        self.total += 1;
        Ok(Slot {
            login: login.to_string(),
            address,
            room: room.map(str::to_string),
        })
    }

    /// Gives back a slot taken by [`Quotas::reserve`] (it is consumed, so only once).
    pub fn release(&mut self, slot: Slot) {
        decrement(&mut self.per_user, &slot.login);
        decrement(&mut self.per_address, &slot.address);
        if let Some(room) = &slot.room {
            decrement(&mut self.per_room, room);
        }
        self.total = self.total.saturating_sub(1);
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(held) = map.get_mut(key) {
        *held = held.saturating_sub(1);
        if *held == 0 {
            map.remove(key);
            super::admission::shrink_if_sparse(map);
        }
    }
}

/// IPv6 hosts get a /64 each, so one host counts as one address.
fn address_key(ip: IpAddr) -> IpAddr {
    crate::net::client_key(ip)
}

/// What the TURN layer refused or let through, for operators and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub refused_401: AtomicU64,
    pub refused_403: AtomicU64,
    pub refused_440: AtomicU64,
    pub refused_486: AtomicU64,
    pub refused_508: AtomicU64,
    pub send_dropped: AtomicU64,
    pub unauth_passed: AtomicU64,
    pub unauth_dropped: AtomicU64,
    pub clients_refused: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_login_then_total_limits_apply() {
        let mut q = Quotas::new(2, 100, 3);
        let a = q.reserve("a", ip("192.0.2.1")).unwrap();
        q.reserve("a", ip("192.0.2.2")).unwrap();
        assert_eq!(q.reserve("a", ip("192.0.2.3")), Err(QuotaRefusal::PerUser));
        q.reserve("b", ip("192.0.2.3")).unwrap();
        assert_eq!(q.reserve("c", ip("192.0.2.4")), Err(QuotaRefusal::Total));
        q.release(a);
        q.reserve("c", ip("192.0.2.4")).unwrap();
        assert_eq!(q.total(), 3);
        assert_eq!(q.of("a"), 1);
    }

    #[test]
    fn many_logins_from_one_address_hit_the_address_cap() {
        let mut q = Quotas::new(10, 3, 1000);
        let slots: Vec<Slot> = (0..3)
            .map(|i| q.reserve(&format!("login{i}"), ip("2001:db8::1")).unwrap())
            .collect();
        // Another address in the same /64 is the same host.
        assert_eq!(
            q.reserve("login9", ip("2001:db8::2")),
            Err(QuotaRefusal::PerAddress)
        );
        assert!(q.reserve("login9", ip("2001:db8:0:1::2")).is_ok());
        assert_eq!(q.of_address(ip("2001:db8::5")), 3);
        for slot in slots {
            q.release(slot);
        }
        assert_eq!(q.of_address(ip("2001:db8::5")), 0);
        assert_eq!(q.total(), 1);
        assert_eq!(QuotaRefusal::PerAddress.code(), 486);
    }

    #[test]
    fn one_room_hits_its_cap_while_other_rooms_and_roomless_logins_allocate() {
        let mut q = Quotas::new(10, 100, 10);
        q.set_room_limit(2);
        let a = q.reserve_in("a", Some("r1"), ip("192.0.2.1")).unwrap();
        q.reserve_in("b", Some("r1"), ip("192.0.2.2")).unwrap();
        assert_eq!(
            q.reserve_in("c", Some("r1"), ip("192.0.2.3")),
            Err(QuotaRefusal::PerRoom)
        );
        assert_eq!(q.of("c"), 0, "a refusal takes nothing");
        assert_eq!(q.of_address(ip("192.0.2.3")), 0);
        q.reserve_in("d", Some("r2"), ip("192.0.2.4")).unwrap();
        q.reserve("static-user", ip("192.0.2.5")).unwrap();
        assert_eq!((q.of_room("r1"), q.of_room("r2"), q.total()), (2, 1, 4));
        q.release(a);
        assert_eq!(q.of_room("r1"), 1);
        q.reserve_in("c", Some("r1"), ip("192.0.2.3")).unwrap();
        assert!(q.set_room_limit(1), "a reload lowers the cap");
        assert_eq!(
            q.reserve_in("e", Some("r1"), ip("192.0.2.6")),
            Err(QuotaRefusal::PerRoom)
        );
        assert_eq!(QuotaRefusal::PerRoom.code(), 486);
        assert_eq!(QuotaRefusal::PerRoom.label(), "allocations_per_room");
    }
}

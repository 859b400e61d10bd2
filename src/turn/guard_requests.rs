//! The guard's checks of each request kind that reaches it signed (Allocate, CreatePermission
//! and ChannelBind) and of Send indications: family, quota and peer policy, and the split of a
//! multi-peer CreatePermission. A child of `guard` so it works on the guard's own state.

use std::net::SocketAddr;
use std::time::Instant;

use stun::attributes::ATTR_XOR_RELAYED_ADDRESS;
use stun::message::{
    Message, Method, METHOD_ALLOCATE, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_SEND,
};

use super::super::quota::{Counters, QuotaRefusal, Slot};
use super::super::split::{Signing, MAX_PEERS};
use super::super::wire;
use super::{reply, Guard, InboundAction};
use crate::turn::credentials::user_of;

impl Guard {
    pub(super) fn allocate(&mut self, m: &Message, username: &str, key: &[u8]) -> InboundAction {
        let txn = m.transaction_id.0;
        if self.allocs.has_txn(&txn) {
            // A retransmission: the crate answers it (its slot is already held).
            return InboundAction::Pass;
        }
        if !self.allocs.is_empty() {
            // One allocation per 5-tuple, as the crate has it; one still closing counts too (see
            // allocs.rs). Answered before the quota check, so it is not a quota problem.
            return reply(wire::error_response(
                m,
                METHOD_ALLOCATE,
                437,
                "Allocation Mismatch",
                Some(key),
            ));
        }
        let family_ok = match wire::requested_ipv4(m) {
            Some(true) => self.shared.relay_v4,
            Some(false) => self.shared.relay_v6,
            None => false,
        };
        if !family_ok {
            Counters::bump(&self.shared.counters.refused_440);
            return reply(wire::error_response(
                m,
                METHOD_ALLOCATE,
                440,
                "Address Family not Supported",
                Some(key),
            ));
        }
        match self.reserve(username) {
            Ok(slot) => {
                if let Some(old) = self.allocs.pending(txn, slot, username, key) {
                    self.give_back(old); // unreachable: the transport had no allocation
                }
                InboundAction::Pass
            }
            Err(refusal) => {
                let counters = &self.shared.counters;
                let (counter, reason) = match refusal.code() {
                    486 => (&counters.refused_486, "Allocation Quota Reached"),
                    _ => (&counters.refused_508, "Insufficient Capacity"),
                };
                Counters::bump(counter);
                crate::counters::TURN_REFUSALS.quota.bump(refusal.label());
                reply(wire::error_response(
                    m,
                    METHOD_ALLOCATE,
                    refusal.code(),
                    reason,
                    Some(key),
                ))
            }
        }
    }

    pub(super) fn peers(
        &mut self,
        m: &Message,
        method: Method,
        sign: &Signing,
        now: Instant,
    ) -> InboundAction {
        let key = sign.key;
        let peers = wire::peer_addresses(m)
            .ok()
            .filter(|p| p.len() <= MAX_PEERS);
        let Some(peers) = peers else {
            return reply(wire::error_response(
                m,
                method,
                400,
                "Bad Request",
                Some(key),
            ));
        };
        // A permission is IP-wide (own relay ports are checked per datagram); a channel is
        // bound to one transport address.
        let policy = &self.shared.policy;
        let allowed = |p: &SocketAddr| match method {
            METHOD_CREATE_PERMISSION => policy.check_permission(*p),
            _ => policy.check(*p),
        };
        if let Some(why) = peers.iter().find_map(|p| allowed(p).err()) {
            Counters::bump(&self.shared.counters.refused_403);
            crate::counters::TURN_REFUSALS.peer.bump(why.label());
            return reply(wire::error_response(m, method, 403, "Forbidden", Some(key)));
        }
        let capped = match (method, wire::channel_number(m), peers.first()) {
            (METHOD_CHANNEL_BIND, Some(number), Some(peer)) => {
                self.peer_cap.bind(number, *peer, now)
            }
            _ => self.peer_cap.permit(&peers, now),
        };
        if let Err(why) = capped {
            Counters::bump(&self.shared.counters.refused_508);
            crate::counters::TURN_REFUSALS.quota.bump(why.label());
            let reason = "Insufficient Capacity";
            return reply(wire::error_response(m, method, 508, reason, Some(key)));
        }
        if method != METHOD_CREATE_PERMISSION || peers.len() < 2 {
            return InboundAction::Pass;
        }
        // The crate would install only the first peer: one request per peer instead. (With no
        // allocation the crate answers nothing; it may as well not answer the whole request.)
        let Some(relay_v4) = self.allocs.relay().map(|r| r.is_ipv4()) else {
            return InboundAction::Pass;
        };
        if peers.iter().any(|p| p.is_ipv4() != relay_v4) {
            let reason = "Peer Address Family Mismatch";
            return reply(wire::error_response(m, method, 443, reason, Some(key)));
        }
        match self.split.split(m, &peers, sign) {
            Some(first) => InboundAction::PassAs(first),
            None => InboundAction::Drop,
        }
    }

    /// The next part of a split request, to hand to the crate before reading the client again.
    pub fn queued(&mut self) -> Option<Vec<u8>> {
        self.split.next()
    }

    pub(super) fn send_indication(&self, m: &Message) -> InboundAction {
        if m.typ.method != METHOD_SEND {
            return InboundAction::Drop;
        }
        match wire::peer_addresses(m) {
            Ok(peers)
                if !peers.is_empty()
                    && peers.iter().all(|p| self.shared.policy.check(*p).is_ok()) =>
            {
                InboundAction::Pass
            }
            _ => {
                Counters::bump(&self.shared.counters.send_dropped);
                InboundAction::Drop
            }
        }
    }

    /// A quota slot for `username`'s login, in the room of that login if it is live (a static
    /// user, or a login no longer live, counts under no room). The logins lock is let go before
    /// the quotas lock is taken.
    fn reserve(&self, username: &str) -> Result<Slot, QuotaRefusal> {
        let login = user_of(username);
        let room = match login.len() == username.len() {
            true => None, // a static user: no expiry prefix, no login id
            false => crate::lock::lock(&self.shared.logins, "TURN logins")
                .room_of(login)
                .map(str::to_string),
        };
        crate::lock::lock(&self.shared.quotas, "TURN quotas").reserve_in(
            login,
            room.as_deref(),
            self.client.ip(),
        )
    }
}

/// LIFETIME of a Refresh answer, in seconds.
pub(super) fn lifetime_of(m: &Message) -> Option<u64> {
    let mut lifetime = turn::proto::lifetime::Lifetime::default();
    stun::message::Getter::get_from(&mut lifetime, m).ok()?;
    Some(lifetime.0.as_secs())
}

/// XOR-RELAYED-ADDRESS of an Allocate success response: the address the crate will name when
/// it reports the allocation closed.
pub(super) fn relayed_address(m: &Message) -> Option<SocketAddr> {
    let mut addr = stun::xoraddr::XorMappedAddress::default();
    addr.get_from_as(m, ATTR_XOR_RELAYED_ADDRESS).ok()?;
    Some(SocketAddr::new(addr.ip, addr.port))
}

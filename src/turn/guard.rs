//! The guard: what callbox checks on every message before the `turn` crate sees it, and what
//! it learns from every message the crate sends back.
//!
//! The crate accepts any peer, reads only the first XOR-PEER-ADDRESS, has no quotas, answers
//! bad passwords with 400, and mints a never-swept nonce for every unauthenticated request.
//! The guard sits in front of one client transport (a UDP source address or a TCP/TLS
//! connection): it verifies MESSAGE-INTEGRITY itself against every acceptable key (several
//! secrets may be valid, the crate's `AuthHandler` can return only one), refuses bad peers
//! with 403, over-quota Allocates with 486/508, bad or logged-out credentials with 401, and
//! lets only a rate-limited trickle of unauthenticated requests through. Requests on an
//! existing allocation are checked against the key it was made with, so the allocation
//! outlives its credentials (see `allocs.rs`). Plain state, no sockets.

use crate::lock::lock;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::integrity::MessageIntegrity;
use stun::message::{
    Message, CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE,
    METHOD_ALLOCATE, METHOD_BINDING, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH,
};

use super::allocs::TransportAllocs;
use super::credentials::Credentials;
use super::limiter::{Bucket, Limiter};
use super::limits::Budgets;
use super::logins::LiveLogins;
use super::peer_cap::PeerCap;
use super::peer_policy::PeerPolicy;
use super::quota::{Counters, Quotas};
use super::retransmit::ResponseCache;
use super::split::{Signing, Splitter};
use super::wire;

/// The state every client transport of one TURN server consults: credentials, live logins,
/// peer policy, quotas and rate budgets.
pub struct ServerState {
    pub creds: Credentials,
    /// Logins whose REST credentials may still make new allocations.
    pub logins: Mutex<LiveLogins>,
    pub policy: Arc<PeerPolicy>,
    pub quotas: Mutex<Quotas>,
    pub limiter: Mutex<Limiter>,
    /// Per-source budgets for 401 answers and Binding answers.
    pub budgets: Budgets,
    pub counters: Counters,
    pub relay_v4: bool,
    pub relay_v6: bool,
}

/// The key the crate's `AuthHandler` hands back for the request being processed: the guard
/// sets it just before passing an authenticated request on, the crate reads it synchronously
/// while handling that same request (one read loop per client transport, in order).
pub type AuthCell = Arc<Mutex<Option<(String, Vec<u8>)>>>;

/// What the guard does with one inbound message (signaling's rate limit has its own
/// `RateVerdict`; this is about a TURN message's fate, not a rate).
#[derive(Debug, PartialEq, Eq)]
pub enum InboundAction {
    /// Hand it to the crate.
    Pass,
    /// Hand these bytes to the crate instead (the first part of a split request).
    PassAs(Vec<u8>),
    /// Answer it ourselves with these bytes.
    Reply(Vec<u8>),
    /// Drop it silently.
    Drop,
}

/// The crate honours a nonce for an hour after issuing it. The guard remembers every nonce
/// the crate issued on this transport for a little longer, so that any nonce the crate would
/// still accept is one the guard checks credentials, quotas and peers for. (How many there
/// can be is bounded by the unauthenticated-request budget below.)
const NONCE_TRUST: Duration = Duration::from_secs(61 * 60);
/// Unauthenticated requests one client transport may push into the crate: a burst, a slow
/// refill (a legitimate client needs one per allocation plus one per hour), and a hard cap,
/// so the crate's per-transport nonce map stays small however long the transport lives.
const UNAUTH_BURST: f64 = 8.0;
const UNAUTH_RATE: f64 = 1.0 / 60.0;
const UNAUTH_CAP: u32 = 500;

/// The guard for one client transport.
pub struct Guard {
    shared: Arc<ServerState>,
    client: SocketAddr,
    nonces: VecDeque<(String, Instant)>,
    budget: Bucket,
    unauth_passed: u32,
    allocs: TransportAllocs,
    answers: ResponseCache,
    split: Splitter,
    authenticated: bool,
    /// The last inbound message was a correctly authenticated request (activity that keeps
    /// an idle transport alive; junk and unsigned requests never do).
    verified_last: bool,
    /// Permissions and channels of this transport's allocation, capped.
    peer_cap: PeerCap,
    auth: AuthCell,
}

impl Guard {
    pub fn new(shared: Arc<ServerState>, client: SocketAddr, auth: AuthCell, now: Instant) -> Self {
        Guard {
            peer_cap: PeerCap::new(&shared.budgets.limits, now),
            shared,
            client,
            nonces: VecDeque::new(),
            budget: Bucket::full(UNAUTH_BURST, now),
            unauth_passed: 0,
            allocs: TransportAllocs::default(),
            answers: ResponseCache::default(),
            split: Splitter::default(),
            authenticated: false,
            verified_last: false,
            auth,
        }
    }

    pub fn has_allocation(&self) -> bool {
        !self.allocs.is_empty()
    }

    /// Has this transport ever sent a request with valid credentials?
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// Was the last inbound message a correctly authenticated request?
    pub fn verified_last(&self) -> bool {
        self.verified_last
    }

    #[cfg(test)]
    /// How many unauthenticated requests went through to the crate (each may cost a nonce).
    pub fn unauth_passed(&self) -> u32 {
        self.unauth_passed
    }

    pub fn inbound(&mut self, bytes: &[u8], now: Instant, now_unix: u64) -> InboundAction {
        self.verified_last = false;
        if wire::is_channel_data(bytes) {
            return InboundAction::Pass;
        }
        let Some(m) = wire::parse(bytes) else {
            return InboundAction::Drop;
        };
        if m.typ.class == CLASS_INDICATION {
            return self.send_indication(&m);
        }
        if m.typ.class != CLASS_REQUEST {
            return InboundAction::Drop;
        }
        let method = m.typ.method;
        if method == METHOD_BINDING {
            if !self.shared.budgets.binding(self.client.ip(), now) {
                return InboundAction::Drop;
            }
            return reply(wire::binding_response(&m, self.client));
        }
        if let Some(answer) = self.answers.get(method, &m.transaction_id.0, now) {
            // A retransmission: the answer it missed, not a new one (nor the crate's 437).
            if !self.shared.budgets.replay(self.client.ip(), now) {
                return InboundAction::Drop;
            }
            return InboundAction::Reply(answer);
        }
        if ![
            METHOD_ALLOCATE,
            METHOD_REFRESH,
            METHOD_CREATE_PERMISSION,
            METHOD_CHANNEL_BIND,
        ]
        .contains(&method)
        {
            return reply(wire::error_response(&m, method, 400, "Bad Request", None));
        }
        self.signed(&m, now, now_unix)
    }

    /// A TURN request: verified against the nonces the crate issued here and the acceptable
    /// keys, then checked by kind.
    fn signed(&mut self, m: &Message, now: Instant, now_unix: u64) -> InboundAction {
        let method = m.typ.method;
        let nonce = wire::text_attr(m, ATTR_NONCE);
        let known_nonce = nonce.as_deref().filter(|n| self.knows_nonce(n, now));
        let (Some(nonce), true) = (known_nonce, m.contains(ATTR_MESSAGE_INTEGRITY)) else {
            return self.unauthenticated(now);
        };
        let nonce = nonce.to_string();
        let (Some(username), Some(realm)) = (
            wire::text_attr(m, ATTR_USERNAME),
            wire::text_attr(m, ATTR_REALM),
        ) else {
            return reply(wire::error_response(m, method, 400, "Bad Request", None));
        };
        let key = match method {
            METHOD_ALLOCATE => None,
            _ => self.allocation_key(m, &username),
        };
        let Some(key) = key.or_else(|| self.verify(m, &username, &realm, now_unix)) else {
            Counters::bump(&self.shared.counters.refused_401);
            if !self.shared.budgets.unauthorized(self.client.ip(), now) {
                return InboundAction::Drop;
            }
            return reply(wire::unauthorized(m, self.shared.creds.realm(), &nonce));
        };
        self.authenticated = true;
        self.verified_last = true;
        *lock(&self.auth, "TURN auth cell") = Some((username.clone(), key.clone()));
        match method {
            METHOD_ALLOCATE => self.allocate(m, &username, &key),
            METHOD_CREATE_PERMISSION | METHOD_CHANNEL_BIND => {
                let sign = Signing {
                    username: &username,
                    realm: &realm,
                    nonce: &nonce,
                    key: &key,
                };
                self.peers(m, method, &sign, now)
            }
            _ => InboundAction::Pass,
        }
    }

    /// Learns from what the crate sends: the nonces it issued and how Allocates ended. False:
    /// do not send it (the answer to a part of a split request).
    pub fn outbound(&mut self, bytes: &[u8], now: Instant) -> bool {
        if wire::is_channel_data(bytes) {
            return true;
        }
        let Some(m) = wire::parse(bytes) else {
            return true;
        };
        if self.split.swallow(&m.transaction_id.0) {
            return false;
        }
        if m.typ.class == CLASS_ERROR_RESPONSE || m.typ.class == CLASS_SUCCESS_RESPONSE {
            self.answers
                .put(m.typ.method, m.transaction_id.0, bytes, now);
        }
        if m.typ.class == CLASS_ERROR_RESPONSE {
            if let Some(nonce) = wire::text_attr(&m, ATTR_NONCE) {
                self.nonces
                    .retain(|(_, at)| now.saturating_duration_since(*at) < NONCE_TRUST);
                self.nonces.push_back((nonce, now));
            }
        }
        let success = m.typ.class == CLASS_SUCCESS_RESPONSE;
        if m.typ.method == METHOD_REFRESH && success && requests::lifetime_of(&m) == Some(0) {
            // Gone from the crate's table; the slot waits for the relay socket's drop.
            self.allocs.closing(None);
        }
        if m.typ.method != METHOD_ALLOCATE {
            return true;
        }
        let relay = success.then(|| requests::relayed_address(&m)).flatten();
        if let Some(slot) = self.allocs.answered(m.transaction_id.0, success, relay) {
            self.give_back(slot);
        }
        true
    }

    /// The crate closed the allocation at `relay` (its `alloc_close_notify`): it has left the
    /// crate's table, but its packet loop may still be running (see `allocs.rs`).
    pub fn closed(&mut self, relay: SocketAddr) {
        self.allocs.closing(Some(relay));
    }

    /// The relay socket at `relay` was dropped: the allocation is gone for good, so its quota
    /// slot is given back (never on the Refresh(0) that asked for it).
    pub fn relay_dropped(&mut self, relay: SocketAddr) {
        if let Some(slot) = self.allocs.dropped(relay) {
            self.give_back(slot);
        }
    }

    /// The transport ended (and with it the crate server): give the quota slot back.
    pub fn release(&mut self) {
        self.peer_cap.clear();
        if let Some(slot) = self.allocs.drain() {
            self.give_back(slot);
        }
    }

    fn give_back(&self, slot: super::quota::Slot) {
        lock(&self.shared.quotas, "TURN quotas").release(slot);
    }

    fn knows_nonce(&self, nonce: &str, now: Instant) -> bool {
        self.nonces
            .iter()
            .any(|(n, at)| n == nonce && now.saturating_duration_since(*at) < NONCE_TRUST)
    }

    fn unauthenticated(&mut self, now: Instant) -> InboundAction {
        // Whatever this request carries, the crate must not authenticate it with a key the
        // guard verified for an earlier request: it only gets to issue a nonce.
        *lock(&self.auth, "TURN auth cell") = None;
        let counters = &self.shared.counters;
        let budget_ok = self.unauth_passed < UNAUTH_CAP
            && self.budget.take(1.0, UNAUTH_RATE, UNAUTH_BURST, now);
        let admitted = budget_ok
            && lock(&self.shared.limiter, "TURN limiter")
                .admit(self.client.ip(), now)
                .is_ok();
        if admitted {
            self.unauth_passed += 1;
            Counters::bump(&counters.unauth_passed);
            InboundAction::Pass
        } else {
            Counters::bump(&counters.unauth_dropped);
            InboundAction::Drop
        }
    }

    /// The key that makes this message's MESSAGE-INTEGRITY valid, if any, among the keys of
    /// unexpired credentials of a live login (or a static user).
    fn verify(&self, m: &Message, username: &str, realm: &str, now_unix: u64) -> Option<Vec<u8>> {
        let keys = self
            .shared
            .creds
            .candidate_keys(username, realm, now_unix, |login| {
                lock(&self.shared.logins, "TURN logins").is_live(login)
            })
            .ok()?;
        keys.into_iter().find(|key| integrity_ok(m, key))
    }

    /// The key of this transport's allocation made by `username`, if it signs `m`: an
    /// allocation keeps working after its credentials expire or its login ends.
    fn allocation_key(&self, m: &Message, username: &str) -> Option<Vec<u8>> {
        let key = self.allocs.key_of(username)?;
        integrity_ok(m, key).then(|| key.to_vec())
    }
}

pub(super) fn integrity_ok(m: &Message, key: &[u8]) -> bool {
    let mut copy = Message::new();
    copy.raw = m.raw.clone();
    copy.decode().is_ok() && MessageIntegrity(key.to_vec()).check(&mut copy).is_ok()
}

pub(super) fn reply(bytes: Option<Vec<u8>>) -> InboundAction {
    match bytes {
        Some(bytes) => InboundAction::Reply(bytes),
        None => InboundAction::Drop,
    }
}

#[path = "guard_requests.rs"]
mod requests;

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "guard_identity_tests.rs"]
mod identity_tests;

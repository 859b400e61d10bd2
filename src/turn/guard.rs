//! The guard: what callbox checks on every message before the `turn` crate sees it, and what
//! it learns from every message the crate sends back.
//!
//! The crate accepts any peer, reads only the first XOR-PEER-ADDRESS, has no quotas, answers
//! bad passwords with 400, and mints a never-swept nonce for every unauthenticated request.
//! The guard sits in front of one client transport (a UDP source address or a TCP/TLS
//! connection): it verifies MESSAGE-INTEGRITY itself against every acceptable key (several
//! secrets may be valid, the crate's `AuthHandler` can return only one), refuses bad peers
//! with 403, over-quota Allocates with 486/508, bad credentials with 401, and lets only a
//! rate-limited trickle of unauthenticated requests through. Plain state, no sockets.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::integrity::MessageIntegrity;
use stun::message::{
    Message, Method, CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE,
    METHOD_ALLOCATE, METHOD_BINDING, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH,
    METHOD_SEND,
};

use super::credentials::{user_of, Credentials};
use super::limiter::{Bucket, Limiter};
use super::limits::Budgets;
use super::peer_cap::PeerCap;
use super::peer_policy::PeerPolicy;
use super::quota::{Counters, Quotas};
use super::wire;

/// State shared by every client transport of one server.
pub struct Shared {
    pub creds: Credentials,
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

/// What to do with one inbound message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the crate.
    Pass,
    /// Answer it ourselves with these bytes.
    Reply(Vec<u8>),
    /// Drop it silently.
    Drop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Alloc {
    None,
    Pending { txn: [u8; 12], user: String },
    Active { user: String },
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
    shared: Arc<Shared>,
    client: SocketAddr,
    nonces: VecDeque<(String, Instant)>,
    budget: Bucket,
    unauth_passed: u32,
    alloc: Alloc,
    authenticated: bool,
    /// The last inbound message was a correctly authenticated request (activity that keeps
    /// an idle transport alive; junk and unsigned requests never do).
    verified_last: bool,
    /// Permissions and channels of this transport's allocation, capped.
    peer_cap: PeerCap,
    auth: AuthCell,
}

impl Guard {
    pub fn new(shared: Arc<Shared>, client: SocketAddr, auth: AuthCell, now: Instant) -> Self {
        Guard {
            peer_cap: PeerCap::new(&shared.budgets.limits, now),
            shared,
            client,
            nonces: VecDeque::new(),
            budget: Bucket::full(UNAUTH_BURST, now),
            unauth_passed: 0,
            alloc: Alloc::None,
            authenticated: false,
            verified_last: false,
            auth,
        }
    }

    pub fn has_allocation(&self) -> bool {
        self.alloc != Alloc::None
    }

    /// Has this transport ever sent a request with valid credentials?
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// Was the last inbound message a correctly authenticated request?
    pub fn verified_last(&self) -> bool {
        self.verified_last
    }

    /// How many unauthenticated requests went through to the crate (each may cost a nonce).
    pub fn unauth_passed(&self) -> u32 {
        self.unauth_passed
    }

    pub fn inbound(&mut self, bytes: &[u8], now: Instant, now_unix: u64) -> Verdict {
        self.verified_last = false;
        if wire::is_channel_data(bytes) {
            return Verdict::Pass;
        }
        let Some(m) = wire::parse(bytes) else {
            return Verdict::Drop;
        };
        if m.typ.class == CLASS_INDICATION {
            return self.send_indication(&m);
        }
        if m.typ.class != CLASS_REQUEST {
            return Verdict::Drop;
        }
        let method = m.typ.method;
        if method == METHOD_BINDING {
            if !self.shared.budgets.binding(self.client.ip(), now) {
                return Verdict::Drop;
            }
            return reply(wire::binding_response(&m, self.client));
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
        let nonce = wire::text_attr(&m, ATTR_NONCE);
        let known_nonce = nonce.as_deref().filter(|n| self.knows_nonce(n, now));
        let (Some(nonce), true) = (known_nonce, m.contains(ATTR_MESSAGE_INTEGRITY)) else {
            return self.unauthenticated(now);
        };
        let nonce = nonce.to_string();
        let (Some(username), Some(realm)) = (
            wire::text_attr(&m, ATTR_USERNAME),
            wire::text_attr(&m, ATTR_REALM),
        ) else {
            return reply(wire::error_response(&m, method, 400, "Bad Request", None));
        };
        let Some(key) = self.verify(&m, &username, &realm, now_unix) else {
            Counters::bump(&self.shared.counters.refused_401);
            if !self.shared.budgets.unauthorized(self.client.ip(), now) {
                return Verdict::Drop;
            }
            return reply(wire::unauthorized(&m, self.shared.creds.realm(), &nonce));
        };
        self.authenticated = true;
        self.verified_last = true;
        if let Ok(mut cell) = self.auth.lock() {
            *cell = Some((username.clone(), key.clone()));
        }
        match method {
            METHOD_ALLOCATE => self.allocate(&m, user_of(&username), &key),
            METHOD_CREATE_PERMISSION | METHOD_CHANNEL_BIND => self.peers(&m, method, &key, now),
            _ => Verdict::Pass,
        }
    }

    /// Learns from what the crate sends: the nonces it issued and how Allocates ended.
    pub fn outbound(&mut self, bytes: &[u8], now: Instant) {
        if wire::is_channel_data(bytes) {
            return;
        }
        let Some(m) = wire::parse(bytes) else { return };
        if m.typ.class == CLASS_ERROR_RESPONSE {
            if let Some(nonce) = wire::text_attr(&m, ATTR_NONCE) {
                self.nonces
                    .retain(|(_, at)| now.saturating_duration_since(*at) < NONCE_TRUST);
                self.nonces.push_back((nonce, now));
            }
        }
        if m.typ.method != METHOD_ALLOCATE {
            return;
        }
        let Alloc::Pending { txn, user } = &self.alloc else {
            return;
        };
        if *txn != m.transaction_id.0 {
            return;
        }
        if m.typ.class == CLASS_SUCCESS_RESPONSE {
            self.alloc = Alloc::Active { user: user.clone() };
        } else if m.typ.class == CLASS_ERROR_RESPONSE {
            self.release();
        }
    }

    /// The allocation ended (or the transport did): give its quota slot back.
    pub fn release(&mut self) {
        self.peer_cap.clear();
        let user = match std::mem::replace(&mut self.alloc, Alloc::None) {
            Alloc::None => return,
            Alloc::Pending { user, .. } | Alloc::Active { user } => user,
        };
        if let Ok(mut quotas) = self.shared.quotas.lock() {
            quotas.release(&user);
        }
    }

    fn knows_nonce(&self, nonce: &str, now: Instant) -> bool {
        self.nonces
            .iter()
            .any(|(n, at)| n == nonce && now.saturating_duration_since(*at) < NONCE_TRUST)
    }

    fn unauthenticated(&mut self, now: Instant) -> Verdict {
        // Whatever this request carries, the crate must not authenticate it with a key the
        // guard verified for an earlier request: it only gets to issue a nonce.
        if let Ok(mut cell) = self.auth.lock() {
            *cell = None;
        }
        let counters = &self.shared.counters;
        let budget_ok = self.unauth_passed < UNAUTH_CAP
            && self.budget.take(1.0, UNAUTH_RATE, UNAUTH_BURST, now);
        let admitted = budget_ok
            && self
                .shared
                .limiter
                .lock()
                .is_ok_and(|mut l| l.admit(self.client.ip(), now).is_ok());
        if admitted {
            self.unauth_passed += 1;
            Counters::bump(&counters.unauth_passed);
            Verdict::Pass
        } else {
            Counters::bump(&counters.unauth_dropped);
            Verdict::Drop
        }
    }

    /// The key that makes this message's MESSAGE-INTEGRITY valid, if any.
    fn verify(&self, m: &Message, username: &str, realm: &str, now_unix: u64) -> Option<Vec<u8>> {
        let keys = self
            .shared
            .creds
            .candidate_keys(username, realm, now_unix)
            .ok()?;
        keys.into_iter().find(|key| {
            let mut copy = Message::new();
            copy.raw = m.raw.clone();
            copy.decode().is_ok() && MessageIntegrity(key.clone()).check(&mut copy).is_ok()
        })
    }

    fn allocate(&mut self, m: &Message, user: &str, key: &[u8]) -> Verdict {
        if self.alloc != Alloc::None {
            // A retransmission or a second Allocate on this 5-tuple: the crate answers
            // (success is not repeated; 437 for a real second one).
            return Verdict::Pass;
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
        let reserved = match self.shared.quotas.lock() {
            Ok(mut quotas) => quotas.reserve(user),
            Err(_) => Err(super::quota::QuotaRefusal::Total),
        };
        match reserved {
            Ok(()) => {
                self.alloc = Alloc::Pending {
                    txn: m.transaction_id.0,
                    user: user.to_string(),
                };
                Verdict::Pass
            }
            Err(refusal) => {
                let counters = &self.shared.counters;
                let (counter, reason) = match refusal.code() {
                    486 => (&counters.refused_486, "Allocation Quota Reached"),
                    _ => (&counters.refused_508, "Insufficient Capacity"),
                };
                Counters::bump(counter);
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

    fn peers(&mut self, m: &Message, method: Method, key: &[u8], now: Instant) -> Verdict {
        let Ok(peers) = wire::peer_addresses(m) else {
            return reply(wire::error_response(
                m,
                method,
                400,
                "Bad Request",
                Some(key),
            ));
        };
        if peers.iter().any(|p| self.shared.policy.check(*p).is_err()) {
            Counters::bump(&self.shared.counters.refused_403);
            return reply(wire::error_response(m, method, 403, "Forbidden", Some(key)));
        }
        let capped = match (method, wire::channel_number(m), peers.first()) {
            (METHOD_CHANNEL_BIND, Some(number), Some(peer)) => {
                self.peer_cap.bind(number, *peer, now)
            }
            _ => self.peer_cap.permit(&peers, now),
        };
        if capped.is_err() {
            Counters::bump(&self.shared.counters.refused_508);
            let reason = "Insufficient Capacity";
            return reply(wire::error_response(m, method, 508, reason, Some(key)));
        }
        Verdict::Pass
    }

    fn send_indication(&self, m: &Message) -> Verdict {
        if m.typ.method != METHOD_SEND {
            return Verdict::Drop;
        }
        match wire::peer_addresses(m) {
            Ok(peers)
                if !peers.is_empty()
                    && peers.iter().all(|p| self.shared.policy.check(*p).is_ok()) =>
            {
                Verdict::Pass
            }
            _ => {
                Counters::bump(&self.shared.counters.send_dropped);
                Verdict::Drop
            }
        }
    }
}

fn reply(bytes: Option<Vec<u8>>) -> Verdict {
    match bytes {
        Some(bytes) => Verdict::Reply(bytes),
        None => Verdict::Drop,
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;

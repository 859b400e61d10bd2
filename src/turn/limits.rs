//! The TURN layer's built-in limits against clients that never authenticate, in one place.
//!
//! An open UDP/TCP port on the internet gets squatters and floods: sources that take client
//! slots without ever proving who they are, or make the server answer (and mint nonces) for
//! them. These are the knobs that bound what such a source costs and how long it stays. They
//! are not config keys: the defaults suit any deployment, and tests shorten the lifetimes
//! through [`crate::turn::TurnServer::start_with_limits`] so nothing waits 15 s.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lock::lock;

use super::limiter::{Limiter, Limits};

/// Every tunable limit of the TURN layer that is not in `[turn]`.
#[derive(Debug, Clone)]
pub struct TurnLimits {
    /// A transport that never sent a correctly authenticated request ends this long after it
    /// began, whatever it sends.
    pub unauthenticated_lifetime: Duration,
    /// An authenticated transport with no allocation ends after this long without an
    /// authenticated request (junk and unsigned requests do not count as activity).
    pub idle: Duration,
    /// From TCP accept to the end of the TLS handshake.
    pub tls_handshake: Duration,
    /// From the start of a TURN stream (after TLS) to its first complete TURN message.
    pub first_message: Duration,
    /// UDP sessions one client address (IPv6: one /64) may hold at once.
    pub udp_sessions_per_address: usize,
    /// TCP plus TLS connections one client address (IPv6: one /64) may hold at once.
    pub stream_connections_per_address: usize,
    /// Permissions (distinct peer IPs) one allocation may hold; more are refused with 508.
    pub permissions_per_allocation: usize,
    /// Channels one allocation may hold; more are refused with 508.
    pub channels_per_allocation: usize,
    /// New permissions plus new channels an allocation may create: burst, then per second.
    pub peer_creations_burst: f64,
    pub peer_creations_per_sec: f64,
    /// Unauthenticated requests let through to the crate (each costs a nonce and a 401).
    pub nonce: Limits,
    /// 401 answers the guard itself sends for bad credentials.
    pub unauthorized: Limits,
    /// Binding answers (stateless, but each is a datagram a spoofed source can aim).
    pub binding: Limits,
    /// Answers replayed from the retransmit cache: cheap, but without a budget one request
    /// repeated by a spoofed source would aim an unbounded stream of answers at its victim.
    pub replay: Limits,
    /// How often the host's interface addresses are re-read for the peer policy.
    pub host_poll: Duration,
}

impl Default for TurnLimits {
    fn default() -> Self {
        TurnLimits {
            unauthenticated_lifetime: Duration::from_secs(15),
            idle: Duration::from_secs(120),
            tls_handshake: Duration::from_secs(10),
            first_message: Duration::from_secs(5),
            udp_sessions_per_address: 64,
            stream_connections_per_address: 64,
            permissions_per_allocation: 64,
            channels_per_allocation: 64,
            peer_creations_burst: 32.0,
            peer_creations_per_sec: 2.0,
            nonce: Limits::default(),
            unauthorized: Limits {
                per_ip_rate: 1.0,
                per_ip_burst: 10.0,
                ..Limits::default()
            },
            binding: Limits {
                per_ip_rate: 20.0,
                per_ip_burst: 100.0,
                global_rate: 20_000.0,
                global_burst: 40_000.0,
                ..Limits::default()
            },
            // A real client retransmits a request at most 7 times (RFC 8489 §6.2.1).
            replay: Limits {
                per_ip_rate: 5.0,
                per_ip_burst: 20.0,
                global_rate: 20_000.0,
                global_burst: 40_000.0,
                ..Limits::default()
            },
            host_poll: Duration::from_secs(15),
        }
    }
}

impl TurnLimits {
    /// The per-address cap actually applied: never more than a quarter of `max_clients`, so
    /// one address can never hold every slot, however small the server is.
    pub fn per_address(configured: usize, max_clients: usize) -> usize {
        configured.min((max_clients / 4).max(1))
    }
}

/// What a source may make the server answer before authenticating (besides the nonce
/// budget, which lives in [`crate::turn::guard::ServerState::limiter`]).
#[derive(Debug)]
pub struct Budgets {
    pub limits: TurnLimits,
    unauthorized: Mutex<Limiter>,
    binding: Mutex<Limiter>,
    replay: Mutex<Limiter>,
}

impl Budgets {
    pub fn new(limits: TurnLimits, now: Instant) -> Self {
        Budgets {
            unauthorized: Mutex::new(Limiter::new(limits.unauthorized, now)),
            binding: Mutex::new(Limiter::new(limits.binding, now)),
            replay: Mutex::new(Limiter::new(limits.replay, now)),
            limits,
        }
    }

    /// May the guard answer one more bad-credentials request from `ip` with a 401?
    pub fn unauthorized(&self, ip: IpAddr, now: Instant) -> bool {
        admit(&self.unauthorized, ip, now)
    }

    /// May the server answer one more Binding request from `ip`?
    pub fn binding(&self, ip: IpAddr, now: Instant) -> bool {
        admit(&self.binding, ip, now)
    }

    /// May the guard replay one more cached answer to `ip`?
    pub fn replay(&self, ip: IpAddr, now: Instant) -> bool {
        admit(&self.replay, ip, now)
    }

    /// Forgets sources whose buckets have refilled.
    pub fn sweep(&self, now: Instant) {
        for l in [&self.unauthorized, &self.binding, &self.replay] {
            lock(l, "TURN source limiter").sweep(now);
        }
    }

    /// Sources the three tables remember.
    pub fn tracked(&self) -> usize {
        [&self.unauthorized, &self.binding, &self.replay]
            .iter()
            .map(|l| lock(l, "TURN source limiter").tracked())
            .sum()
    }
}

fn admit(limiter: &Mutex<Limiter>, ip: IpAddr, now: Instant) -> bool {
    lock(limiter, "TURN source limiter").admit(ip, now).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_never_gets_every_slot() {
        assert_eq!(TurnLimits::per_address(64, 8), 2);
        assert_eq!(TurnLimits::per_address(64, 1), 1);
        assert_eq!(TurnLimits::per_address(64, 4096), 64);
    }

    #[test]
    fn binding_and_401_budgets_are_per_source() {
        let t0 = Instant::now();
        let b = Budgets::new(TurnLimits::default(), t0);
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let other: IpAddr = "198.51.100.2".parse().unwrap();
        let passed = (0..10_000).filter(|_| b.binding(a, t0)).count();
        assert_eq!(passed, 100);
        assert!(b.binding(other, t0));
        let passed = (0..10_000).filter(|_| b.unauthorized(a, t0)).count();
        assert_eq!(passed, 10);
        assert!(b.unauthorized(other, t0));
    }
}

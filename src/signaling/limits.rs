//! Limits that keep one client (or one address) from hurting the others: a token bucket per
//! connection and a count of open connections per client address. Plain state; time is passed
//! in so tests need no clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::rate::Bucket;

/// `rate` tokens per second, holding at most `capacity` (a [`Bucket`] with its settings).
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    bucket: Bucket,
}

impl TokenBucket {
    pub fn new(rate: u32, capacity: u32, now: Instant) -> TokenBucket {
        let capacity = f64::from(capacity.max(1));
        TokenBucket {
            rate: f64::from(rate),
            capacity,
            bucket: Bucket::full(capacity, now),
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.bucket.take(1.0, self.rate, self.capacity, now)
    }
}

/// Per-connection message limit. Messages over the rate are refused one by one; a client that
/// keeps sending well over the rate (refusals outpace a second bucket) is a flood and is closed.
#[derive(Debug)]
pub struct RateLimit {
    messages: TokenBucket,
    patience: TokenBucket,
}

/// What [`RateLimit::check`] says about one message.
#[derive(Debug, PartialEq, Eq)]
pub enum RateVerdict {
    Accept,
    Refuse,
    Flood,
}

impl RateLimit {
    /// `per_second` sustained, plus `burst` on top (an ICE candidate storm at call set-up).
    pub fn new(per_second: u32, burst: u32, now: Instant) -> RateLimit {
        RateLimit {
            messages: TokenBucket::new(per_second, per_second.saturating_add(burst), now),
            patience: TokenBucket::new(per_second, burst.max(per_second), now),
        }
    }

    pub fn check(&mut self, now: Instant) -> RateVerdict {
        if self.messages.take(now) {
            RateVerdict::Accept
        } else if self.patience.take(now) {
            RateVerdict::Refuse
        } else {
            RateVerdict::Flood
        }
    }
}

/// Counts open connections per client address. IPv6 clients are counted per /64, since one
/// host usually holds a whole /64.
#[derive(Debug, Clone, Default)]
pub struct PerIpLimit {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection's place in the count, given back on drop.
#[derive(Debug)]
pub struct IpSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIpLimit {
    /// A slot for `ip`, or None when it already has `max` connections open.
    /// `max` is read per call: SIGHUP can change it for the next connection.
    pub fn acquire(&self, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let ip = bucket_of(ip);
        let mut open = crate::lock::lock(&self.open, "WebSocket per-address count");
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            ip,
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = crate::lock::lock(&self.open, "WebSocket per-address count");
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The unit addresses are counted in: the address itself, or for IPv6 its /64.
pub(crate) fn bucket_of(ip: IpAddr) -> IpAddr {
    crate::net::client_key(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_rate_plus_burst_then_refills() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(10, 40, t0);
        let accepted = (0..100)
            .filter(|_| limit.check(t0) == RateVerdict::Accept)
            .count();
        assert_eq!(accepted, 50);
        assert_eq!(
            limit.check(t0 + Duration::from_millis(100)),
            RateVerdict::Accept
        );
    }

    #[test]
    fn sustained_flood_is_detected_but_mild_excess_is_only_refused() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(10, 20, t0);
        let verdicts: Vec<RateVerdict> = (0..30 + 20).map(|_| limit.check(t0)).collect();
        assert!(verdicts[..30].iter().all(|v| *v == RateVerdict::Accept));
        assert!(verdicts[30..].iter().all(|v| *v == RateVerdict::Refuse));
        assert_eq!(limit.check(t0), RateVerdict::Flood);

        // Twice the rate for 10 s: refusals, never a flood.
        let mut limit = RateLimit::new(10, 20, t0);
        for i in 0..200u64 {
            let v = limit.check(t0 + Duration::from_millis(50 * i));
            assert_ne!(v, RateVerdict::Flood, "message {i}");
        }
    }

    #[test]
    fn per_ip_slots_are_counted_and_returned() {
        let (limit, max) = (PerIpLimit::default(), 2);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a = limit.acquire(ip, max).unwrap();
        let _b = limit.acquire(ip, max).unwrap();
        assert!(limit.acquire(ip, max).is_none());
        assert!(limit.acquire("192.0.2.8".parse().unwrap(), max).is_some());
        drop(a);
        assert!(limit.acquire(ip, max).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let (limit, max) = (PerIpLimit::default(), 1);
        let _a = limit.acquire("2001:db8::1".parse().unwrap(), max).unwrap();
        assert!(limit.acquire("2001:db8::2".parse().unwrap(), max).is_none());
        assert!(limit
            .acquire("2001:db8:0:1::1".parse().unwrap(), max)
            .is_some());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let _c = limit.acquire(mapped, max).unwrap();
        assert!(limit.acquire("192.0.2.1".parse().unwrap(), max).is_none());
    }
}

//! Rate limits for requests that cost state before anyone has proven who they are.
//!
//! Every unauthenticated TURN request makes the `turn` crate mint a nonce and keep it in a map
//! it never sweeps. The limiter bounds how many such requests reach the crate: per source IP
//! (IPv6 per /64, since one host owns a whole /64) and for the whole server. Its own table is
//! bounded too: when full, idle entries are evicted, and if none are idle the request is
//! refused, so a flood from many addresses costs a fixed amount of memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub use crate::rate::Bucket;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_ip_rate: f64,
    pub per_ip_burst: f64,
    pub global_rate: f64,
    pub global_burst: f64,
    pub max_tracked: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_ip_rate: 2.0,
            per_ip_burst: 20.0,
            // Per source first, then global; the global bucket is sized so that draining it
            // takes 500 sources (IPv6 /64s) spending their whole burst at once, or 2500
            // flooding steadily: a handful of sources cannot lock everyone else out.
            global_rate: 5000.0,
            global_burst: 10_000.0,
            max_tracked: 8192,
        }
    }
}

/// Why a request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    PerIp,
    Global,
    TableFull,
}

#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    global: Bucket,
    per_ip: HashMap<IpAddr, Bucket>,
    /// When a full table was last searched for idle entries.
    evicted_at: Option<Instant>,
}

/// Least time between two searches of a full table for idle entries. A search walks the
/// whole table (8192 entries by default); done for every request from a new source, a flood
/// from more sources than the table holds (an IPv6 /48 is 65 536 of them) would spend a core
/// on it. In between, a new source is refused at once.
const EVICT_GAP: Duration = Duration::from_millis(100);

impl Limiter {
    pub fn new(limits: Limits, now: Instant) -> Self {
        Limiter {
            limits,
            global: Bucket::full(limits.global_burst, now),
            per_ip: HashMap::new(),
            evicted_at: None,
        }
    }

    pub fn tracked(&self) -> usize {
        self.per_ip.len()
    }

    /// May one more unauthenticated request from `ip` go through?
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), Limited> {
        let key = key_of(ip);
        let l = self.limits;
        if !self.per_ip.contains_key(&key) {
            let due = |at: Instant| now.saturating_duration_since(at) >= EVICT_GAP;
            if self.per_ip.len() >= l.max_tracked && self.evicted_at.is_none_or(due) {
                self.per_ip
                    .retain(|_, b| !b.is_full(l.per_ip_rate, l.per_ip_burst, now));
                self.evicted_at = Some(now);
            }
            if self.per_ip.len() >= l.max_tracked {
                return Err(Limited::TableFull);
            }
            self.per_ip.insert(key, Bucket::full(l.per_ip_burst, now));
        }
        let bucket = self.per_ip.get_mut(&key).ok_or(Limited::TableFull)?;
        if !bucket.take(1.0, l.per_ip_rate, l.per_ip_burst, now) {
            return Err(Limited::PerIp);
        }
        if !self.global.take(1.0, l.global_rate, l.global_burst, now) {
            return Err(Limited::Global);
        }
        Ok(())
    }

    /// Drops entries that have refilled completely: they hold nothing worth remembering.
    pub fn sweep(&mut self, now: Instant) {
        let l = self.limits;
        self.per_ip
            .retain(|_, b| !b.is_full(l.per_ip_rate, l.per_ip_burst, now));
        super::admission::shrink_if_sparse(&mut self.per_ip);
    }
}

/// IPv6 hosts get a /64 each, so limiting per address would let one host use 2^64 buckets.
pub fn key_of(ip: IpAddr) -> IpAddr {
    crate::net::client_key(ip)
}

/// How often the table is swept of idle entries.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            per_ip_rate: 1.0,
            per_ip_burst: 5.0,
            global_rate: 10.0,
            global_burst: 20.0,
            max_tracked: 4,
        }
    }

    #[test]
    fn one_ip_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut l = Limiter::new(limits(), t0);
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let passed = (0..1000).filter(|_| l.admit(ip, t0).is_ok()).count();
        assert_eq!(passed, 5);
        assert_eq!(l.admit(ip, t0), Err(Limited::PerIp));
        assert!(l.admit(ip, t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn global_limit_caps_many_ips() {
        let t0 = Instant::now();
        let mut lim = limits();
        lim.max_tracked = 1000;
        let mut l = Limiter::new(lim, t0);
        let passed = (0..100u8)
            .filter(|i| l.admit(IpAddr::from([10, 0, 0, *i]), t0).is_ok())
            .count();
        assert_eq!(passed, 20);
    }

    #[test]
    fn table_stays_bounded_and_evicts_idle_entries() {
        let t0 = Instant::now();
        let mut l = Limiter::new(limits(), t0);
        for i in 0..100u8 {
            let _ = l.admit(IpAddr::from([10, 0, 0, i]), t0);
            assert!(l.tracked() <= 4);
        }
        let later = t0 + Duration::from_secs(60);
        assert!(l.admit(IpAddr::from([10, 0, 1, 1]), later).is_ok());
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn a_full_table_is_searched_for_idle_entries_at_most_once_per_gap() {
        let t0 = Instant::now();
        let mut l = Limiter::new(limits(), t0);
        for i in 0..4u8 {
            assert!(l.admit(IpAddr::from([10, 0, 0, i]), t0).is_ok());
        }
        let newcomer = |n: u8| IpAddr::from([10, 0, 1, n]);
        // Nothing idle yet (each entry refills its one token at t0 + 1 s): refused.
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(l.admit(newcomer(1), at(950)), Err(Limited::TableFull));
        // Idle now, but the table was searched 50 ms ago: refused without a search.
        assert_eq!(l.admit(newcomer(2), at(1000)), Err(Limited::TableFull));
        assert_eq!(l.tracked(), 4);
        // Past the gap, the search finds the idle entries.
        assert!(l.admit(newcomer(3), at(1000) + EVICT_GAP).is_ok());
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn ipv6_hosts_share_a_bucket_per_64() {
        let t0 = Instant::now();
        let mut l = Limiter::new(limits(), t0);
        for i in 0..5u16 {
            let ip = IpAddr::from([0x2001, 0x470, 1, 2, 0, 0, 0, i]);
            assert!(l.admit(ip, t0).is_ok());
        }
        let other = IpAddr::from([0x2001, 0x470, 1, 2, 9, 9, 9, 9]);
        assert_eq!(l.admit(other, t0), Err(Limited::PerIp));
        assert_eq!(l.tracked(), 1);
    }
}

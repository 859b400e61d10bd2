//! Connections per client address on the web listener, counted before the TLS handshake so a
//! single host cannot take every slot of the listener with sockets that never finish one.
//! IPv6 clients count per /64 ([`crate::net::client_key`]).
//!
//! [`AddressCounts`] is plain state (time is passed in); [`PerAddress`] shares it behind a std
//! mutex and hands out an [`AddressGuard`] that gives the share back when dropped, wherever the
//! connection ends (HTTP, an upgraded WebSocket, or TURN over TLS).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Refusals are logged at most this often, with a count, so a flood cannot flood the log too.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Open connections per address key, and refusals not yet reported.
#[derive(Debug)]
pub struct AddressCounts {
    cap: usize,
    counts: HashMap<IpAddr, usize>,
    unreported: u64,
    last_report: Option<Instant>,
}

impl AddressCounts {
    pub fn new(cap: usize) -> AddressCounts {
        AddressCounts {
            cap: cap.max(1),
            counts: HashMap::new(),
            unreported: 0,
            last_report: None,
        }
    }

    /// Counts one more connection under `key` unless that key is at its cap.
    pub fn try_add(&mut self, key: IpAddr) -> bool {
        let count = self.counts.entry(key).or_insert(0);
        if *count >= self.cap {
            return false;
        }
        *count += 1;
        true
    }

    /// One connection under `key` ended. Keys at zero are forgotten, so the table holds only
    /// addresses with open connections (bounded by the listener's own cap).
    pub fn remove(&mut self, key: IpAddr) {
        if let Some(count) = self.counts.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.counts.remove(&key);
            }
        }
    }

    #[cfg(test)]
    /// Open connections under `key`.
    pub fn count(&self, key: IpAddr) -> usize {
        self.counts.get(&key).copied().unwrap_or(0)
    }

    #[cfg(test)]
    /// Addresses with at least one open connection.
    pub fn addresses(&self) -> usize {
        self.counts.len()
    }

    /// Notes a refusal; returns how many to report when a report is due (the first refusal at
    /// once, then at most one report per [`REPORT_EVERY`]).
    pub fn note_refusal(&mut self, now: Instant) -> Option<u64> {
        self.unreported += 1;
        let due = match self.last_report {
            None => true,
            Some(last) => now.saturating_duration_since(last) >= REPORT_EVERY,
        };
        if !due {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

/// The listener's shared table.
#[derive(Debug, Clone)]
pub struct PerAddress {
    cap: usize,
    table: Arc<Mutex<AddressCounts>>,
}

/// Holds one connection's share of its address; gives it back on drop.
#[derive(Debug)]
pub struct AddressGuard {
    table: Arc<Mutex<AddressCounts>>,
    key: IpAddr,
}

/// A connection refused because its address is at the cap.
#[derive(Debug, thiserror::Error)]
#[error("address {key} already has {cap} connections")]
pub struct OverCap {
    pub key: IpAddr,
    pub cap: usize,
    /// Refusals (this one included) to log now, if a report is due.
    pub report: Option<u64>,
}

impl PerAddress {
    pub fn new(cap: usize) -> PerAddress {
        PerAddress {
            cap: cap.max(1),
            table: Arc::new(Mutex::new(AddressCounts::new(cap))),
        }
    }

    pub fn acquire(&self, ip: IpAddr, now: Instant) -> Result<AddressGuard, OverCap> {
        let key = crate::net::client_key(ip);
        let mut table = lock(&self.table);
        if table.try_add(key) {
            return Ok(AddressGuard {
                table: Arc::clone(&self.table),
                key,
            });
        }
        Err(OverCap {
            key,
            cap: self.cap,
            report: table.note_refusal(now),
        })
    }
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        lock(&self.table).remove(self.key);
    }
}

/// The table stays consistent even if a holder panicked (every update is one step).
fn lock(table: &Mutex<AddressCounts>) -> MutexGuard<'_, AddressCounts> {
    crate::lock::lock(table, "web per-address count")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_at_its_cap_is_refused_while_others_are_not() {
        let mut counts = AddressCounts::new(2);
        assert!(counts.try_add(ip("192.0.2.1")));
        assert!(counts.try_add(ip("192.0.2.1")));
        assert!(!counts.try_add(ip("192.0.2.1")));
        assert!(counts.try_add(ip("192.0.2.2")));
        counts.remove(ip("192.0.2.1"));
        assert!(counts.try_add(ip("192.0.2.1")));
    }

    #[test]
    fn addresses_without_connections_are_forgotten() {
        let mut counts = AddressCounts::new(4);
        counts.try_add(ip("192.0.2.1"));
        counts.remove(ip("192.0.2.1"));
        counts.remove(ip("192.0.2.1"));
        assert_eq!(counts.addresses(), 0);
        assert_eq!(counts.count(ip("192.0.2.1")), 0);
    }

    #[test]
    fn refusals_are_reported_first_at_once_then_counted_per_interval() {
        let mut counts = AddressCounts::new(1);
        let t0 = Instant::now();
        assert_eq!(counts.note_refusal(t0), Some(1));
        assert_eq!(counts.note_refusal(t0 + Duration::from_secs(1)), None);
        assert_eq!(counts.note_refusal(t0 + Duration::from_secs(2)), None);
        assert_eq!(counts.note_refusal(t0 + REPORT_EVERY), Some(3));
    }

    #[test]
    fn a_guard_gives_its_share_back_when_dropped_and_ipv6_counts_per_slash_64() {
        let table = PerAddress::new(1);
        let now = Instant::now();
        let guard = table.acquire(ip("2001:db8::1"), now).expect("first");
        let refused = table.acquire(ip("2001:db8::2"), now).expect_err("same /64");
        assert_eq!(refused.key, ip("2001:db8::"));
        assert!(table.acquire(ip("2001:db8:0:1::1"), now).is_ok());
        drop(guard);
        assert!(table.acquire(ip("2001:db8::2"), now).is_ok());
    }
}

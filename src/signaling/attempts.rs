//! Wrong access codes, counted per client address, so a room's code cannot be guessed at the
//! speed of the message rate limit (20 a second, times 20 connections). The first few mistakes
//! are free (people mistype); after that the address must wait before its next try, 1 s and
//! doubling up to 5 minutes, and is told how long. The table is plain state taking `now`
//! ([`AttemptTable`]); [`AccessGuard`] is the thin part the socket edge calls, which also logs
//! once per burst instead of once per attempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::hub::HubConfig;
use super::limits::bucket_of;
use super::protocol::{Limits, LoginFailure};

/// Wrong codes an address may send before it has to wait.
pub const FREE_FAILURES: u32 = 5;
/// The wait after the last free failure; it doubles with every further failure.
pub const FIRST_BLOCK: Duration = Duration::from_secs(1);
pub const MAX_BLOCK: Duration = Duration::from_secs(300);
/// An address with no failure for this long is forgotten: its next failure starts a new burst.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Addresses remembered at once; past it the stalest is forgotten.
pub const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

/// What one more wrong code means for its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Still within the free failures.
    Counted,
    /// The address must now wait `wait`; `first_of_burst` on the failure that started it.
    Blocked {
        failures: u32,
        wait: Duration,
        first_of_burst: bool,
    },
}

/// Failure counts per client address (IPv6 per /64, as the connection limit counts them).
#[derive(Debug)]
pub struct AttemptTable {
    entries: HashMap<IpAddr, Entry>,
    max_entries: usize,
}

impl AttemptTable {
    pub fn new(max_entries: usize) -> AttemptTable {
        AttemptTable {
            entries: HashMap::new(),
            max_entries: max_entries.max(1),
        }
    }

    /// Ok if `ip` may try a code now, else how long it must still wait.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let until = self
            .entries
            .get(&bucket_of(ip))
            .and_then(|e| e.blocked_until);
        match until {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> Failure {
        let ip = bucket_of(ip);
        if !self.entries.contains_key(&ip) {
            self.make_room(now);
        }
        let fresh = Entry {
            failures: 0,
            last_failure: now,
            blocked_until: None,
        };
        let entry = self.entries.entry(ip).or_insert(fresh);
        if now.saturating_duration_since(entry.last_failure) > FORGET_AFTER {
            *entry = fresh;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures < FREE_FAILURES {
            return Failure::Counted;
        }
        let doublings = (entry.failures - FREE_FAILURES).min(16);
        let wait = FIRST_BLOCK.saturating_mul(1 << doublings).min(MAX_BLOCK);
        entry.blocked_until = Some(now + wait);
        Failure::Blocked {
            failures: entry.failures,
            wait,
            first_of_burst: entry.failures == FREE_FAILURES,
        }
    }

    /// The right code from `ip`: its mistakes are forgiven.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.entries.remove(&bucket_of(ip));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Called before a new address is added to a full table: drops forgotten addresses, and if
    /// that frees nothing, the stalest tenth (at least one), so that a stream of new addresses
    /// pays for one scan per many insertions rather than one per insertion.
    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < self.max_entries {
            return;
        }
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last_failure) <= FORGET_AFTER);
        if self.entries.len() < self.max_entries {
            return;
        }
        let mut by_age: Vec<(Instant, IpAddr)> = self
            .entries
            .iter()
            .map(|(ip, e)| (e.last_failure, *ip))
            .collect();
        let drop = (self.max_entries / 10).max(1).min(by_age.len());
        by_age.select_nth_unstable(drop - 1);
        for (_, ip) in &by_age[..drop] {
            self.entries.remove(ip);
        }
    }
}

/// The socket edge's view: which rooms need a code, and the shared table.
pub struct AccessGuard {
    codes: HubConfig,
    table: Mutex<AttemptTable>,
}

impl AccessGuard {
    pub fn new(codes: HubConfig) -> AccessGuard {
        AccessGuard {
            codes,
            table: Mutex::new(AttemptTable::new(MAX_ADDRESSES)),
        }
    }

    pub fn limits(&self) -> Limits {
        self.codes.limits()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, AttemptTable> {
        crate::lock::lock(&self.table, "login attempts")
    }

    /// Some(refusal) when `ip` must wait before trying a code for `room` again.
    pub fn before_login(&self, room: &str, ip: IpAddr, now: Instant) -> Option<LoginFailure> {
        self.codes.required_code(room)?;
        let wait = self.table().check(ip, now).err()?;
        let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Some(LoginFailure::TooManyAttempts { retry_after_secs })
    }

    /// Counts the outcome of a login to `room` from `ip`.
    pub fn after_login(
        &self,
        room: &str,
        ip: IpAddr,
        result: Result<(), LoginFailure>,
        now: Instant,
    ) {
        if self.codes.required_code(room).is_none() {
            return;
        }
        match result {
            Ok(()) => self.table().succeeded(ip),
            Err(LoginFailure::BadAccessCode) => {
                let failure = self.table().failed(ip, now);
                if let Failure::Blocked {
                    failures,
                    wait,
                    first_of_burst: true,
                } = failure
                {
                    tracing::warn!(
                        client = %bucket_of(ip),
                        room = %super::protocol::truncate(room),
                        failures,
                        wait_secs = wait.as_secs(),
                        "wrong access codes: this address now waits before each try \
                         (doubling to {} s); not logged again for this burst",
                        MAX_BLOCK.as_secs()
                    );
                }
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
#[path = "attempts_tests.rs"]
mod tests;

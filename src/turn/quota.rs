//! Allocation quotas (RFC 8656 §7.2 steps 7-8): per user (486) and for the whole server (508),
//! plus the counters every refusal bumps so an operator can see what is being refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why an Allocate was refused for capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaRefusal {
    /// 486 Allocation Quota Reached.
    PerUser,
    /// 508 Insufficient Capacity.
    Total,
}

impl QuotaRefusal {
    pub fn code(self) -> u16 {
        match self {
            QuotaRefusal::PerUser => 486,
            QuotaRefusal::Total => 508,
        }
    }
}

/// Allocations held (or being created) per user and in total.
#[derive(Debug)]
pub struct Quotas {
    per_user: HashMap<String, usize>,
    total: usize,
    max_per_user: usize,
    max_total: usize,
}

impl Quotas {
    pub fn new(max_per_user: usize, max_total: usize) -> Self {
        Quotas {
            per_user: HashMap::new(),
            total: 0,
            max_per_user,
            max_total,
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn of(&self, user: &str) -> usize {
        self.per_user.get(user).copied().unwrap_or(0)
    }

    /// Takes one slot for `user`, or says which limit is hit.
    pub fn reserve(&mut self, user: &str) -> Result<(), QuotaRefusal> {
        if self.total >= self.max_total {
            return Err(QuotaRefusal::Total);
        }
        let held = self.per_user.get(user).copied().unwrap_or(0);
        if held >= self.max_per_user {
            return Err(QuotaRefusal::PerUser);
        }
        self.per_user.insert(user.to_string(), held + 1);
        self.total += 1;
        Ok(())
    }

    /// Gives back a slot taken by [`Quotas::reserve`]. Callers release each slot once.
    pub fn release(&mut self, user: &str) {
        if let Some(held) = self.per_user.get_mut(user) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.per_user.remove(user);
            }
            self.total = self.total.saturating_sub(1);
        }
    }
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

    #[test]
    fn per_user_then_total_limits_apply() {
        let mut q = Quotas::new(2, 3);
        assert!(q.reserve("a").is_ok());
        assert!(q.reserve("a").is_ok());
        assert_eq!(q.reserve("a"), Err(QuotaRefusal::PerUser));
        assert!(q.reserve("b").is_ok());
        assert_eq!(q.reserve("c"), Err(QuotaRefusal::Total));
        q.release("a");
        assert!(q.reserve("c").is_ok());
        assert_eq!(q.total(), 3);
    }

    #[test]
    fn releasing_an_unknown_user_changes_nothing() {
        let mut q = Quotas::new(2, 3);
        q.reserve("a").unwrap();
        q.release("zed");
        assert_eq!(q.total(), 1);
        q.release("a");
        q.release("a");
        assert_eq!(q.total(), 0);
        assert_eq!(q.of("a"), 0);
    }
}

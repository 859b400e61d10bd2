//! When to order a certificate, as plain state: given the time and the validity of the
//! certificate in hand (if any), [`Renewal::next`] says "order now" or "wait until"; failures
//! push the next attempt back exponentially. The async driver in [`super::acme`] only sleeps
//! and runs orders.
//!
//! Renewal starts when a third of the certificate's lifetime is left (30 days of a 90-day Let's
//! Encrypt certificate), which leaves weeks of retries before anything expires.

use std::time::{Duration, SystemTime};

/// First delay after a failed order; doubles per failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(60);
/// Longest delay between attempts (Let's Encrypt allows 5 failed validations per hour).
pub const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);
/// The driver wakes at least this often even with nothing due, so a clock jump (suspend,
/// a wrong clock corrected) is noticed.
pub const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Validity of a certificate, as read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// When renewal is due: a third of the lifetime before expiry.
    pub fn renew_at(&self) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        // not_before <= the result <= not_after, so this cannot underflow; checked anyway.
        self.not_after
            .checked_sub(lifetime / 3)
            .unwrap_or(self.not_after)
    }
}

/// What the driver should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Start an order (a first certificate, or a renewal).
    Order,
    /// Nothing to do before this time (sleep at most [`MAX_SLEEP`] of it).
    WaitUntil(SystemTime),
}

/// Failures since the last success, and when the next attempt may run.
#[derive(Debug, Default, Clone)]
pub struct Renewal {
    failures: u32,
    retry_at: Option<SystemTime>,
}

impl Renewal {
    /// What to do at `now` holding `cert` (`None`: no usable ACME certificate yet).
    pub fn next(&self, now: SystemTime, cert: Option<Validity>) -> Next {
        let due = match cert {
            Some(validity) => validity.renew_at(),
            None => now,
        };
        let at = match self.retry_at {
            Some(retry) if retry > due => retry,
            _ => due,
        };
        if at <= now {
            Next::Order
        } else {
            Next::WaitUntil(at)
        }
    }

    /// Attempts made in the current run of failures plus the one about to start (for logs).
    pub fn attempt(&self) -> u32 {
        self.failures.saturating_add(1)
    }

    /// An order failed at `now`; returns the delay before the next attempt.
    pub fn failed(&mut self, now: SystemTime) -> Duration {
        let delay = FIRST_RETRY
            .saturating_mul(1u32 << self.failures.min(20))
            .min(MAX_RETRY);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + delay);
        delay
    }

    /// An order succeeded: the next one waits for the new certificate's renewal time only.
    pub fn succeeded(&mut self) {
        *self = Renewal::default();
    }
}

/// How long the driver sleeps to reach `at` from `now`.
pub fn sleep_for(now: SystemTime, at: SystemTime) -> Duration {
    at.duration_since(now)
        .unwrap_or(Duration::ZERO)
        .min(MAX_SLEEP)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn ninety_days_from(start: SystemTime) -> Validity {
        Validity {
            not_before: start,
            not_after: start + 90 * DAY,
        }
    }

    #[test]
    fn no_certificate_orders_at_once() {
        assert_eq!(Renewal::default().next(t0(), None), Next::Order);
    }

    #[test]
    fn a_fresh_certificate_waits_until_a_third_of_its_life_is_left() {
        let cert = ninety_days_from(t0());
        let renewal = Renewal::default();
        assert_eq!(
            renewal.next(t0() + DAY, Some(cert)),
            Next::WaitUntil(t0() + 60 * DAY)
        );
        assert_eq!(renewal.next(t0() + 60 * DAY, Some(cert)), Next::Order);
        // Expired already (a long outage): order at once.
        assert_eq!(renewal.next(t0() + 100 * DAY, Some(cert)), Next::Order);
    }

    #[test]
    fn failures_back_off_exponentially_up_to_six_hours_and_success_resets() {
        let mut renewal = Renewal::default();
        let now = t0();
        assert_eq!(renewal.failed(now), Duration::from_secs(60));
        assert_eq!(renewal.next(now, None), Next::WaitUntil(now + FIRST_RETRY));
        assert_eq!(renewal.failed(now), Duration::from_secs(120));
        assert_eq!(renewal.failed(now), Duration::from_secs(240));
        assert_eq!(renewal.attempt(), 4);
        for _ in 0..40 {
            assert!(renewal.failed(now) <= MAX_RETRY);
        }
        assert_eq!(renewal.failed(now), MAX_RETRY);
        renewal.succeeded();
        assert_eq!(renewal.next(now, None), Next::Order);
        assert_eq!(renewal.attempt(), 1);
    }

    #[test]
    fn a_back_off_never_brings_renewal_forward() {
        let cert = ninety_days_from(t0());
        let mut renewal = Renewal::default();
        renewal.failed(t0());
        assert_eq!(
            renewal.next(t0(), Some(cert)),
            Next::WaitUntil(t0() + 60 * DAY)
        );
    }

    #[test]
    fn sleeps_are_capped_so_clock_jumps_are_noticed() {
        assert_eq!(sleep_for(t0(), t0() + 30 * DAY), MAX_SLEEP);
        assert_eq!(sleep_for(t0() + DAY, t0()), Duration::ZERO);
    }
}

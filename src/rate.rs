//! The one token bucket every rate limit in callbox is built from (signaling messages per
//! connection, TURN requests per address and in all, relay bandwidth). Plain state: the caller
//! passes `now`, so tests drive time by hand and need no clock.

use std::time::Instant;

/// A classic token bucket, driven by the caller's clock so tests need no sleeping.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    /// Takes `cost` tokens if available after refilling at `rate` per second up to `burst`.
    pub fn take(&mut self, cost: f64, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        // A caller may pass a `now` read before the last one (one clock read per batch of
        // datagrams, say): going back would credit the same interval twice.
        self.at = self.at.max(now);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely by `now` (nothing worth remembering).
    pub fn is_full(&self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * rate >= burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_spends_its_burst_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3.0, t0);
        assert!((0..3).all(|_| b.take(1.0, 2.0, 3.0, t0)));
        assert!(!b.take(1.0, 2.0, 3.0, t0));
        assert!(b.take(1.0, 2.0, 3.0, t0 + Duration::from_millis(500)));
        assert!(!b.is_full(2.0, 3.0, t0 + Duration::from_millis(500)));
        assert!(b.is_full(2.0, 3.0, t0 + Duration::from_secs(2)));
    }

    #[test]
    fn a_stale_now_does_not_credit_the_same_interval_twice() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let mut b = Bucket::full(2.0, t1);
        assert!(b.take(2.0, 1.0, 2.0, t1));
        // A clock read taken before t1, then t1 again: no time has passed since t1.
        assert!(!b.take(1.0, 1.0, 2.0, t0));
        assert!(!b.take(1.0, 1.0, 2.0, t1));
    }
}

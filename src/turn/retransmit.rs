//! Answers to retransmitted requests (RFC 5389 §6.3.1 / RFC 8656 §7.2): a client that did not
//! get an answer sends the same request again with the same transaction id, and must get the
//! same answer, not a new one (the crate would answer a retransmitted Allocate with 437, as if
//! it were a second allocation). The guard keeps each transport's recent answers here and
//! replays them before the crate sees the request. Plain state, bounded in entries, bytes and
//! age (the RFC's 40 s: a client gives up on a transaction after 39.5 s).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use stun::message::Method;

/// How long an answer is kept for a retransmission.
pub const KEEP: Duration = Duration::from_secs(40);
/// Answers kept per transport: a client has a few transactions in flight at most.
pub const MAX_ENTRIES: usize = 8;
/// Larger answers are not kept (the crate's answers are around 100 bytes).
pub const MAX_BYTES: usize = 600;

struct Answer {
    method: Method,
    txn: [u8; 12],
    bytes: Vec<u8>,
    at: Instant,
}

/// Recent answers of one client transport, oldest first.
#[derive(Default)]
pub struct ResponseCache {
    answers: VecDeque<Answer>,
}

impl ResponseCache {
    /// The answer already sent to request `txn` of `method`, if it is recent.
    pub fn get(&mut self, method: Method, txn: &[u8; 12], now: Instant) -> Option<Vec<u8>> {
        self.expire(now);
        self.answers
            .iter()
            .find(|a| a.method == method && a.txn == *txn)
            .map(|a| a.bytes.clone())
    }

    /// Remembers an answer sent for request `txn` of `method`.
    pub fn put(&mut self, method: Method, txn: [u8; 12], bytes: &[u8], now: Instant) {
        if bytes.len() > MAX_BYTES {
            return;
        }
        self.expire(now);
        self.answers
            .retain(|a| !(a.method == method && a.txn == txn));
        if self.answers.len() >= MAX_ENTRIES {
            self.answers.pop_front();
        }
        self.answers.push_back(Answer {
            method,
            txn,
            bytes: bytes.to_vec(),
            at: now,
        });
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while self
            .answers
            .front()
            .is_some_and(|a| now.saturating_duration_since(a.at) >= KEEP)
        {
            self.answers.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::message::{METHOD_ALLOCATE, METHOD_REFRESH};

    #[test]
    fn a_recent_answer_is_replayed_for_the_same_method_and_transaction_only() {
        let now = Instant::now();
        let mut c = ResponseCache::default();
        c.put(METHOD_ALLOCATE, [1; 12], b"ok", now);
        assert_eq!(c.get(METHOD_ALLOCATE, &[1; 12], now), Some(b"ok".to_vec()));
        assert_eq!(c.get(METHOD_REFRESH, &[1; 12], now), None);
        assert_eq!(c.get(METHOD_ALLOCATE, &[2; 12], now), None);
        let later = now + KEEP;
        assert_eq!(
            c.get(METHOD_ALLOCATE, &[1; 12], later),
            None,
            "40 s at most"
        );
        assert!(c.is_empty());
    }

    #[test]
    fn entries_and_sizes_are_bounded() {
        let now = Instant::now();
        let mut c = ResponseCache::default();
        for i in 0..100u8 {
            c.put(METHOD_REFRESH, [i; 12], b"x", now);
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        assert!(
            c.get(METHOD_REFRESH, &[0; 12], now).is_none(),
            "oldest evicted"
        );
        assert!(c.get(METHOD_REFRESH, &[99; 12], now).is_some());
        c.put(METHOD_ALLOCATE, [7; 12], &vec![0; MAX_BYTES + 1], now);
        assert!(c.get(METHOD_ALLOCATE, &[7; 12], now).is_none());
    }
}

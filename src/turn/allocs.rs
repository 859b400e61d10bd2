//! The allocations of one client transport as the guard accounts for them: each holds a quota
//! slot from the moment its Allocate is passed to the crate until the crate's allocation table
//! no longer has it (an error answer, the crate's `alloc_close_notify`, or the transport's end),
//! so the quota counts and the crate's table never disagree in the direction that matters: no
//! allocation exists that no quota counts.
//!
//! Each allocation also keeps the username and key it was made with: requests on an existing
//! allocation (Refresh, CreatePermission, ChannelBind) are verified against that key, so an
//! allocation outlives its credentials' expiry and its login, as in coturn and eturnal.

use std::net::SocketAddr;

use super::quota::Slot;

/// At most one allocation the crate knows plus one being made (the crate allows one per
/// transport; a second overlaps only while the first's close notification is on its way).
pub const MAX_PER_TRANSPORT: usize = 2;

#[derive(Debug)]
enum State {
    Pending,
    Active { relay: Option<SocketAddr> },
}

#[derive(Debug)]
struct Entry {
    txn: [u8; 12],
    state: State,
    slot: Slot,
    username: String,
    key: Vec<u8>,
}

/// The allocations of one transport, newest last.
#[derive(Debug, Default)]
pub struct TransportAllocs {
    entries: Vec<Entry>,
}

impl TransportAllocs {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= MAX_PER_TRANSPORT
    }

    /// Is `txn` the Allocate of one of these allocations (a retransmission)?
    pub fn has_txn(&self, txn: &[u8; 12]) -> bool {
        self.entries.iter().any(|e| e.txn == *txn)
    }

    /// An Allocate passed to the crate, holding `slot`.
    pub fn pending(&mut self, txn: [u8; 12], slot: Slot, username: &str, key: &[u8]) {
        self.entries.push(Entry {
            txn,
            state: State::Pending,
            slot,
            username: username.to_string(),
            key: key.to_vec(),
        });
    }

    /// The crate answered the Allocate `txn`: on success it is live (at `relay`), on error its
    /// slot is returned for release.
    pub fn answered(
        &mut self,
        txn: [u8; 12],
        success: bool,
        relay: Option<SocketAddr>,
    ) -> Option<Slot> {
        let i = self
            .entries
            .iter()
            .position(|e| e.txn == txn && matches!(e.state, State::Pending))?;
        if success {
            self.entries[i].state = State::Active { relay };
            None
        } else {
            Some(self.entries.remove(i).slot)
        }
    }

    /// The crate closed the allocation at `relay`: its slot, for release.
    pub fn closed(&mut self, relay: SocketAddr) -> Option<Slot> {
        let i = self.entries.iter().position(|e| match e.state {
            State::Active { relay: r } => r == Some(relay),
            State::Pending => false,
        })?;
        Some(self.entries.remove(i).slot)
    }

    /// The transport ended: every slot, for release.
    pub fn drain(&mut self) -> Vec<Slot> {
        self.entries.drain(..).map(|e| e.slot).collect()
    }

    /// The key an allocation of this transport was made with by `username`, newest first.
    pub fn key_of(&self, username: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.username == username)
            .map(|e| e.key.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn::quota::Quotas;

    fn relay(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([192, 0, 2, 1], port)))
    }

    #[test]
    fn a_slot_is_held_from_pending_until_the_crate_closes_the_allocation() {
        let mut q = Quotas::new(10, 10, 10);
        let ip = "192.0.2.9".parse().unwrap();
        let mut a = TransportAllocs::default();
        a.pending([1; 12], q.reserve("l", ip).unwrap(), "1:l", b"k1");
        assert!(a.answered([1; 12], true, relay(50000)).is_none());
        // A second Allocate overlaps while the first one's close notification is on its way.
        a.pending([2; 12], q.reserve("l", ip).unwrap(), "1:l", b"k2");
        assert!(a.is_full() && a.has_txn(&[1; 12]));
        assert!(a.answered([2; 12], true, relay(50001)).is_none());
        assert_eq!(a.key_of("1:l"), Some(&b"k2"[..]));
        q.release(a.closed(relay(50000).unwrap()).unwrap());
        assert!(a.closed(relay(50000).unwrap()).is_none(), "released once");
        assert_eq!(q.total(), 1);
        for slot in a.drain() {
            q.release(slot);
        }
        assert_eq!(q.total(), 0);
        assert!(a.is_empty());
    }

    #[test]
    fn an_error_answer_returns_the_slot_and_forgets_the_key() {
        let mut q = Quotas::new(10, 10, 10);
        let mut a = TransportAllocs::default();
        a.pending(
            [1; 12],
            q.reserve("l", "::1".parse().unwrap()).unwrap(),
            "u",
            b"k",
        );
        assert!(a.answered([9; 12], false, None).is_none(), "not ours");
        q.release(a.answered([1; 12], false, None).unwrap());
        assert_eq!(q.total(), 0);
        assert_eq!(a.key_of("u"), None);
    }
}

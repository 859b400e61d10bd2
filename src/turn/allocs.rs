//! The allocation of one client transport as the guard accounts for it: it holds a quota slot
//! from the moment its Allocate is passed to the crate until the crate has truly let go of it
//! (an error answer, its relay socket dropped, or the transport's end), so no allocation
//! exists that no quota counts.
//!
//! Why the relay socket's drop and not the crate's `alloc_close_notify`: when an allocation is
//! closed, its packet loop later removes *its 5-tuple* from the crate's table, which by then may
//! hold a new allocation for the same 5-tuple (a Refresh(0) at once followed by an Allocate):
//! that new allocation would vanish without any notification. So while the old one is closing
//! (Refresh(0) answered, or the close notification seen) until its relay socket is dropped
//! (after its packet loop ended), a new Allocate on the transport is answered 437.
//!
//! The allocation also keeps the username and key it was made with: requests on it (Refresh,
//! CreatePermission, ChannelBind) are verified against that key, so it outlives its
//! credentials' expiry and its login, as in coturn and eturnal.

use std::net::SocketAddr;

use super::quota::Slot;

#[derive(Debug, PartialEq, Eq)]
enum State {
    Pending,
    Active,
    /// Out of the crate's table, relay socket not yet dropped.
    Closing,
}

#[derive(Debug)]
struct Entry {
    txn: [u8; 12],
    state: State,
    relay: Option<SocketAddr>,
    slot: Slot,
    username: String,
    key: Vec<u8>,
}

/// The (at most one) allocation of one transport.
#[derive(Debug, Default)]
pub struct TransportAllocs {
    entry: Option<Entry>,
}

impl TransportAllocs {
    pub fn is_empty(&self) -> bool {
        self.entry.is_none()
    }

    /// Is `txn` the Allocate of this transport's allocation (a retransmission)?
    pub fn has_txn(&self, txn: &[u8; 12]) -> bool {
        self.entry.as_ref().is_some_and(|e| e.txn == *txn)
    }

    /// An Allocate passed to the crate, holding `slot`. Only when [`Self::is_empty`].
    pub fn pending(
        &mut self,
        txn: [u8; 12],
        slot: Slot,
        username: &str,
        key: &[u8],
    ) -> Option<Slot> {
        let old = self.entry.replace(Entry {
            txn,
            state: State::Pending,
            relay: None,
            slot,
            username: username.to_string(),
            key: key.to_vec(),
        });
        old.map(|e| e.slot)
    }

    /// The crate answered the Allocate `txn`: on success it is live (at `relay`), on error its
    /// slot is returned for release.
    pub fn answered(
        &mut self,
        txn: [u8; 12],
        success: bool,
        relay: Option<SocketAddr>,
    ) -> Option<Slot> {
        let e = self
            .entry
            .as_mut()
            .filter(|e| e.txn == txn && e.state == State::Pending)?;
        if success {
            e.state = State::Active;
            e.relay = relay;
            None
        } else {
            self.entry.take().map(|e| e.slot)
        }
    }

    /// The crate removed the allocation from its table (Refresh(0) answered, close notified).
    pub fn closing(&mut self, relay: Option<SocketAddr>) {
        if let Some(e) = self.entry.as_mut() {
            if e.state == State::Active && (relay.is_none() || e.relay == relay) {
                e.state = State::Closing;
            }
        }
    }

    /// The relay socket at `relay` was dropped: the allocation is gone, its slot for release.
    pub fn dropped(&mut self, relay: SocketAddr) -> Option<Slot> {
        let e = self.entry.as_ref()?;
        if e.state == State::Pending || e.relay != Some(relay) {
            return None;
        }
        self.entry.take().map(|e| e.slot)
    }

    /// The relay address of the live allocation.
    pub fn relay(&self) -> Option<SocketAddr> {
        self.entry
            .as_ref()
            .filter(|e| e.state == State::Active)
            .and_then(|e| e.relay)
    }

    /// The transport ended: the slot, for release.
    pub fn drain(&mut self) -> Option<Slot> {
        self.entry.take().map(|e| e.slot)
    }

    /// The key the allocation was made with, if `username` made it and it is not closing.
    pub fn key_of(&self, username: &str) -> Option<&[u8]> {
        self.entry
            .as_ref()
            .filter(|e| e.username == username && e.state != State::Closing)
            .map(|e| e.key.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn::quota::Quotas;

    fn relay(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn a_slot_is_held_until_the_relay_socket_is_dropped() {
        let mut q = Quotas::new(10, 10, 10);
        let ip = "192.0.2.9".parse().unwrap();
        let mut a = TransportAllocs::default();
        assert!(a
            .pending([1; 12], q.reserve("l", ip).unwrap(), "1:l", b"k1")
            .is_none());
        assert!(a.dropped(relay(50000)).is_none(), "not live yet");
        assert!(a.answered([1; 12], true, Some(relay(50000))).is_none());
        assert!(a.has_txn(&[1; 12]));
        assert_eq!(a.key_of("1:l"), Some(&b"k1"[..]));
        a.closing(Some(relay(50000)));
        assert!(
            a.key_of("1:l").is_none(),
            "a closing allocation serves no request"
        );
        assert!(!a.is_empty(), "still counted while its relay socket lives");
        assert!(a.dropped(relay(50001)).is_none(), "another relay");
        q.release(a.dropped(relay(50000)).unwrap());
        assert!(a.dropped(relay(50000)).is_none(), "released once");
        assert!(a.is_empty());
        assert_eq!(q.total(), 0);
    }

    #[test]
    fn an_error_answer_or_the_transport_end_returns_the_slot() {
        let mut q = Quotas::new(10, 10, 10);
        let ip = "::1".parse().unwrap();
        let mut a = TransportAllocs::default();
        a.pending([1; 12], q.reserve("l", ip).unwrap(), "u", b"k");
        assert!(a.answered([9; 12], false, None).is_none(), "not ours");
        q.release(a.answered([1; 12], false, None).unwrap());
        assert_eq!(a.key_of("u"), None);
        a.pending([2; 12], q.reserve("l", ip).unwrap(), "u", b"k");
        q.release(a.drain().unwrap());
        assert_eq!(q.total(), 0);
    }
}

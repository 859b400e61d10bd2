//! CreatePermission with several XOR-PEER-ADDRESS attributes (RFC 8656 §9.1 allows any number;
//! the crate installs only the first). The guard turns such a request into one single-peer
//! request per peer, signed again with the key it verified, and passes them to the crate one
//! after the other: the last keeps the client's transaction id (so its answer is the one the
//! client gets), the others get fresh ids and their answers are swallowed. Plain state.

use std::collections::VecDeque;
use std::net::SocketAddr;

use stun::agent::TransactionId;
use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{Message, MessageType, Setter, CLASS_REQUEST, METHOD_CREATE_PERMISSION};
use stun::textattrs::{Nonce, Realm, Username};
use turn::proto::peeraddr::PeerAddress;

/// Peers one CreatePermission may name (a 1500-byte message holds about 60).
pub const MAX_PEERS: usize = 32;

/// Sub-requests still to hand to the crate, and the ids of those whose answers are swallowed.
#[derive(Debug, Default)]
pub struct Splitter {
    queued: VecDeque<Vec<u8>>,
    hidden: Vec<[u8; 12]>,
}

/// What a request is signed with.
pub struct Signing<'a> {
    pub username: &'a str,
    pub realm: &'a str,
    pub nonce: &'a str,
    pub key: &'a [u8],
}

impl Splitter {
    /// Splits `m` (a CreatePermission for `peers`, more than one): returns the first
    /// sub-request to pass now; the others wait in [`Splitter::next`].
    pub fn split(&mut self, m: &Message, peers: &[SocketAddr], sign: &Signing) -> Option<Vec<u8>> {
        // The crate answers every part before it reads the client again, so the ids of an
        // earlier split are settled (answered, or never to be answered) by now.
        self.hidden.clear();
        let last = peers.len().checked_sub(1)?;
        let mut out = Vec::with_capacity(peers.len());
        for (i, peer) in peers.iter().enumerate() {
            let txn = match i == last {
                true => m.transaction_id,
                false => TransactionId::new(),
            };
            out.push((txn.0, single_peer(txn, *peer, sign)?));
        }
        for (i, (txn, bytes)) in out.into_iter().enumerate() {
            if i != last {
                self.hidden.push(txn);
            }
            self.queued.push_back(bytes);
        }
        self.queued.pop_front()
    }

    /// The next sub-request to hand to the crate, before anything new from the client.
    pub fn next(&mut self) -> Option<Vec<u8>> {
        self.queued.pop_front()
    }

    /// Is this answer one to a sub-request the client never sent (to be swallowed)?
    pub fn swallow(&mut self, txn: &[u8; 12]) -> bool {
        match self.hidden.iter().position(|t| t == txn) {
            Some(i) => {
                self.hidden.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

fn single_peer(txn: TransactionId, peer: SocketAddr, sign: &Signing) -> Option<Vec<u8>> {
    let attrs: Vec<Box<dyn Setter>> = vec![
        Box::new(txn),
        Box::new(MessageType::new(METHOD_CREATE_PERMISSION, CLASS_REQUEST)),
        Box::new(PeerAddress {
            ip: peer.ip(),
            port: peer.port(),
        }),
        Box::new(Username::new(ATTR_USERNAME, sign.username.to_string())),
        Box::new(Realm::new(ATTR_REALM, sign.realm.to_string())),
        Box::new(Nonce::new(ATTR_NONCE, sign.nonce.to_string())),
        Box::new(MessageIntegrity(sign.key.to_vec())),
        Box::new(FINGERPRINT),
    ];
    let mut m = Message::new();
    m.build(&attrs).ok()?;
    Some(m.raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_gets_its_own_signed_request_and_only_the_last_answer_reaches_the_client() {
        let key = b"0123456789abcdef".to_vec();
        let sign = Signing {
            username: "1:u",
            realm: "r",
            nonce: "n",
            key: &key,
        };
        let peers: Vec<SocketAddr> = vec![
            "8.8.8.8:1".parse().unwrap(),
            "[2001:4860::8]:2".parse().unwrap(),
        ];
        let mut original = Message::new();
        original
            .build(&[
                Box::new(TransactionId([5; 12])),
                Box::new(MessageType::new(METHOD_CREATE_PERMISSION, CLASS_REQUEST)),
            ])
            .unwrap();
        let mut s = Splitter::default();
        let first = crate::turn::wire::parse(&s.split(&original, &peers, &sign).unwrap()).unwrap();
        let second = crate::turn::wire::parse(&s.next().unwrap()).unwrap();
        assert!(s.next().is_none());
        assert_eq!(
            crate::turn::wire::peer_addresses(&first).unwrap(),
            vec![peers[0]]
        );
        assert_eq!(
            crate::turn::wire::peer_addresses(&second).unwrap(),
            vec![peers[1]]
        );
        assert_eq!(
            second.transaction_id.0, [5; 12],
            "the client's id is answered last"
        );
        for m in [&first, &second] {
            let mut copy = m.clone();
            assert!(MessageIntegrity(key.clone()).check(&mut copy).is_ok());
        }
        assert!(s.swallow(&first.transaction_id.0));
        assert!(!s.swallow(&first.transaction_id.0));
        assert!(!s.swallow(&[5; 12]));
    }
}

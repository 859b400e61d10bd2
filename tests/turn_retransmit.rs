//! Retransmitted requests over UDP (RFC 5389 §6.3.1, RFC 8656 §7.2): the same transaction id
//! gets the original answer again, so a client whose Allocate success was lost still learns
//! its relay address instead of getting 437.

mod turn_support;

use stun::message::{Setter, METHOD_ALLOCATE, METHOD_CREATE_PERMISSION};
use turn::proto::peeraddr::PeerAddress;
use turn::proto::reqtrans::RequestedTransport;
use turn_support::*;

fn allocate_attrs() -> Vec<Box<dyn Setter>> {
    vec![Box::new(RequestedTransport {
        protocol: turn::proto::PROTO_UDP,
    })]
}

#[tokio::test]
async fn a_retransmitted_allocate_gets_the_original_answer_not_437() {
    let server = start(config()).await;
    let (user, pass) = rest_credentials(&server, "alice");
    let mut c = RawClient::new(server.udp_addrs()[0], &user, &pass).await;

    // The unauthenticated first try, sent twice: the same 401 and nonce both times.
    let (raw, txn) = c.build(METHOD_ALLOCATE, allocate_attrs(), false);
    c.send(&raw).await;
    let first = c.response(txn).await.expect("401");
    c.send(&raw).await;
    let again = c.response(txn).await.expect("401 again");
    assert_eq!((first.code, again.code), (401, 401));
    assert_eq!(
        first.msg.raw, again.msg.raw,
        "the same answer, the same nonce"
    );
    assert_eq!(server.stats().unauth_passed, 1, "the repeat cost no nonce");
    c.nonce = callbox::turn::wire::text_attr(&first.msg, stun::attributes::ATTR_NONCE).unwrap();
    c.realm = callbox::turn::wire::text_attr(&first.msg, stun::attributes::ATTR_REALM).unwrap();

    // The signed Allocate; its success "is lost", so the client sends it again.
    let (raw, txn) = c.build(METHOD_ALLOCATE, allocate_attrs(), true);
    c.send(&raw).await;
    let original = c.response(txn).await.expect("answer");
    assert_eq!(original.code, 0);
    c.send(&raw).await;
    let replayed = c.response(txn).await.expect("answer to the retransmission");
    assert_eq!(replayed.code, 0, "not 437");
    assert_eq!(RawClient::relayed(&replayed), RawClient::relayed(&original));
    assert_eq!(server.stats().allocations, 1);

    // A new Allocate (new transaction) on the same 5-tuple is still a 437.
    let (raw, txn) = c.build(METHOD_ALLOCATE, allocate_attrs(), true);
    c.send(&raw).await;
    assert_eq!(c.response(txn).await.expect("answer").code, 437);

    // Other methods too: a retransmitted CreatePermission is answered the same way.
    let peer: Box<dyn Setter> = Box::new(PeerAddress {
        ip: "8.8.8.8".parse().unwrap(),
        port: 3478,
    });
    let (raw, txn) = c.build(METHOD_CREATE_PERMISSION, vec![peer], true);
    c.send(&raw).await;
    let first = c.response(txn).await.expect("answer");
    c.send(&raw).await;
    let again = c.response(txn).await.expect("answer again");
    assert_eq!((first.code, again.code), (0, 0));
    assert_eq!(first.msg.raw, again.msg.raw);
    server.close().await;
}

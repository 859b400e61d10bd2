//! Guard unit tests: whole request/response exchanges driven without sockets.

use super::*;
use crate::turn::credentials::Credentials;
use crate::turn::limiter::{Limiter, Limits};
use crate::turn::logins::LiveLogins;
use crate::turn::peer_policy::PeerPolicy;
use crate::turn::quota::{Counters, Quotas};
use std::sync::atomic::Ordering;
use stun::agent::TransactionId;
use stun::attributes::ATTR_REALM;
use stun::error_code::{ErrorCode, ErrorCodeAttribute};
use stun::fingerprint::FINGERPRINT;
use stun::message::{MessageType, Method, Setter, METHOD_SEND};
use stun::textattrs::{Nonce, Realm, Username};
use turn::proto::peeraddr::PeerAddress;
use turn::proto::reqtrans::RequestedTransport;

pub(super) const REALM: &str = "callbox.test";
const SECRET: &str = "a-test-secret-0123456789";

pub(super) fn shared(max_per_user: usize, max_total: usize) -> Arc<ServerState> {
    let policy = PeerPolicy::new(vec!["127.0.0.1".parse().unwrap()], vec![], 49152..=65535);
    // Our own address is a peer on live relay ports only: make 50000 one.
    policy.relay_opened(SocketAddr::from(([127, 0, 0, 1], 50000)));
    Arc::new(ServerState {
        creds: Credentials::new(REALM.into(), &[SECRET.into()], &[]),
        logins: Mutex::new(LiveLogins::new()),
        policy: Arc::new(policy),
        quotas: Mutex::new(Quotas::new(max_per_user, 100, max_total)),
        limiter: Mutex::new(Limiter::new(Limits::default(), Instant::now())),
        budgets: crate::turn::limits::Budgets::new(Default::default(), Instant::now()),
        counters: Counters::default(),
        relay_v4: true,
        relay_v6: false,
    })
}

pub(super) fn guard(shared: &Arc<ServerState>, port: u16) -> Guard {
    let client = SocketAddr::from(([198, 51, 100, 7], port));
    Guard::new(
        Arc::clone(shared),
        client,
        Arc::new(Mutex::new(None)),
        Instant::now(),
    )
}

/// A guard whose transport already got a nonce from the crate, with Alice's credentials.
pub(super) fn challenged(s: &Arc<ServerState>, port: u16, nonce: &str) -> (Guard, String, String) {
    let mut g = guard(s, port);
    nonce_from_crate(&mut g, nonce);
    let (user, pass) = creds_for(s, "alice");
    (g, user, pass)
}

pub(super) fn build(attrs: Vec<Box<dyn Setter>>) -> Vec<u8> {
    let mut m = Message::new();
    m.build(&attrs).unwrap();
    m.raw
}

pub(super) fn nonce_from_crate(g: &mut Guard, nonce: &str) {
    nonce_at(g, nonce, Instant::now());
}

/// The crate's 401/438 carrying `nonce`, seen by the guard at `now`.
pub(super) fn nonce_at(g: &mut Guard, nonce: &str, now: Instant) {
    let raw = build(vec![
        Box::new(TransactionId::new()),
        Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute {
            code: ErrorCode(401),
            reason: vec![],
        }),
        Box::new(Nonce::new(ATTR_NONCE, nonce.into())),
        Box::new(Realm::new(ATTR_REALM, REALM.into())),
    ]);
    g.outbound(&raw, now);
}

pub(super) fn signed(
    method: Method,
    username: &str,
    password: &str,
    realm: &str,
    nonce: &str,
    mut extra: Vec<Box<dyn Setter>>,
) -> (Vec<u8>, [u8; 12]) {
    let txn = TransactionId::new();
    let id = txn.0;
    let mut attrs: Vec<Box<dyn Setter>> = vec![
        Box::new(txn),
        Box::new(MessageType::new(method, CLASS_REQUEST)),
    ];
    attrs.append(&mut extra);
    attrs.push(Box::new(Username::new(ATTR_USERNAME, username.into())));
    attrs.push(Box::new(Realm::new(ATTR_REALM, realm.into())));
    attrs.push(Box::new(Nonce::new(ATTR_NONCE, nonce.into())));
    attrs.push(Box::new(MessageIntegrity::new_long_term_integrity(
        username.into(),
        realm.into(),
        password.into(),
    )));
    attrs.push(Box::new(FINGERPRINT));
    (build(attrs), id)
}

pub(super) fn allocate_attrs() -> Vec<Box<dyn Setter>> {
    vec![Box::new(RequestedTransport {
        protocol: turn::proto::PROTO_UDP,
    })]
}

pub(super) fn code_of(v: &InboundAction) -> Option<u16> {
    match v {
        InboundAction::Reply(bytes) => wire::error_code(&wire::parse(bytes).unwrap()),
        _ => None,
    }
}

/// REST credentials of a live login keyed `name`.
pub(super) fn creds_for(shared: &ServerState, name: &str) -> (String, String) {
    shared.creds.mint(&login_id(shared, name), 4_000_000_000)
}

pub(super) fn login_id(shared: &ServerState, name: &str) -> String {
    shared.logins.lock().unwrap().grant(name)
}

pub(super) fn success(txn: [u8; 12]) -> Vec<u8> {
    build(vec![
        Box::new(TransactionId(txn)),
        Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE)),
    ])
}

#[test]
fn a_flood_of_unauthenticated_requests_lets_only_the_burst_through() {
    let s = shared(10, 100);
    let mut g = guard(&s, 5000);
    let raw = build(vec![
        Box::new(TransactionId::new()),
        Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST)),
    ]);
    let now = Instant::now();
    let passed = (0..100_000)
        .filter(|_| g.inbound(&raw, now, 1) == InboundAction::Pass)
        .count();
    assert_eq!(passed, UNAUTH_BURST as usize);
    assert_eq!(g.unauth_passed(), UNAUTH_BURST as u32);
    assert_eq!(
        s.counters.unauth_dropped.load(Ordering::Relaxed),
        100_000 - passed as u64
    );
}

#[test]
fn valid_rest_credentials_pass_and_reserve_a_quota_slot() {
    let s = shared(10, 100);
    let (mut g, user, pass) = challenged(&s, 5000, "n1");
    let (raw, txn) = signed(METHOD_ALLOCATE, &user, &pass, REALM, "n1", allocate_attrs());
    assert_eq!(g.inbound(&raw, Instant::now(), 1000), InboundAction::Pass);
    assert_eq!(g.auth.lock().unwrap().as_ref().unwrap().0, user);
    assert_eq!(s.quotas.lock().unwrap().of(&login_id(&s, "alice")), 1);
    g.outbound(&success(txn), Instant::now());
    assert!(g.has_allocation());
    g.release();
    assert_eq!(s.quotas.lock().unwrap().total(), 0);
}

#[test]
fn wrong_password_expired_wrong_realm_and_unknown_user_get_401() {
    let s = shared(10, 100);
    let (mut g, user, pass) = challenged(&s, 5000, "n1");
    let (expired, expired_pass) = s.creds.mint(&login_id(&s, "alice"), 10);
    let cases = [
        (user.clone(), "wrong".to_string(), REALM),
        (expired, expired_pass, REALM),
        (user.clone(), pass.clone(), "evil.test"),
        ("mallory".to_string(), "x".to_string(), REALM),
    ];
    for (u, p, r) in cases {
        let (raw, _) = signed(METHOD_ALLOCATE, &u, &p, r, "n1", allocate_attrs());
        let v = g.inbound(&raw, Instant::now(), 1000);
        assert_eq!(code_of(&v), Some(401), "{u} {r}");
        let InboundAction::Reply(bytes) = v else {
            unreachable!()
        };
        let m = wire::parse(&bytes).unwrap();
        assert_eq!(wire::text_attr(&m, ATTR_REALM).as_deref(), Some(REALM));
    }
    assert_eq!(s.counters.refused_401.load(Ordering::Relaxed), 4);
    assert_eq!(s.quotas.lock().unwrap().total(), 0);
}

#[test]
fn an_unknown_nonce_is_treated_as_unauthenticated() {
    let s = shared(10, 100);
    let mut g = guard(&s, 5000);
    let (user, pass) = creds_for(&s, "alice");
    let (raw, _) = signed(
        METHOD_ALLOCATE,
        &user,
        &pass,
        REALM,
        "forged",
        allocate_attrs(),
    );
    assert_eq!(g.inbound(&raw, Instant::now(), 1000), InboundAction::Pass);
    assert_eq!(g.unauth_passed(), 1);
    assert_eq!(s.quotas.lock().unwrap().total(), 0);
}

#[test]
fn quotas_refuse_with_486_per_user_and_508_in_total() {
    let s = shared(1, 2);
    let (user, pass) = creds_for(&s, "alice");
    let mut first = guard(&s, 1);
    nonce_from_crate(&mut first, "n");
    let (raw, _) = signed(METHOD_ALLOCATE, &user, &pass, REALM, "n", allocate_attrs());
    assert_eq!(
        first.inbound(&raw, Instant::now(), 1000),
        InboundAction::Pass
    );
    let mut second = guard(&s, 2);
    nonce_from_crate(&mut second, "n");
    let (raw, _) = signed(METHOD_ALLOCATE, &user, &pass, REALM, "n", allocate_attrs());
    assert_eq!(
        code_of(&second.inbound(&raw, Instant::now(), 1000)),
        Some(486)
    );
    let (bob, bob_pass) = creds_for(&s, "bob");
    let (raw, _) = signed(
        METHOD_ALLOCATE,
        &bob,
        &bob_pass,
        REALM,
        "n",
        allocate_attrs(),
    );
    assert_eq!(
        second.inbound(&raw, Instant::now(), 1000),
        InboundAction::Pass
    );
    let mut third = guard(&s, 3);
    nonce_from_crate(&mut third, "n");
    let (carol, carol_pass) = creds_for(&s, "carol");
    let (raw, _) = signed(
        METHOD_ALLOCATE,
        &carol,
        &carol_pass,
        REALM,
        "n",
        allocate_attrs(),
    );
    assert_eq!(
        code_of(&third.inbound(&raw, Instant::now(), 1000)),
        Some(508)
    );
}

#[test]
fn a_failed_allocate_gives_its_slot_back() {
    let s = shared(1, 10);
    let (mut g, user, pass) = challenged(&s, 1, "n");
    let (raw, txn) = signed(METHOD_ALLOCATE, &user, &pass, REALM, "n", allocate_attrs());
    assert_eq!(g.inbound(&raw, Instant::now(), 1000), InboundAction::Pass);
    let err = build(vec![
        Box::new(TransactionId(txn)),
        Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute {
            code: ErrorCode(508),
            reason: vec![],
        }),
    ]);
    g.outbound(&err, Instant::now());
    assert!(!g.has_allocation());
    assert_eq!(s.quotas.lock().unwrap().total(), 0);
}

#[test]
fn create_permission_is_refused_if_any_peer_is_denied() {
    let s = shared(10, 100);
    let (mut g, user, pass) = challenged(&s, 1, "n");
    let peer = |ip: &str, port| -> Box<dyn Setter> {
        Box::new(PeerAddress {
            ip: ip.parse().unwrap(),
            port,
        })
    };
    let (raw, _) = signed(
        METHOD_CREATE_PERMISSION,
        &user,
        &pass,
        REALM,
        "n",
        vec![peer("8.8.8.8", 5000), peer("::ffff:127.0.0.1", 50000)],
    );
    assert_eq!(code_of(&g.inbound(&raw, Instant::now(), 1000)), Some(403));
    let (raw, _) = signed(
        METHOD_CHANNEL_BIND,
        &user,
        &pass,
        REALM,
        "n",
        vec![peer("127.0.0.1", 22)],
    );
    assert_eq!(code_of(&g.inbound(&raw, Instant::now(), 1000)), Some(403));
    let (raw, _) = signed(
        METHOD_CREATE_PERMISSION,
        &user,
        &pass,
        REALM,
        "n",
        vec![peer("8.8.8.8", 5000), peer("127.0.0.1", 50000)],
    );
    assert_eq!(g.inbound(&raw, Instant::now(), 1000), InboundAction::Pass);
    assert_eq!(s.counters.refused_403.load(Ordering::Relaxed), 2);
}

#[test]
fn send_indications_to_refused_peers_are_dropped() {
    let s = shared(10, 100);
    let mut g = guard(&s, 1);
    let send = |ip: &str, port| {
        build(vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
            Box::new(PeerAddress {
                ip: ip.parse().unwrap(),
                port,
            }),
            Box::new(turn::proto::data::Data(b"hi".to_vec())),
        ])
    };
    assert_eq!(
        g.inbound(&send("10.0.0.1", 80), Instant::now(), 1),
        InboundAction::Drop
    );
    assert_eq!(
        g.inbound(&send("127.0.0.1", 22), Instant::now(), 1),
        InboundAction::Drop
    );
    assert_eq!(
        g.inbound(&send("127.0.0.1", 50000), Instant::now(), 1),
        InboundAction::Pass
    );
    assert_eq!(s.counters.send_dropped.load(Ordering::Relaxed), 2);
}

#[test]
fn ipv6_allocation_without_an_ipv6_relay_gets_440() {
    let s = shared(10, 100);
    let (mut g, user, pass) = challenged(&s, 1, "n");
    let mut attrs = allocate_attrs();
    attrs.push(Box::new(turn::proto::reqfamily::REQUESTED_FAMILY_IPV6));
    let (raw, _) = signed(METHOD_ALLOCATE, &user, &pass, REALM, "n", attrs);
    assert_eq!(code_of(&g.inbound(&raw, Instant::now(), 1000)), Some(440));
}

#[test]
fn a_request_passed_as_unauthenticated_cannot_reuse_an_earlier_key() {
    let s = shared(10, 100);
    let (mut g, user, pass) = challenged(&s, 1, "n");
    let (raw, _) = signed(METHOD_ALLOCATE, &user, &pass, REALM, "n", allocate_attrs());
    assert_eq!(g.inbound(&raw, Instant::now(), 1000), InboundAction::Pass);
    assert!(g.auth.lock().unwrap().is_some());
    let (raw, _) = signed(METHOD_REFRESH, &user, &pass, REALM, "unknown", vec![]);
    assert_eq!(g.inbound(&raw, Instant::now(), 1000), InboundAction::Pass);
    assert!(
        g.auth.lock().unwrap().is_none(),
        "the crate would accept it with the old key"
    );
}

#[test]
fn every_nonce_the_crate_still_honours_is_remembered() {
    let s = shared(10, 100);
    let mut g = guard(&s, 1);
    for i in 0..30 {
        nonce_from_crate(&mut g, &format!("n{i}"));
    }
    let (user, pass) = creds_for(&s, "alice");
    let peer: Box<dyn Setter> = Box::new(PeerAddress {
        ip: "10.0.0.1".parse().unwrap(),
        port: 80,
    });
    let (raw, _) = signed(
        METHOD_CREATE_PERMISSION,
        &user,
        &pass,
        REALM,
        "n0",
        vec![peer],
    );
    assert_eq!(code_of(&g.inbound(&raw, Instant::now(), 1000)), Some(403));
}

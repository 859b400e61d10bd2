//! Guard tests for login identity and allocation lifetimes: logged-out credentials, a call that
//! outlives its credentials (time injected), and quota slots that follow the crate's table.

use super::tests::*;
use super::*;
use stun::agent::TransactionId;
use stun::message::{MessageType, Setter};
use turn::proto::channum::ChannelNumber;
use turn::proto::lifetime::Lifetime;
use turn::proto::peeraddr::PeerAddress;
use turn::proto::relayaddr::RelayedAddress;

const T0_UNIX: u64 = 1_700_000_000;

fn relay(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The crate's Allocate success naming the relay address, as it sends it.
fn allocated(txn: [u8; 12], relay: SocketAddr) -> Vec<u8> {
    build(vec![
        Box::new(TransactionId(txn)),
        Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE)),
        Box::new(RelayedAddress {
            ip: relay.ip(),
            port: relay.port(),
        }),
    ])
}

fn peer(ip: &str, port: u16) -> Box<dyn Setter> {
    Box::new(PeerAddress {
        ip: ip.parse().unwrap(),
        port,
    })
}

/// Allocates on `g` with (user, pass) and nonce "n"; the crate answers with `relay`.
fn allocate_on(g: &mut Guard, user: &str, pass: &str, relay: SocketAddr, now: Instant, unix: u64) {
    let (raw, txn) = signed(METHOD_ALLOCATE, user, pass, REALM, "n", allocate_attrs());
    assert_eq!(g.inbound(&raw, now, unix), InboundAction::Pass);
    g.outbound(&allocated(txn, relay), now);
    assert!(g.has_allocation());
}

#[test]
fn a_two_hour_call_keeps_refreshing_permitting_and_binding_after_its_credentials_expire() {
    let s = shared(10, 100);
    let t0 = Instant::now();
    let mut g = guard(&s, 1);
    nonce_at(&mut g, "n", t0);
    let id = login_id(&s, "alice");
    // Credentials valid for one hour, the default TTL.
    let (user, pass) = s.creds.mint(&id, T0_UNIX + 3600);
    allocate_on(&mut g, &user, &pass, relay(50000), t0, T0_UNIX);
    let mut nonce = "n".to_string();
    for minute in (5..=120u64).step_by(5) {
        let now = t0 + Duration::from_secs(minute * 60);
        let unix = T0_UNIX + minute * 60;
        if minute % 55 == 0 {
            // The crate's nonces last an hour: it answers 438 with a fresh one.
            nonce = format!("n{minute}");
            nonce_at(&mut g, &nonce, now);
        }
        let requests = [
            (
                METHOD_REFRESH,
                vec![Box::new(Lifetime(Duration::from_secs(600))) as Box<dyn Setter>],
            ),
            (METHOD_CREATE_PERMISSION, vec![peer("8.8.8.8", 5000)]),
            (
                METHOD_CHANNEL_BIND,
                vec![
                    Box::new(ChannelNumber(0x4000)) as Box<dyn Setter>,
                    peer("8.8.8.8", 5000),
                ],
            ),
        ];
        for (method, attrs) in requests {
            let (raw, _) = signed(method, &user, &pass, REALM, &nonce, attrs);
            assert_eq!(
                g.inbound(&raw, now, unix),
                InboundAction::Pass,
                "minute {minute}"
            );
            assert_eq!(g.auth.lock().unwrap().as_ref().unwrap().0, user);
        }
    }
    // A new allocation with the same, now expired, credentials is refused.
    let late = t0 + Duration::from_secs(7200);
    let mut other = guard(&s, 2);
    nonce_at(&mut other, "n", late);
    let (raw, _) = signed(METHOD_ALLOCATE, &user, &pass, REALM, "n", allocate_attrs());
    assert_eq!(
        code_of(&other.inbound(&raw, late, T0_UNIX + 7200)),
        Some(401)
    );
    // A wrong password on the old allocation is still refused.
    let (raw, _) = signed(METHOD_REFRESH, &user, "wrong", REALM, &nonce, vec![]);
    assert_eq!(code_of(&g.inbound(&raw, late, T0_UNIX + 7200)), Some(401));
}

#[test]
fn after_logout_its_credentials_make_no_new_allocation_but_its_allocation_keeps_working() {
    let s = shared(10, 100);
    let now = Instant::now();
    let mut g = guard(&s, 1);
    nonce_from_crate(&mut g, "n");
    let (user, pass) = creds_for(&s, "alice");
    allocate_on(&mut g, &user, &pass, relay(50000), now, 1000);
    s.logins.lock().unwrap().revoke("alice");

    let mut other = guard(&s, 2);
    nonce_from_crate(&mut other, "n");
    let (raw, _) = signed(METHOD_ALLOCATE, &user, &pass, REALM, "n", allocate_attrs());
    assert_eq!(code_of(&other.inbound(&raw, now, 1000)), Some(401));
    assert!(!other.has_allocation());

    let (raw, _) = signed(METHOD_REFRESH, &user, &pass, REALM, "n", vec![]);
    assert_eq!(g.inbound(&raw, now, 1000), InboundAction::Pass);
    let (raw, _) = signed(
        METHOD_CREATE_PERMISSION,
        &user,
        &pass,
        REALM,
        "n",
        vec![peer("8.8.4.4", 1)],
    );
    assert_eq!(g.inbound(&raw, now, 1000), InboundAction::Pass);
    // Without an allocation to lean on, the logged-out credentials are refused everywhere.
    let (raw, _) = signed(METHOD_REFRESH, &user, &pass, REALM, "n", vec![]);
    assert_eq!(code_of(&other.inbound(&raw, now, 1000)), Some(401));
}

#[test]
fn quotas_count_the_login_id_and_the_client_address_not_the_name() {
    let s = shared(1, 100);
    let now = Instant::now();
    // Two logins that would both call themselves "ann" (in two rooms) are two logins.
    let (ann1, p1) = creds_for(&s, "conn-1");
    let (ann2, p2) = creds_for(&s, "conn-2");
    let mut a = guard(&s, 1);
    nonce_from_crate(&mut a, "n");
    allocate_on(&mut a, &ann1, &p1, relay(50000), now, 1000);
    let mut b = guard(&s, 2);
    nonce_from_crate(&mut b, "n");
    allocate_on(&mut b, &ann2, &p2, relay(50001), now, 1000);
    assert_eq!(s.quotas.lock().unwrap().total(), 2);

    // Many logins from one address stop at the per-address cap.
    let s = Arc::new(ServerState {
        quotas: Mutex::new(Quotas::new(10, 3, 1000)),
        ..Arc::into_inner(shared(10, 1000)).unwrap()
    });
    for i in 0..4u16 {
        let (u, p) = creds_for(&s, &format!("login{i}"));
        let mut g = guard(&s, 10 + i);
        nonce_from_crate(&mut g, "n");
        let (raw, _) = signed(METHOD_ALLOCATE, &u, &p, REALM, "n", allocate_attrs());
        let v = g.inbound(&raw, now, 1000);
        match i {
            0..=2 => assert_eq!(v, InboundAction::Pass),
            _ => assert_eq!(code_of(&v), Some(486)),
        }
    }
}

#[test]
fn a_refreshed_to_zero_allocation_holds_its_slot_until_its_relay_socket_is_dropped() {
    let s = shared(2, 100);
    let now = Instant::now();
    let mut g = guard(&s, 1);
    nonce_from_crate(&mut g, "n");
    let (user, pass) = creds_for(&s, "alice");
    let id = login_id(&s, "alice");
    allocate_on(&mut g, &user, &pass, relay(50000), now, 1000);
    let again = || signed(METHOD_ALLOCATE, &user, &pass, REALM, "n", allocate_attrs()).0;
    // While the crate holds it, another Allocate is a 437 and takes no slot.
    assert_eq!(code_of(&g.inbound(&again(), now, 1000)), Some(437));
    assert_eq!(s.quotas.lock().unwrap().of(&id), 1);
    let zero: Box<dyn Setter> = Box::new(Lifetime(Duration::ZERO));
    let (raw, txn) = signed(METHOD_REFRESH, &user, &pass, REALM, "n", vec![zero]);
    assert_eq!(g.inbound(&raw, now, 1000), InboundAction::Pass);
    let answer = build(vec![
        Box::new(TransactionId(txn)),
        Box::new(MessageType::new(METHOD_REFRESH, CLASS_SUCCESS_RESPONSE)),
        Box::new(Lifetime(Duration::ZERO)),
    ]);
    g.outbound(&answer, now);
    // Out of the crate's table, but its packet loop may still remove a new allocation's
    // 5-tuple: the slot stays taken and a new Allocate waits (437).
    assert_eq!(code_of(&g.inbound(&again(), now, 1000)), Some(437));
    g.closed(relay(50000));
    assert_eq!(code_of(&g.inbound(&again(), now, 1000)), Some(437));
    assert_eq!(s.quotas.lock().unwrap().of(&id), 1);
    g.relay_dropped(relay(50000));
    assert_eq!(s.quotas.lock().unwrap().total(), 0);
    assert!(!g.has_allocation());
    allocate_on(&mut g, &user, &pass, relay(50001), now, 1000);
    g.relay_dropped(relay(50000));
    assert_eq!(
        s.quotas.lock().unwrap().of(&id),
        1,
        "an old relay frees nothing new"
    );
}

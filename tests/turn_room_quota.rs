//! The per-room allocation cap (`turn.max_allocations_per_room`) over real UDP sockets: the
//! logins of one signaling room, each from its own client address, fill their room's share and
//! are refused with 486, while a login in another room and a static user still allocate; a
//! slot comes back when an allocation ends, and a reload raises the cap live.

mod turn_support;

use std::time::Duration;

use callbox::turn::TurnServer;
use stun::message::{Setter, METHOD_ALLOCATE, METHOD_REFRESH};
use turn::proto::lifetime::Lifetime;
use turn::proto::reqtrans::RequestedTransport;
use turn_support::*;

const ROOM_CAP: usize = 2;

fn udp() -> Vec<Box<dyn Setter>> {
    vec![Box::new(RequestedTransport {
        protocol: turn::proto::PROTO_UDP,
    })]
}

/// The Allocate answer's code (0: allocated) for a client on `ip` with `creds`, after the 401.
async fn allocate(server: &TurnServer, ip: &str, creds: &(String, String)) -> (RawClient, u16) {
    let addr = server.udp_addrs()[0];
    let mut c = RawClient::new_from(ip, addr, &creds.0, &creds.1).await;
    let challenge = c.request(METHOD_ALLOCATE, udp()).await.expect("401 answer");
    assert_eq!(challenge.code, 401);
    let code = c
        .request(METHOD_ALLOCATE, udp())
        .await
        .expect("answer")
        .code;
    (c, code)
}

fn room_refusals() -> u64 {
    callbox::counters::TURN_REFUSALS
        .quota
        .read()
        .into_iter()
        .find(|(label, _)| *label == "allocations_per_room")
        .map_or(0, |(_, n)| n)
}

/// A fresh login's REST credentials, in `room`.
fn login_in(server: &TurnServer, key: &str, room: &str) -> (String, String) {
    let (ice, _) = server.ice_servers_in(key, Some(room));
    let text = |k: &str| ice[0][k].as_str().expect("credential field").to_string();
    (text("username"), text("credential"))
}

#[tokio::test]
async fn one_room_hits_its_cap_while_another_room_and_static_users_still_allocate() {
    let mut cfg = config();
    cfg.max_allocations_per_room = Some(ROOM_CAP);
    let server = start(cfg.clone()).await;
    let mut held = Vec::new();
    for i in 0..ROOM_CAP {
        let creds = login_in(&server, &format!("conn-{i}"), "busy");
        let (c, code) = allocate(&server, &format!("127.0.0.{}", 20 + i), &creds).await;
        assert_eq!(code, 0, "login {i} in the busy room allocates");
        held.push(c);
    }
    let before = room_refusals();
    let late = login_in(&server, "conn-late", "busy");
    let (_refused, code) = allocate(&server, "127.0.0.30", &late).await;
    assert_eq!(code, 486, "the busy room's next login is over the room cap");
    assert_eq!(
        room_refusals(),
        before + 1,
        "counted under allocations_per_room"
    );

    let other = login_in(&server, "conn-other", "quiet");
    let (_other, code) = allocate(&server, "127.0.0.31", &other).await;
    assert_eq!(code, 0, "a login in another room still allocates");
    let tool = ("tool".to_string(), "toolpass".to_string());
    let (_tool, code) = allocate(&server, "127.0.0.32", &tool).await;
    assert_eq!(code, 0, "a static user counts under no room");

    // An allocation of the busy room ends: its room slot is given back with the others.
    let lifetime = vec![Box::new(Lifetime(Duration::ZERO)) as Box<dyn Setter>];
    let ended = held[0]
        .request(METHOD_REFRESH, lifetime)
        .await
        .expect("answer");
    assert_eq!(ended.code, 0);
    assert!(
        eventually(|| server.stats().allocations == ROOM_CAP + 1).await,
        "the ended allocation is released"
    );
    let (_again, code) = allocate(&server, "127.0.0.33", &late).await;
    assert_eq!(code, 0, "the room's freed slot is usable again");
    let (_over, code) = allocate(&server, "127.0.0.34", &late).await;
    assert_eq!(code, 486, "and the room is full again");

    // A reload raises the cap live.
    cfg.max_allocations_per_room = Some(ROOM_CAP + 1);
    assert!(server.apply_live(&cfg).contains(&"turn quotas"));
    let (_raised, code) = allocate(&server, "127.0.0.35", &late).await;
    assert_eq!(code, 0, "the raised room cap applies without a restart");
    server.close().await;
}

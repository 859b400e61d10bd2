//! Two nodes' plain state wired together by hand: what one node's ops publish is fed to the
//! other as events, with no Redis in between.

use super::*;
use crate::signaling::hub::HubConfig;
use crate::signaling::protocol::Dialect;

struct Node {
    cluster: Cluster,
    hub: Hub,
}

fn node(id: &str) -> Node {
    Node {
        cluster: Cluster::new(id.into()),
        hub: Hub::new(HubConfig::default()),
    }
}

fn req(name: &str, token: Option<&str>) -> LoginRequest {
    LoginRequest {
        dialect: Dialect::Tutorial,
        name: name.into(),
        access_code: None,
        token: token.map(str::to_string),
        presence_deltas: false,
    }
}

/// What Redis said to a claim of `name`; `reclaimed`: the login's token matched the claim.
fn granted(name: &str, reclaimed: bool) -> Granted {
    Granted {
        name: name.into(),
        placeholder: "pending".into(),
        variant: false,
        reclaimed,
    }
}

/// Logs `name` in on `n` as connection `id`; returns its token and the events to publish.
fn login(n: &mut Node, id: u64, name: &str, token: Option<&str>) -> (String, Vec<Event>) {
    let conn = ConnId(id);
    n.hub.connect(conn, "lobby");
    n.cluster.connected(conn, "lobby");
    let (out, result, ops) = n.cluster.login(
        &mut n.hub,
        conn,
        req(name, token),
        granted(name, token.is_some()),
    );
    assert_eq!(result, Ok(()));
    let (_, token) = login_ok(&out, conn).expect("login reply");
    (token, published(ops))
}

fn published(ops: Vec<Op>) -> Vec<Event> {
    ops.into_iter()
        .filter_map(|op| match op {
            Op::Publish { event, .. } => Some(event),
            _ => None,
        })
        .collect()
}

fn feed(n: &mut Node, events: Vec<Event>) -> Vec<Delivery> {
    let mut out = Vec::new();
    for event in events {
        out.extend(n.cluster.remote(&mut n.hub, event, 1));
    }
    out
}

fn tutorial(kind: &str, target: &str) -> Routed {
    let kind = crate::signaling::protocol::TutorialKind::parse(kind).expect("kind");
    Routed::Tutorial {
        kind,
        target: Some(target.into()),
        payload: crate::signaling::protocol::Relayed::tutorial(kind, None),
    }
}

/// `from` of each relayed frame to `conn` (relayed messages arrive as finished frames).
fn relayed_from(out: &[Delivery], conn: u64) -> Vec<String> {
    out.iter()
        .filter(|d| d.to == ConnId(conn))
        .filter_map(|d| match &d.out {
            Outbound::Text(text) => serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v["from"].as_str().map(str::to_string)),
            _ => None,
        })
        .collect()
}

fn to(out: &[Delivery], conn: u64) -> Vec<ServerMsg> {
    out.iter()
        .filter(|d| d.to == ConnId(conn))
        .filter_map(|d| match &d.out {
            Outbound::Msg(m) => Some((**m).clone()),
            _ => None,
        })
        .collect()
}

/// ann (connection 1 on node a) in a call with bob (connection 1 on node b).
fn call_across() -> (Node, Node) {
    let (mut a, mut b) = (node("a"), node("b"));
    let (_, joined) = login(&mut a, 1, "ann", None);
    feed(&mut b, joined);
    let (_, joined) = login(&mut b, 1, "bob", None);
    feed(&mut a, joined);
    assert_eq!(a.hub.user_list("lobby"), vec!["ann", "bob"]);

    let (out, ops) = a
        .cluster
        .route(&mut a.hub, ConnId(1), tutorial("offer", "bob"), 1);
    assert!(to(&out, 1).is_empty(), "no error for ann: {out:?}");
    let events = published(ops);
    assert!(matches!(&events[..], [Event::Routed { node, .. }] if node == "a"));
    let offer = feed(&mut b, events);
    assert_eq!(relayed_from(&offer, 1), ["ann"]);
    let (_, ops) = b
        .cluster
        .route(&mut b.hub, ConnId(1), tutorial("answer", "ann"), 1);
    feed(&mut a, published(ops));
    assert_eq!(a.hub.peer_of("lobby", "ann").as_deref(), Some("bob"));
    assert_eq!(b.hub.peer_of("lobby", "bob").as_deref(), Some("ann"));
    (a, b)
}

#[test]
fn a_call_across_nodes_is_known_on_both_and_a_dead_nodes_partner_is_told() {
    let (_, mut b) = call_across();
    let told = b.cluster.node_gone(&mut b.hub, "a");
    let leave = to(&told, 1);
    assert!(
        matches!(&leave[..], [ServerMsg::Tutorial { name, .. }] if name == "ann"),
        "{leave:?}"
    );
    assert_eq!(b.hub.user_list("lobby"), vec!["bob"]);
}

#[test]
fn a_takeover_on_another_node_closes_the_holder_here_and_a_late_logout_frees_nothing() {
    let (mut a, mut b) = (node("a"), node("b"));
    let (token, joined) = login(&mut a, 1, "ann", None);
    feed(&mut b, joined);
    // Redis granted the name to node b (the token matched); node b's hub takes it over.
    let (_, joined) = login(&mut b, 7, "ann", Some(&token));
    let out = feed(&mut a, joined);
    let closed = out
        .iter()
        .any(|d| d.to == ConnId(1) && matches!(d.out, Outbound::Close { code: 4001, .. }));
    assert!(closed, "{out:?}");
    // The replaced connection goes away on node a: no release, no "left" for a name b holds.
    let (_, ops) = a.cluster.logout(&mut a.hub, ConnId(1));
    assert!(ops.is_empty(), "{ops:?}");
    assert_eq!(a.hub.user_list("lobby"), vec!["ann"]);
    assert_eq!(
        a.cluster.remote_nodes().into_iter().collect::<Vec<_>>(),
        vec!["b"]
    );
}

#[test]
fn reconcile_drops_only_ghosts_whose_claims_are_gone() {
    let (mut a, mut b) = (node("a"), node("b"));
    let (_, joined) = login(&mut a, 1, "ann", None);
    feed(&mut b, joined);
    let (_, joined) = login(&mut a, 2, "cy", None);
    feed(&mut b, joined);
    let kept = ClaimRecord {
        node: "a".into(),
        room: "lobby".into(),
        key: "ann".into(),
        name: "ann".into(),
        token: "t".into(),
    };
    b.cluster.reconcile(&mut b.hub, &[kept]);
    assert_eq!(b.hub.user_list("lobby"), vec!["ann"]);
}

#[test]
fn a_restarted_node_releases_its_previous_runs_claims_but_not_a_login_in_flight() {
    let mut a = node("a");
    let (_, _) = login(&mut a, 1, "ann", None);
    let record = |key: &str, token: &str| ClaimRecord {
        node: "a".into(),
        room: "lobby".into(),
        key: key.into(),
        name: key.into(),
        token: token.into(),
    };
    let held = a.cluster.local_claims().remove(0);
    let records = vec![
        held,
        record("old", "t-from-the-last-run"),
        record("new", &format!("{PLACEHOLDER_PREFIX}123")),
    ];
    let (_, ops) = a.cluster.resync(&mut a.hub, records);
    let released: Vec<&str> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Release { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(released, vec!["old"]);
    assert!(published(ops.clone())
        .iter()
        .any(|e| matches!(e, Event::Left { key, .. } if key == "old")));
}

#[test]
fn a_login_whose_token_redis_did_not_check_never_takes_over_a_ghosts_call() {
    // Node a died; ann's claim lapsed before node b noticed: Redis grants "ann" to anyone.
    let (_, mut b) = call_across();
    let conn = ConnId(9);
    b.hub.connect(conn, "lobby");
    b.cluster.connected(conn, "lobby");
    let (out, result, _) =
        b.cluster
            .login(&mut b.hub, conn, req("ann", None), granted("ann", false));
    assert_eq!(result, Ok(()), "the name is free in Redis: {out:?}");
    let leave = to(&out, 1);
    assert!(
        matches!(&leave[..], [ServerMsg::Tutorial { name, .. }] if name == "ann"),
        "bob is told ann left, not handed to the newcomer: {leave:?}"
    );
    assert_eq!(b.hub.peer_of("lobby", "bob"), None);
    assert_eq!(b.hub.peer_of("lobby", "ann"), None);
}

#[test]
fn a_login_whose_token_redis_did_not_check_never_replaces_a_user_of_this_node() {
    // Redis lost bob's claim (it restarted empty) and grants "bob" before this node renews it.
    let mut b = node("b");
    let (_, _) = login(&mut b, 1, "bob", None);
    let conn = ConnId(2);
    b.hub.connect(conn, "lobby");
    b.cluster.connected(conn, "lobby");
    let (out, result, ops) =
        b.cluster
            .login(&mut b.hub, conn, req("bob", None), granted("bob", false));
    assert_eq!(result, Err(LoginFailure::NameTaken));
    assert!(
        to(&out, 1).is_empty() && !out.iter().any(|d| d.to == ConnId(1)),
        "{out:?}"
    );
    assert!(
        matches!(&ops[..], [Op::Release { token, .. }] if token == "pending"),
        "{ops:?}"
    );
    assert_eq!(b.hub.name_of(ConnId(1)).as_deref(), Some("bob"));
}

//! Unit tests of the peer policy (split out to keep peer_policy.rs readable).

use super::*;

fn policy() -> PeerPolicy {
    let p = PeerPolicy::new(
        vec!["127.0.0.1".parse().unwrap(), "203.0.113.7".parse().unwrap()],
        vec![],
        49152..=65535,
    );
    p.relay_opened(addr("127.0.0.1:50000"));
    p.relay_opened(addr("203.0.113.7:49152"));
    p
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// One address inside each denied range, in the order the issue lists them.
pub const ONE_PER_DENIED_RANGE: &[&str] = &[
    "0.0.0.0",
    "0.1.2.3",
    "127.0.0.2",
    "10.1.2.3",
    "100.64.0.1",
    "169.254.169.254",
    "172.16.5.4",
    "192.0.0.9",
    "192.0.2.1",
    "192.88.99.1",
    "192.88.99.2",
    "0.0.0.0",
    "192.0.0.8",
    "192.0.0.170",
    "192.0.0.171",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "64:ff9b::1.2.3.4",
    "64:ff9b:1::1",
    "100::1",
    "2001::1",
    "2001:db8::1",
    "2002::1",
    "fc00::1",
    "fd12::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "192.31.196.1",
    "192.52.193.1",
    "192.175.48.1",
    "192.0.0.10",
    "100:0:0:1::1",
    "2001:1::2",
    "2001:3::1",
    "2001:4:112::1",
    "2001:20::1",
    "2001:30::1",
    "2001:1ff::1",
    "2620:4f:8000::1",
    "3fff::1",
    "5f00::1",
];

#[test]
fn every_deny_list_entry_parses() {
    // `new` skips an entry that does not parse; a typo must not open a range silently.
    for cidr in DENIED {
        assert!(cidr.parse::<IpNet>().is_ok(), "{cidr}");
    }
}

#[test]
fn every_denied_range_is_refused() {
    let p = policy();
    for ip in ONE_PER_DENIED_RANGE {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(p.check(SocketAddr::new(ip, 50000)).is_err(), "{ip} allowed");
    }
}

#[test]
fn ipv4_hidden_in_ipv6_is_refused_whatever_it_hides() {
    let p = policy();
    for s in [
        "[::ffff:127.0.0.1]:50000",
        "[::ffff:8.8.8.8]:50000",
        "[::127.0.0.1]:50000",
        "[::ffff:0:127.0.0.1]:50000",
        "[64:ff9b::8.8.8.8]:50000",
    ] {
        assert_eq!(p.check(addr(s)), Err(Refusal::EmbeddedIpv4), "{s}");
    }
}

#[test]
fn public_peers_are_allowed() {
    let p = policy();
    assert_eq!(p.check(addr("8.8.8.8:3478")), Ok(()));
    assert_eq!(p.check(addr("[2606:4700::1111]:443")), Ok(()));
}

#[test]
fn a_permission_for_our_own_relay_address_needs_a_relay_port_not_a_live_one() {
    let p = policy();
    // 50001 is in the relay range but no relay socket is open there.
    assert_eq!(p.check(addr("127.0.0.1:50001")), Err(Refusal::OwnAddress));
    assert_eq!(p.check_permission(addr("127.0.0.1:50001")), Ok(()));
    assert_eq!(
        p.check_permission(addr("127.0.0.1:8080")),
        Err(Refusal::OwnAddress)
    );
    assert_eq!(
        p.check_permission(addr("[::ffff:127.0.0.1]:50001")),
        Err(Refusal::EmbeddedIpv4)
    );
    assert_eq!(
        p.check_permission(addr("127.0.0.2:50001")),
        Err(Refusal::Denied)
    );
}

#[test]
fn own_relay_address_is_allowed_on_relay_ports_only() {
    let p = policy();
    assert_eq!(p.check(addr("127.0.0.1:50000")), Ok(()));
    assert_eq!(p.check(addr("127.0.0.1:8080")), Err(Refusal::OwnAddress));
    assert_eq!(p.check(addr("127.0.0.1:3478")), Err(Refusal::OwnAddress));
    assert_eq!(p.check(addr("203.0.113.7:49152")), Ok(()));
    assert_eq!(p.check(addr("203.0.113.7:22")), Err(Refusal::OwnAddress));
    assert_eq!(p.check(addr("127.0.0.2:50000")), Err(Refusal::Denied));
}

#[test]
fn own_relay_address_is_a_peer_only_on_live_relay_ports() {
    let p = policy();
    // In the relay range, but no relay of ours: some other program's socket.
    assert_eq!(p.check(addr("127.0.0.1:50001")), Err(Refusal::OwnAddress));
    p.relay_opened(addr("127.0.0.1:50001"));
    assert_eq!(p.check(addr("127.0.0.1:50001")), Ok(()));
    p.relay_closed(addr("127.0.0.1:50001"));
    assert_eq!(p.check(addr("127.0.0.1:50001")), Err(Refusal::OwnAddress));
    // A live relay outside the range (a range shrunk by a restart) is still refused.
    p.relay_opened(addr("127.0.0.1:8080"));
    assert_eq!(p.check(addr("127.0.0.1:8080")), Err(Refusal::OwnAddress));
}

#[test]
fn host_addresses_can_change_while_running() {
    let p = policy();
    assert_eq!(p.check(addr("8.8.4.4:53")), Ok(()));
    p.set_host_addresses(["8.8.4.4".parse().unwrap()]);
    assert_eq!(p.check(addr("8.8.4.4:53")), Err(Refusal::OwnAddress));
    p.set_host_addresses([]);
    assert_eq!(p.check(addr("8.8.4.4:53")), Ok(()));
}

#[test]
fn allow_list_opens_a_lan_but_not_our_own_other_ports() {
    let p = PeerPolicy::new(
        vec!["10.0.0.5".parse().unwrap()],
        vec!["10.0.0.0/8".parse().unwrap()],
        49152..=65535,
    );
    p.relay_opened(addr("10.0.0.5:50000"));
    assert_eq!(p.check(addr("10.1.2.3:5000")), Ok(()));
    assert_eq!(p.check(addr("10.0.0.5:22")), Err(Refusal::OwnAddress));
    assert_eq!(p.check(addr("192.168.1.1:5000")), Err(Refusal::Denied));
}

#[test]
fn a_new_allow_list_applies_to_the_next_decision() {
    let p = policy();
    assert_eq!(p.check(addr("10.1.2.3:5000")), Err(Refusal::Denied));
    assert!(p.set_allow_list(vec!["10.0.0.0/8".parse().unwrap()]));
    assert_eq!(p.check(addr("10.1.2.3:5000")), Ok(()));
    assert!(!p.set_allow_list(vec!["10.0.0.0/8".parse().unwrap()]));
    assert!(p.set_allow_list(vec![]));
    assert_eq!(p.check(addr("10.1.2.3:5000")), Err(Refusal::Denied));
}

#[test]
fn host_addresses_are_refused_on_every_port_even_when_allow_listed() {
    let p = PeerPolicy::new(
        vec!["10.0.0.5".parse().unwrap()],
        vec!["10.0.0.0/8".parse().unwrap()],
        49152..=65535,
    )
    .with_host_addresses([
        "10.0.0.5".parse().unwrap(),
        "10.0.0.6".parse().unwrap(),
        "8.8.4.4".parse().unwrap(),
    ]);
    p.relay_opened(addr("10.0.0.5:50000"));
    assert_eq!(
        p.check(addr("10.0.0.5:50000")),
        Ok(()),
        "relay address stays a peer"
    );
    assert_eq!(p.check(addr("10.0.0.6:50000")), Err(Refusal::OwnAddress));
    assert_eq!(p.check(addr("10.0.0.6:22")), Err(Refusal::OwnAddress));
    assert_eq!(
        p.check(addr("8.8.4.4:53")),
        Err(Refusal::OwnAddress),
        "a second public IP"
    );
    assert_eq!(
        p.check(addr("[::ffff:8.8.4.4]:53")),
        Err(Refusal::EmbeddedIpv4)
    );
    assert_eq!(p.check(addr("10.1.2.3:5000")), Ok(()));
}

#[test]
fn port_zero_is_refused() {
    assert_eq!(policy().check(addr("8.8.8.8:0")), Err(Refusal::PortZero));
}

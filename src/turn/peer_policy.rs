//! Which peers a relay may talk to (RFC 8656 §9, "safe by default").
//!
//! An open relay lets anyone on the internet reach the server's loopback, its LAN and cloud
//! metadata services. So every peer address is canonicalised first (IPv4 hidden inside IPv6 is
//! how coturn CVE-2020-26262 and CVE-2026-27624 slipped past its deny list), then: our own relay
//! addresses are allowed on the relay port range only; the host's other addresses (a second
//! public IP, a LAN address) are refused on every port, even inside an allow-listed LAN; the
//! operator's allow-list comes next; then the built-in deny list of special-purpose ranges.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

use ipnet::IpNet;

/// Special-purpose ranges no relay may reach (IANA special registries, RFC 6890 and friends).
pub const DENIED: &[&str] = &[
    "0.0.0.0/8",
    "127.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/32",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// Why a peer was refused; tests and counters look at it, logs do not (a client controls it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An IPv4 address dressed as IPv6 (mapped, compatible, translated, NAT64).
    EmbeddedIpv4,
    /// One of our own addresses, outside the relay port range.
    OwnAddress,
    /// Inside the built-in deny list.
    Denied,
    /// Port 0 is not a destination.
    PortZero,
}

#[derive(Debug, Clone)]
pub struct PeerPolicy {
    denied: Vec<IpNet>,
    allowed: Vec<IpNet>,
    own: Vec<IpAddr>,
    /// Addresses of this host that are not relay addresses: nothing listens there for peers.
    host: Vec<IpAddr>,
    relay_ports: RangeInclusive<u16>,
}

impl PeerPolicy {
    /// `own` are the relay addresses (bound and advertised); `allowed` the operator's CIDRs.
    pub fn new(own: Vec<IpAddr>, allowed: Vec<IpNet>, relay_ports: RangeInclusive<u16>) -> Self {
        let denied = DENIED.iter().filter_map(|c| c.parse().ok()).collect();
        PeerPolicy {
            denied,
            allowed,
            own: own.into_iter().map(canonical).collect(),
            host: Vec::new(),
            relay_ports,
        }
    }

    /// Refuses these addresses of the host itself (its interfaces) on every port, unless they
    /// are relay addresses.
    pub fn with_host_addresses(mut self, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.host = addrs.into_iter().map(canonical).collect();
        self
    }

    pub fn allow_list(&self) -> &[IpNet] {
        &self.allowed
    }

    /// May a relay send to (and accept a permission for) `peer`?
    pub fn check(&self, peer: SocketAddr) -> Result<(), Refusal> {
        let ip = peer.ip();
        let canon = canonical(ip);
        if canon.is_ipv4() && ip.is_ipv6() {
            return Err(Refusal::EmbeddedIpv4);
        }
        if peer.port() == 0 {
            return Err(Refusal::PortZero);
        }
        if self.own.contains(&canon) {
            return match self.relay_ports.contains(&peer.port()) {
                true => Ok(()),
                false => Err(Refusal::OwnAddress),
            };
        }
        if self.host.contains(&canon) {
            return Err(Refusal::OwnAddress);
        }
        if self.allowed.iter().any(|net| net.contains(&canon)) {
            return Ok(());
        }
        if self.denied.iter().any(|net| net.contains(&canon)) {
            return Err(Refusal::Denied);
        }
        Ok(())
    }
}

/// The IPv4 address an IPv6 address really designates, if it embeds one: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`) and
/// the NAT64 well-known prefix (`64:ff9b::a.b.c.d`). `::` and `::1` stay IPv6.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    match embedded_ipv4(v6) {
        Some(v4) => IpAddr::V4(v4),
        None => ip,
    }
}

fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let head_zero = s[..5].iter().all(|&x| x == 0);
    let mapped = head_zero && s[5] == 0xffff;
    let compatible = head_zero && s[5] == 0 && (s[6] != 0 || s[7] > 1);
    let translated = s[..4].iter().all(|&x| x == 0) && s[4] == 0xffff && s[5] == 0;
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0);
    (mapped || compatible || translated || nat64).then_some(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PeerPolicy {
        PeerPolicy::new(
            vec!["127.0.0.1".parse().unwrap(), "203.0.113.7".parse().unwrap()],
            vec![],
            49152..=65535,
        )
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
    ];

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
    fn allow_list_opens_a_lan_but_not_our_own_other_ports() {
        let p = PeerPolicy::new(
            vec!["10.0.0.5".parse().unwrap()],
            vec!["10.0.0.0/8".parse().unwrap()],
            49152..=65535,
        );
        assert_eq!(p.check(addr("10.1.2.3:5000")), Ok(()));
        assert_eq!(p.check(addr("10.0.0.5:22")), Err(Refusal::OwnAddress));
        assert_eq!(p.check(addr("192.168.1.1:5000")), Err(Refusal::Denied));
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
}

//! Which peers a relay may talk to (RFC 8656 §9, "safe by default").
//!
//! An open relay lets anyone on the internet reach the server's loopback, its LAN and cloud
//! metadata services. So every peer address is canonicalised first (IPv4 hidden inside IPv6 is
//! how coturn CVE-2020-26262 and CVE-2026-27624 slipped past its deny list), then: our own relay
//! addresses are allowed only on ports that are live allocations of this server (not on any
//! other program's socket that happens to sit in the relay range); the host's other addresses
//! (a second public IP, a LAN address) are refused on every port, even inside an allow-listed
//! LAN; the operator's allow-list comes next; then the built-in deny list of special-purpose
//! ranges. The live relays and the host's addresses change while the server runs, so they sit
//! behind locks here; the policy itself stays a plain value with no sockets or clocks.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, RwLock};

use ipnet::IpNet;

/// Special-purpose ranges no relay may reach, unless `allow_peers` names them.
///
/// Every entry of two IANA registries, checked entry by entry:
/// - the IANA IPv6 Special-Purpose Address Registry as last updated 2025-10-09;
/// - the IANA IPv4 Special-Purpose Address Registry (iana-ipv4-special-registry) in the
///   version current at that same date. The last IPv4 "Last Updated" date we have seen on a
///   copy of the registry itself is 2020-09-04; the one entry listed since then,
///   192.88.99.2/32 (6a44 relay anycast, RFC 6751), lies inside 192.88.99.0/24 and is listed
///   here on its own line as the registry lists it. Entries nested in a wider one
///   (0.0.0.0/32; 192.0.0.0/29, .8, .9, .10, .170, .171 inside 192.0.0.0/24) need no line.
///
/// Including the entries IANA marks "globally reachable" (anycast services, AS112, AMT,
/// ORCHIDv2, DETs, NAT64's well-known prefix): no browser needs to relay to those, so the rule
/// stays "deny unless allow-listed". Plus multicast (224/4, ff00::/8) and the deprecated
/// site-local fec0::/10, which are in other registries. When IANA updates either registry,
/// compare it with this list and move the dates above.
pub const DENIED: &[&str] = &[
    // IPv4 special-purpose registry.
    "0.0.0.0/8",          // "this network" (0.0.0.0/32 "this host" inside it)
    "10.0.0.0/8",         // private use
    "100.64.0.0/10",      // shared address space (CGN)
    "127.0.0.0/8",        // loopback
    "169.254.0.0/16",     // link local (cloud metadata lives here)
    "172.16.0.0/12",      // private use
    "192.0.0.0/24",       // IETF protocol assignments (DS-Lite, PCP/TURN anycast, NAT64 discovery)
    "192.0.2.0/24",       // documentation (TEST-NET-1)
    "192.31.196.0/24",    // AS112-v4
    "192.52.193.0/24",    // AMT
    "192.88.99.0/24",     // deprecated 6to4 relay anycast
    "192.88.99.2/32",     // 6a44 relay anycast (inside the /24, listed as the registry does)
    "192.168.0.0/16",     // private use
    "192.175.48.0/24",    // direct delegation AS112 service
    "198.18.0.0/15",      // benchmarking
    "198.51.100.0/24",    // documentation (TEST-NET-2)
    "203.0.113.0/24",     // documentation (TEST-NET-3)
    "240.0.0.0/4",        // reserved
    "255.255.255.255/32", // limited broadcast (inside 240/4, listed as the registry does)
    "224.0.0.0/4",        // multicast (multicast registry)
    // IPv6 special-purpose registry.
    "::/128",            // unspecified
    "::1/128",           // loopback
    "::ffff:0:0/96",     // IPv4-mapped (refused earlier as embedded IPv4 anyway)
    "64:ff9b::/96",      // IPv4/IPv6 translation, well-known prefix
    "64:ff9b:1::/48",    // local-use IPv4/IPv6 translation
    "100::/64",          // discard-only
    "100:0:0:1::/64",    // dummy IPv6 prefix
    "2001::/23",         // IETF protocol assignments: all of the entries below and the rest
    "2001::/32",         // TEREDO
    "2001:1::1/128",     // PCP anycast
    "2001:1::2/128",     // TURN anycast
    "2001:1::3/128",     // DNS-SD service registration protocol anycast
    "2001:2::/48",       // benchmarking
    "2001:3::/32",       // AMT
    "2001:4:112::/48",   // AS112-v6
    "2001:10::/28",      // deprecated ORCHID
    "2001:20::/28",      // ORCHIDv2
    "2001:30::/28",      // drone remote ID entity tags (DETs)
    "2001:db8::/32",     // documentation
    "2002::/16",         // 6to4
    "2620:4f:8000::/48", // direct delegation AS112 service
    "3fff::/20",         // documentation
    "5f00::/16",         // segment routing (SRv6) SIDs
    "fc00::/7",          // unique local
    "fe80::/10",         // link-local unicast
    "fec0::/10",         // deprecated site-local (address architecture)
    "ff00::/8",          // multicast (address architecture)
];

/// Why a peer was refused; tests and counters look at it, logs do not (a client controls it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An IPv4 address dressed as IPv6 (mapped, compatible, translated, NAT64).
    EmbeddedIpv4,
    /// One of our own addresses, on a port that is not a live relay of this server.
    OwnAddress,
    /// Inside the built-in deny list.
    Denied,
    /// Port 0 is not a destination.
    PortZero,
}

impl Refusal {
    /// The metrics label (`callbox_turn_peer_refusals_total`).
    pub fn label(self) -> &'static str {
        match self {
            Refusal::EmbeddedIpv4 => "embedded_ipv4",
            Refusal::OwnAddress => "own_address",
            Refusal::Denied => "denied",
            Refusal::PortZero => "port_zero",
        }
    }
}

#[derive(Debug)]
pub struct PeerPolicy {
    denied: Vec<IpNet>,
    /// The operator's allow-list, swapped whole by a config reload; each decision loads it
    /// once, so every relay and guard sees the new list from its next packet or request.
    allowed: RwLock<Arc<[IpNet]>>,
    own: Vec<IpAddr>,
    /// Addresses of this host that are not relay addresses: nothing listens there for peers.
    host: RwLock<Vec<IpAddr>>,
    /// Relay sockets of this server now open, bound and advertised addresses both.
    live: RwLock<HashSet<SocketAddr>>,
    relay_ports: RangeInclusive<u16>,
    /// `[cluster]`: the other nodes' relay addresses, each on its relay ports only.
    cluster: RwLock<Vec<(IpAddr, RangeInclusive<u16>)>>,
}

impl PeerPolicy {
    /// `own` are the relay addresses (bound and advertised); `allowed` the operator's CIDRs.
    pub fn new(own: Vec<IpAddr>, allowed: Vec<IpNet>, relay_ports: RangeInclusive<u16>) -> Self {
        let denied = DENIED.iter().filter_map(|c| c.parse().ok()).collect();
        PeerPolicy {
            denied,
            allowed: RwLock::new(allowed.into()),
            own: own.into_iter().map(canonical).collect(),
            host: RwLock::new(Vec::new()),
            live: RwLock::new(HashSet::new()),
            relay_ports,
            cluster: RwLock::new(Vec::new()),
        }
    }

    /// Refuses these addresses of the host itself (its interfaces) on every port, unless they
    /// are relay addresses.
    pub fn with_host_addresses(self, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.set_host_addresses(addrs);
        self
    }

    /// Replaces the host's addresses (re-read when the interfaces change).
    pub fn set_host_addresses(&self, addrs: impl IntoIterator<Item = IpAddr>) {
        let mut addrs: Vec<IpAddr> = addrs.into_iter().map(canonical).collect();
        addrs.sort();
        addrs.dedup();
        if let Ok(mut host) = self.host.write() {
            *host = addrs;
        }
    }

    /// A relay socket of this server opened at `addr` (bound or advertised): peers may
    /// reach it.
    pub fn relay_opened(&self, addr: SocketAddr) {
        if let Ok(mut live) = self.live.write() {
            live.insert(SocketAddr::new(canonical(addr.ip()), addr.port()));
        }
    }

    /// The relay socket at `addr` closed: that port of ours is no peer any more.
    pub fn relay_closed(&self, addr: SocketAddr) {
        if let Ok(mut live) = self.live.write() {
            live.remove(&SocketAddr::new(canonical(addr.ip()), addr.port()));
        }
    }

    /// Replaces the other cluster nodes' relays (learned through Redis).
    pub fn set_cluster_relays(&self, relays: Vec<(IpAddr, RangeInclusive<u16>)>) {
        if let Ok(mut cluster) = self.cluster.write() {
            *cluster = relays
                .into_iter()
                .map(|(ip, p)| (canonical(ip), p))
                .collect();
        }
    }

    /// The allow-list in force now.
    pub fn allow_list(&self) -> Arc<[IpNet]> {
        match self.allowed.read() {
            Ok(list) => Arc::clone(&list),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts a new allow-list in force (SIGHUP); true if it differs from the old one.
    pub fn set_allow_list(&self, allowed: Vec<IpNet>) -> bool {
        if *self.allow_list() == *allowed {
            return false;
        }
        let mut list = self.allowed.write().unwrap_or_else(|p| p.into_inner());
        *list = allowed.into();
        true
    }

    /// May a client install a permission (CreatePermission) for `peer`'s IP address?
    ///
    /// Permissions are per IP address, the port is ignored (RFC 8656 §9). For our own relay
    /// addresses the port decides, and it is checked on every datagram instead ([`check`]),
    /// so here any port of the relay range is accepted: the peer's relay candidates on this
    /// same server come and go (a browser frees its duplicate allocations right after
    /// gathering, yet has already sent their candidates), and a 403 for one that has just
    /// closed makes Firefox give up on every candidate at that address, so a relayed call
    /// between two clients of this server fails.
    ///
    /// [`check`]: PeerPolicy::check
    pub fn check_permission(&self, peer: SocketAddr) -> Result<(), Refusal> {
        let canon = canonical(peer.ip());
        let ours = self.own.contains(&canon) && peer.ip().is_ipv4() == canon.is_ipv4();
        if ours && peer.port() != 0 && self.relay_ports.contains(&peer.port()) {
            return Ok(());
        }
        self.check(peer)
    }

    /// May a relay send to (and bind a channel for) `peer`?
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
            let live = self.relay_ports.contains(&peer.port())
                && self
                    .live
                    .read()
                    .is_ok_and(|l| l.contains(&SocketAddr::new(canon, peer.port())));
            return match live {
                true => Ok(()),
                false => Err(Refusal::OwnAddress),
            };
        }
        let port = peer.port();
        let node_relay = |c: &Vec<(IpAddr, RangeInclusive<u16>)>| {
            c.iter()
                .any(|(ip, ports)| *ip == canon && ports.contains(&port))
        };
        if self.cluster.read().is_ok_and(|c| node_relay(&c)) {
            return Ok(());
        }
        if self.host.read().is_ok_and(|h| h.contains(&canon)) {
            return Err(Refusal::OwnAddress);
        }
        if self.allow_list().iter().any(|net| net.contains(&canon)) {
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
#[path = "peer_policy_tests.rs"]
mod tests;

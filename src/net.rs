//! Address helpers shared by the limits that count clients per address.
//!
//! One host usually holds a whole IPv6 /64 and can pick any address in it, so counting per
//! full IPv6 address would give one host 2^64 shares; an IPv4 client reaching a dual-stack
//! socket shows up as `::ffff:a.b.c.d` and must count as that IPv4 address.

use std::net::{IpAddr, Ipv6Addr};

/// The key a per-address limit counts under: the IPv4 address itself (IPv4-mapped IPv6 is
/// unmapped first), or the /64 an IPv6 address belongs to.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_in_one_slash_64_share_a_key() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_their_ipv4_address() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), v4);
        assert_eq!(client_key(v4), v4);
    }
}

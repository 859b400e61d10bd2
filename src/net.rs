//! Address and socket helpers the three jobs share, so each rule exists once: how a client
//! address is keyed for per-address limits, how a dual-stack socket's IPv4 peers are unmapped,
//! how a browser Origin is compared, and how a listener backs off when `accept` fails.
//!
//! One host usually holds a whole IPv6 /64 and can pick any address in it, so counting per
//! full IPv6 address would give one host 2^64 shares; an IPv4 client reaching a dual-stack
//! socket shows up as `::ffff:a.b.c.d` and must count as that IPv4 address.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

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

/// The address a dual-stack socket's peer really has: `::ffff:a.b.c.d` becomes `a.b.c.d`.
pub fn unmapped(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// An Origin (or an allowed origin from the config) as compared: trimmed, without a trailing
/// slash, lower case (scheme and host are case-insensitive).
pub fn normalize_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Delay after a failed `accept` (EMFILE, ENFILE, ENOBUFS...): doubling from 10 ms up to 1 s,
/// back to the start after an accept succeeds. Retrying at once would spin on a full fd table.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    pub fn next_delay(&mut self) -> Duration {
        let delay = Self::FIRST.saturating_mul(1 << self.failures.min(10));
        self.failures = self.failures.saturating_add(1);
        delay.min(Self::MAX)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The next connection on `listener`, or `None` on shutdown. A failed accept is logged with
/// the listener's name (`what`) and retried after the back-off, which every listener shares.
pub async fn accept(
    listener: &TcpListener,
    backoff: &mut Backoff,
    what: &str,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return None,
        };
        match accepted {
            Ok(accepted) => {
                backoff.reset();
                return Some(accepted);
            }
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::warn!("{what}: accept failed ({err}); retrying in {delay:?}");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_up_to_a_second_and_resets() {
        let mut backoff = Backoff::default();
        let delays: Vec<_> = (0..9).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays[0], Duration::from_millis(10));
        assert_eq!(delays[1], Duration::from_millis(20));
        assert_eq!(delays[7], Duration::from_secs(1));
        assert_eq!(delays[8], Duration::from_secs(1));
        for _ in 0..100 {
            assert!(backoff.next_delay() <= Duration::from_secs(1));
        }
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(10));
    }

    #[test]
    fn mapped_peers_are_unmapped_and_origins_compare_normalised() {
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:5000".parse().unwrap();
        assert_eq!(unmapped(mapped), "192.0.2.7:5000".parse().unwrap());
        let v6: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        assert_eq!(unmapped(v6), v6);
        assert_eq!(
            normalize_origin(" HTTPS://Call.Example/ "),
            "https://call.example"
        );
    }

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

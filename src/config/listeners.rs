//! Checks across sections: two listeners of the same protocol on overlapping addresses would
//! fail at bind time, after other sockets are already open, so they are caught here with the
//! keys named.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::{Config, ConfigError};

/// No two TCP (or two UDP) listeners overlap, and none sits inside the TURN relay port range.
pub fn check_port_clashes(config: &Config) -> Result<(), ConfigError> {
    let mut tcp: Vec<(&str, SocketAddr)> = vec![("server.listen", config.server.listen)];
    tcp.extend(config.metrics.listen_addr()?.map(|a| ("metrics.listen", a)));
    tcp.extend(
        config
            .server
            .http_redirect
            .map(|a| ("server.http_redirect", a)),
    );
    let mut udp: Vec<(&str, SocketAddr)> = Vec::new();
    let turn = &config.turn;
    if turn.enabled {
        udp.extend(turn.listen_udp.iter().map(|a| ("turn.listen_udp", *a)));
        tcp.extend(turn.listen_tcp.iter().map(|a| ("turn.listen_tcp", *a)));
        tcp.extend(turn.listen_tls.iter().map(|a| ("turn.listen_tls", *a)));
    }
    for list in [&tcp, &udp] {
        for (i, (key_a, a)) in list.iter().enumerate() {
            for (key_b, b) in list.iter().skip(i + 1) {
                if clashes(*a, *b) {
                    return Err(ConfigError::invalid(
                        *key_b,
                        format!("{b} clashes with {key_a} = {a}"),
                    ));
                }
            }
        }
    }
    if turn.enabled {
        let range = turn.relay_port_min..=turn.relay_port_max;
        for (key, addr) in tcp.iter().chain(udp.iter()) {
            if addr.port() != 0 && range.contains(&addr.port()) {
                return Err(ConfigError::invalid(
                    *key,
                    format!(
                        "port {} is inside turn.relay_port_min..turn.relay_port_max",
                        addr.port()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Same port (not ephemeral) and addresses that overlap: equal, or either unspecified in the
/// same family. A "[::]" socket is dual-stack on Linux, so it overlaps every IPv4 address too;
/// list "[::]:3478" alone to serve both families.
fn clashes(a: SocketAddr, b: SocketAddr) -> bool {
    let dual_stack =
        |x: SocketAddr, y: SocketAddr| x.ip() == IpAddr::from(Ipv6Addr::UNSPECIFIED) && y.is_ipv4();
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
            || dual_stack(a, b)
            || dual_stack(b, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_stack_wildcard_clashes_with_ipv4_but_not_with_a_specific_ipv6() {
        let v6_any: SocketAddr = "[::]:3478".parse().unwrap();
        assert!(clashes(v6_any, "0.0.0.0:3478".parse().unwrap()));
        assert!(clashes("127.0.0.1:3478".parse().unwrap(), v6_any));
        assert!(clashes(v6_any, "[::1]:3478".parse().unwrap()));
        assert!(!clashes(
            "127.0.0.1:3478".parse().unwrap(),
            "[::1]:3478".parse().unwrap()
        ));
        assert!(!clashes(
            "0.0.0.0:3478".parse().unwrap(),
            "[::1]:3478".parse().unwrap()
        ));
    }
}

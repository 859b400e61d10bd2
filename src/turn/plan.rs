//! TURN start-up, step one: everything the server is, decided from the config before any
//! socket exists. Pure apart from reading the host's interface addresses (for the peer
//! policy) and the clock the limiters start from; binding is the next step, in `bind`.
//!
//! The relay plan (addresses, port range, bandwidth) is built once here and the guard (which
//! families it can relay), the peer policy (its own relay ports are off limits) and the relay
//! sockets all take it from there, instead of each reading the config again.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::admission::Admission;
use super::credentials::Credentials;
use super::guard::ServerState;
use super::limiter::Limiter;
use super::limits::{Budgets, TurnLimits};
use super::peer_policy::PeerPolicy;
use super::quota::Quotas;
use super::relay::RelaySettings;
use super::{host_watch, logins, TurnConfig, TurnContext};

/// The server as planned: the state every session shares, and what the listeners need.
pub(super) struct Plan {
    pub shared: Arc<ServerState>,
    pub relay: Arc<RelaySettings>,
    pub admission: Arc<Admission>,
    pub public_host: String,
    pub https_port: Option<u16>,
    pub ttl: Duration,
    pub host_poll: Duration,
}

/// Plans the server `config` describes, with the built-in `limits`.
pub(super) fn plan(config: &TurnConfig, ctx: &TurnContext, limits: &TurnLimits) -> Plan {
    let relay = Arc::new(relay_plan(config));
    let shared = Arc::new(ServerState {
        creds: credentials(config, &ctx.public_host),
        logins: Mutex::new(logins::LiveLogins::new()),
        policy: Arc::new(peer_policy(config, &relay)),
        quotas: Mutex::new(room_capped(
            Quotas::new(
                config.max_allocations_per_user,
                config.max_allocations_per_ip,
                config.max_allocations,
            ),
            config.allocations_per_room(),
        )),
        limiter: Mutex::new(Limiter::new(limits.nonce, Instant::now())),
        counters: Default::default(),
        budgets: Budgets::new(limits.clone(), Instant::now()),
        relay_v4: relay.ips.iter().any(|ip| ip.is_ipv4()),
        relay_v6: relay.ips.iter().any(|ip| ip.is_ipv6()),
    });
    let admission = Admission::new(
        config.max_clients,
        TurnLimits::per_address(limits.udp_sessions_per_address, config.max_clients),
        TurnLimits::per_address(limits.stream_connections_per_address, config.max_clients),
    );
    Plan {
        shared,
        relay,
        admission,
        public_host: ctx.public_host.clone(),
        https_port: ctx.https_port,
        ttl: Duration::from_secs(config.credential_ttl_secs),
        host_poll: limits.host_poll,
    }
}

/// Where relay sockets bind, what they advertise, and how fast they may send.
fn relay_plan(config: &TurnConfig) -> RelaySettings {
    RelaySettings {
        ips: config.relay_ips.clone(),
        external_ip: config.external_ip,
        port_min: config.relay_port_min,
        port_max: config.relay_port_max,
        bytes_per_sec: config.bandwidth_per_allocation_kbps.saturating_mul(125),
    }
}

fn credentials(config: &TurnConfig, public_host: &str) -> Credentials {
    let realm = match config.realm.trim() {
        "" => public_host.to_string(),
        realm => realm.to_string(),
    };
    let users: Vec<(String, String)> = config
        .users
        .iter()
        .map(|u| (u.name.clone(), u.password.clone()))
        .collect();
    Credentials::new(realm, &config.secrets, &users)
}

/// The peers relays may reach: not ourselves (the relay plan's addresses and ports), not the
/// built-in deny list unless `turn.allow_peers` says so.
fn peer_policy(config: &TurnConfig, relay: &RelaySettings) -> PeerPolicy {
    // Validated by config::turn, so nothing is dropped here.
    let allowed: Vec<ipnet::IpNet> = config
        .allow_peers
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect();
    for net in &allowed {
        tracing::warn!(
            "turn.allow_peers: relays may reach {net} despite the built-in deny list \
             (anyone with TURN credentials can reach hosts there)"
        );
    }
    let mut own = relay.ips.clone();
    own.extend(relay.external_ip);
    PeerPolicy::new(own, allowed, relay.port_min..=relay.port_max)
        .with_host_addresses(host_watch::host_addresses())
}

/// The sockets a plan listens on, bound: the one fallible I/O step of start-up.
pub(super) struct Bound {
    pub udp: Vec<tokio::net::UdpSocket>,
    pub tcp: Vec<tokio::net::TcpListener>,
    pub tls: Vec<(tokio::net::TcpListener, tokio_rustls::TlsAcceptor)>,
}

/// Binds every listener of `config`, or says which one could not be bound.
pub(super) async fn bind(
    config: &TurnConfig,
    ctx: &TurnContext,
) -> Result<Bound, super::TurnError> {
    use super::TurnError;
    let acceptor = match (config.listen_tls.is_empty(), &ctx.tls) {
        (true, _) => None,
        (false, Some(tls)) => Some(tokio_rustls::TlsAcceptor::from(Arc::clone(tls))),
        (false, None) => return Err(TurnError::NoCertificate),
    };
    let failed = |what: &'static str, addr: &SocketAddr| {
        let addr = *addr;
        move |source| TurnError::Bind { what, addr, source }
    };
    let mut bound = Bound {
        udp: Vec::new(),
        tcp: Vec::new(),
        tls: Vec::new(),
    };
    for addr in &config.listen_udp {
        let socket = tokio::net::UdpSocket::bind(addr).await;
        bound
            .udp
            .push(socket.map_err(failed("turn.listen_udp", addr))?);
    }
    for addr in &config.listen_tcp {
        let listener = tokio::net::TcpListener::bind(addr).await;
        bound
            .tcp
            .push(listener.map_err(failed("turn.listen_tcp", addr))?);
    }
    for (addr, acceptor) in config.listen_tls.iter().zip(std::iter::repeat(acceptor)) {
        let listener = tokio::net::TcpListener::bind(addr).await;
        let listener = listener.map_err(failed("turn.listen_tls", addr))?;
        if let Some(acceptor) = acceptor {
            bound.tls.push((listener, acceptor));
        }
    }
    Ok(bound)
}

/// `quotas` with its per-room cap set (`turn.max_allocations_per_room`).
fn room_capped(mut quotas: Quotas, max_per_room: usize) -> Quotas {
    quotas.set_room_limit(max_per_room);
    quotas
}

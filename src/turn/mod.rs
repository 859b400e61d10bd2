//! The embedded STUN/TURN server, so calls cross NATs with no outside infrastructure.
//!
//! Built on webrtc-rs `turn`, with callbox's own layer around it (see docs/turn.md): a guard in
//! front of every client transport (credentials, peer policy, quotas, rate limits), relay
//! sockets that re-check the policy and count bytes, and TCP/TLS framing the crate lacks.

mod admission;
mod allocs;
pub mod config;
pub mod credentials;
mod fastpath;
pub mod guard;
mod host_watch;
pub mod limiter;
pub mod limits;
pub mod logins;
mod peer_cap;
pub mod peer_policy;
pub mod quota;
pub mod relay;
mod retransmit;
pub mod secrets;
mod session;
mod split;
mod tcp;
mod udp;
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{TurnConfig, TurnUser};

use admission::{Admission, Kind};
use credentials::Credentials;
use guard::Shared;
use limiter::Limiter;
use limits::{Budgets, TurnLimits};
use peer_policy::PeerPolicy;
use quota::Quotas;
use relay::RelaySettings;
use session::SessionEnv;

/// What the TURN server needs from the rest of the process.
pub struct TurnContext {
    /// Host name put in `stun:`/`turn:`/`turns:` URLs (and the realm when `turn.realm` is empty).
    pub public_host: String,
    /// The HTTPS port when TURN over TLS is also served there (first-byte split), for `turns:` URLs.
    pub https_port: Option<u16>,
    /// Certificate for `turn.listen_tls` listeners.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub shutdown: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("turn.listen_tls is set but there is no certificate (enable [tls])")]
    NoCertificate,
    #[error("{0}")]
    Other(String),
}

/// Counters and gauges of a running server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnStats {
    pub allocations: usize,
    pub refused_401: u64,
    pub refused_403: u64,
    pub refused_440: u64,
    pub refused_486: u64,
    pub refused_508: u64,
    pub send_dropped: u64,
    pub unauth_passed: u64,
    pub unauth_dropped: u64,
    pub clients_refused: u64,
    /// Client transports (UDP source addresses, TCP/TLS connections) being served.
    pub clients: usize,
    /// Source addresses the unauthenticated-request limiter currently remembers.
    pub limiter_entries: usize,
    /// Signaling logins whose credentials may make new allocations.
    pub live_logins: usize,
}

/// A running TURN server.
pub struct TurnServer {
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    tls: Vec<SocketAddr>,
    public_host: String,
    https_port: Option<u16>,
    ttl: Duration,
    shared: Arc<Shared>,
    env: SessionEnv,
    stop: CancellationToken,
}

impl TurnServer {
    pub async fn start(config: &TurnConfig, ctx: TurnContext) -> Result<TurnServer, TurnError> {
        Self::start_with_limits(config, ctx, TurnLimits::default()).await
    }

    /// [`TurnServer::start`] with other built-in limits (tests shorten the lifetimes).
    pub async fn start_with_limits(
        config: &TurnConfig,
        ctx: TurnContext,
        limits: TurnLimits,
    ) -> Result<TurnServer, TurnError> {
        let realm = match config.realm.trim() {
            "" => ctx.public_host.clone(),
            realm => realm.to_string(),
        };
        let users: Vec<(String, String)> = config
            .users
            .iter()
            .map(|u| (u.name.clone(), u.password.clone()))
            .collect();
        let creds = Credentials::new(realm, &config.secrets, &users);
        let allowed: Vec<ipnet::IpNet> = config
            .allow_peers
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        let mut own = config.relay_ips.clone();
        own.extend(config.external_ip);
        let policy = Arc::new(
            PeerPolicy::new(
                own,
                allowed.clone(),
                config.relay_port_min..=config.relay_port_max,
            )
            .with_host_addresses(host_watch::host_addresses()),
        );
        for net in &allowed {
            tracing::warn!(
                "turn.allow_peers: relays may reach {net} despite the built-in deny list \
                 (anyone with TURN credentials can reach hosts there)"
            );
        }
        let shared = Arc::new(Shared {
            creds,
            logins: Mutex::new(logins::LiveLogins::new()),
            policy,
            quotas: Mutex::new(Quotas::new(
                config.max_allocations_per_user,
                config.max_allocations_per_ip,
                config.max_allocations,
            )),
            limiter: Mutex::new(Limiter::new(limits.nonce, Instant::now())),
            counters: Default::default(),
            budgets: Budgets::new(limits.clone(), Instant::now()),
            relay_v4: config.relay_ips.iter().any(|ip| ip.is_ipv4()),
            relay_v6: config.relay_ips.iter().any(|ip| ip.is_ipv6()),
        });
        let stop = ctx.shutdown.child_token();
        let env = SessionEnv {
            shared: Arc::clone(&shared),
            relay: Arc::new(RelaySettings {
                ips: config.relay_ips.clone(),
                external_ip: config.external_ip,
                port_min: config.relay_port_min,
                port_max: config.relay_port_max,
                bytes_per_sec: config.bandwidth_per_allocation_kbps.saturating_mul(125),
            }),
            admission: Admission::new(
                config.max_clients,
                TurnLimits::per_address(limits.udp_sessions_per_address, config.max_clients),
                TurnLimits::per_address(limits.stream_connections_per_address, config.max_clients),
            ),
            shutdown: stop.clone(),
            tasks: TaskTracker::new(),
        };

        let tls_acceptor = match (config.listen_tls.is_empty(), &ctx.tls) {
            (true, _) => None,
            (false, Some(tls)) => Some(tokio_rustls::TlsAcceptor::from(Arc::clone(tls))),
            (false, None) => return Err(TurnError::NoCertificate),
        };
        let mut udp_sockets = Vec::new();
        for addr in &config.listen_udp {
            let socket = UdpSocket::bind(addr)
                .await
                .map_err(|source| TurnError::Bind {
                    what: "turn.listen_udp",
                    addr: *addr,
                    source,
                })?;
            udp_sockets.push(socket);
        }
        let mut tcp_listeners = Vec::new();
        for (what, list, tls) in [
            ("turn.listen_tcp", &config.listen_tcp, None),
            ("turn.listen_tls", &config.listen_tls, tls_acceptor),
        ] {
            for addr in list {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| TurnError::Bind {
                        what,
                        addr: *addr,
                        source,
                    })?;
                tcp_listeners.push((listener, tls.clone()));
            }
        }

        let bound = |a: std::io::Result<SocketAddr>, fallback: SocketAddr| a.unwrap_or(fallback);
        let mut server = TurnServer {
            udp: Vec::new(),
            tcp: Vec::new(),
            tls: Vec::new(),
            public_host: ctx.public_host.clone(),
            https_port: ctx.https_port,
            ttl: Duration::from_secs(config.credential_ttl_secs),
            shared,
            env: env.clone(),
            stop,
        };
        for (socket, addr) in udp_sockets.into_iter().zip(&config.listen_udp) {
            server.udp.push(bound(socket.local_addr(), *addr));
            env.tasks.spawn(udp::serve(socket, env.clone()));
        }
        for (listener, tls) in tcp_listeners {
            let addr = bound(listener.local_addr(), SocketAddr::from(([0, 0, 0, 0], 0)));
            match tls {
                Some(_) => server.tls.push(addr),
                None => server.tcp.push(addr),
            }
            env.tasks.spawn(tcp::serve(listener, tls, env.clone()));
        }
        env.tasks.spawn(host_watch::run(
            Arc::clone(&env.shared.policy),
            limits.host_poll,
            host_watch::host_addresses,
            server.stop.clone(),
        ));
        let sweeper = env.shared.clone();
        let stop = server.stop.clone();
        env.tasks.spawn(async move {
            let mut tick = tokio::time::interval(limiter::SWEEP_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Ok(mut l) = sweeper.limiter.lock() { l.sweep(Instant::now()) }
                        sweeper.budgets.sweep(Instant::now());
                    }
                    _ = stop.cancelled() => break,
                }
            }
        });
        tracing::info!(
            udp = ?server.udp, tcp = ?server.tcp, tls = ?server.tls,
            relay = ?config.relay_ips, external_ip = ?config.external_ip,
            relay_ports = %format!("{}-{}", config.relay_port_min, config.relay_port_max),
            realm = %server.shared.creds.realm(),
            "TURN server listening"
        );
        Ok(server)
    }

    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls
    }

    pub fn realm(&self) -> &str {
        self.shared.creds.realm()
    }

    /// Fresh `iceServers` (JSON array) for the login `login` (the caller's key for one login,
    /// not a display name), and the credentials' lifetime. The login is live from now until
    /// [`TurnServer::revoke_login`]; its REST username carries an opaque id, the same on every
    /// refresh.
    pub fn ice_servers_for(&self, login: &str) -> (serde_json::Value, Duration) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let id = match self.shared.logins.lock() {
            Ok(mut logins) => logins.grant(login),
            Err(_) => return (serde_json::json!([]), self.ttl),
        };
        let (username, credential) = self.shared.creds.mint(&id, now + self.ttl.as_secs());
        let host = match self.public_host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{}]", self.public_host),
            Err(_) => self.public_host.clone(),
        };
        let mut urls = Vec::new();
        if let Some(a) = self.udp.first() {
            urls.push(format!("stun:{host}:{}", a.port()));
            urls.push(format!("turn:{host}:{}?transport=udp", a.port()));
        }
        if let Some(a) = self.tcp.first() {
            urls.push(format!("turn:{host}:{}?transport=tcp", a.port()));
        }
        if let Some(a) = self.tls.first() {
            urls.push(format!("turns:{host}:{}?transport=tcp", a.port()));
        }
        if let Some(port) = self.https_port {
            urls.push(format!("turns:{host}:{port}?transport=tcp"));
        }
        let servers = serde_json::json!([{
            "urls": urls,
            "username": username,
            "credential": credential,
        }]);
        (servers, self.ttl)
    }

    /// The login `login` ended: its credentials make no new allocation from now on (401), while
    /// allocations it already holds keep working until they end.
    pub fn revoke_login(&self, login: &str) {
        if let Ok(mut logins) = self.shared.logins.lock() {
            logins.revoke(login);
        }
    }

    /// Serve TURN on an already-accepted byte stream (TURN over TLS on the HTTPS port).
    pub fn serve_stream<S>(&self, stream: S, peer: SocketAddr, local: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let ip = session::unmapped(peer).ip();
        let ticket = match self.env.admission.admit(Kind::Stream, ip) {
            Ok(ticket) => ticket,
            Err(why) => {
                quota::Counters::bump(&self.shared.counters.clients_refused);
                return self.env.admission.note_refusal(Kind::Stream, peer, why);
            }
        };
        let env = self.env.clone();
        self.env
            .tasks
            .spawn(tcp::run(stream, peer, local, env, ticket));
    }

    pub fn stats(&self) -> TurnStats {
        let c = &self.shared.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        TurnStats {
            allocations: self.shared.quotas.lock().map(|q| q.total()).unwrap_or(0),
            refused_401: load(&c.refused_401),
            refused_403: load(&c.refused_403),
            refused_440: load(&c.refused_440),
            refused_486: load(&c.refused_486),
            refused_508: load(&c.refused_508),
            send_dropped: load(&c.send_dropped),
            unauth_passed: load(&c.unauth_passed),
            unauth_dropped: load(&c.unauth_dropped),
            clients_refused: load(&c.clients_refused),
            clients: self.env.admission.in_use(),
            limiter_entries: self.shared.limiter.lock().map(|l| l.tracked()).unwrap_or(0),
            live_logins: self.shared.logins.lock().map(|l| l.len()).unwrap_or(0),
        }
    }

    /// Stop listening and end every allocation.
    pub async fn close(&self) {
        self.stop.cancel();
        self.env.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.env.tasks.wait()).await;
    }
}

//! The embedded STUN/TURN server, so calls cross NATs with no outside infrastructure.
//!
//! Built on webrtc-rs `turn`, with callbox's own layer around it (see docs/turn.md): a guard in
//! front of every client transport (credentials, peer policy, quotas, rate limits), relay
//! sockets that re-check the policy and count bytes, and TCP/TLS framing the crate lacks.

mod admission;
mod allocs;
pub mod credentials;
mod fastpath;
pub(crate) mod guard;
mod host_watch;
pub(crate) mod limiter;
pub mod limits;
pub(crate) mod live;
pub(crate) mod logins;
mod mmsg;
mod peer_cap;
pub mod peer_policy;
mod plan;
pub(crate) mod quota;
pub(crate) mod relay;
mod retransmit;
mod runtime;
mod session;
mod split;
mod tcp;
mod udp;
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::config::secrets;
pub use crate::config::turn::{TurnConfig, TurnUser};

use crate::lock::lock;
use admission::Kind;
use guard::ServerState;
use limits::TurnLimits;
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

/// Forgets idle limiter entries and budgets now and then, so their tables stay small.
async fn sweep(shared: Arc<ServerState>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(limiter::SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                lock(&shared.limiter, "TURN limiter").sweep(Instant::now());
                shared.budgets.sweep(Instant::now());
            }
            _ = stop.cancelled() => break,
        }
    }
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
    shared: Arc<ServerState>,
    env: SessionEnv,
    stop: CancellationToken,
    /// A standalone server (tests, benches) has its own tracker and waits for it in
    /// [`TurnServer::close`]; inside callbox the tasks are on the process's one tracker.
    owns_tasks: bool,
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
        Self::start_on(config, ctx, limits, TaskTracker::new(), true).await
    }

    /// Starts with every task on `tasks`, the process's one tracker, which the caller waits
    /// for on shutdown (what `app::start` does).
    pub async fn start_tracked(
        config: &TurnConfig,
        ctx: TurnContext,
        tasks: TaskTracker,
    ) -> Result<TurnServer, TurnError> {
        Self::start_on(config, ctx, TurnLimits::default(), tasks, false).await
    }

    /// Plan (pure), bind (the one fallible I/O step), spawn.
    async fn start_on(
        config: &TurnConfig,
        ctx: TurnContext,
        limits: TurnLimits,
        tasks: TaskTracker,
        owns_tasks: bool,
    ) -> Result<TurnServer, TurnError> {
        let plan = plan::plan(config, &ctx, &limits);
        let bound = plan::bind(config, &ctx).await?;
        let stop = ctx.shutdown.child_token();
        let env = SessionEnv {
            shared: Arc::clone(&plan.shared),
            relay: Arc::clone(&plan.relay),
            admission: plan.admission,
            shutdown: stop.clone(),
            tasks,
        };
        let server = TurnServer::spawn(bound, env, stop, plan.host_poll);
        let server = TurnServer {
            public_host: plan.public_host,
            https_port: plan.https_port,
            ttl: plan.ttl,
            owns_tasks,
            ..server
        };
        tracing::info!(
            udp = ?server.udp, tcp = ?server.tcp, tls = ?server.tls,
            relay = ?plan.relay.ips, external_ip = ?plan.relay.external_ip,
            relay_ports = %format!("{}-{}", plan.relay.port_min, plan.relay.port_max),
            realm = %server.shared.creds.realm(),
            "TURN server listening"
        );
        Ok(server)
    }

    /// Starts a task per bound listener, the host-address watch and the limiter sweep.
    fn spawn(
        bound: plan::Bound,
        env: SessionEnv,
        stop: CancellationToken,
        host_poll: Duration,
    ) -> TurnServer {
        let local = |a: std::io::Result<SocketAddr>| a.unwrap_or(SocketAddr::from(([0; 4], 0)));
        let mut server = TurnServer {
            udp: Vec::new(),
            tcp: Vec::new(),
            tls: Vec::new(),
            public_host: String::new(),
            https_port: None,
            ttl: Duration::ZERO,
            shared: Arc::clone(&env.shared),
            env: env.clone(),
            stop: stop.clone(),
            owns_tasks: false,
        };
        // Each listener moves to the TURN runtime as a std socket and is registered again
        // there, so its reactor (not the caller's) wakes the tasks that read it.
        let rt = runtime::handle();
        for socket in bound.udp {
            server.udp.push(local(socket.local_addr()));
            let (env2, socket) = (env.clone(), socket.into_std());
            let serve = async move {
                match socket.and_then(tokio::net::UdpSocket::from_std) {
                    Ok(socket) => udp::serve(socket, env2).await,
                    Err(err) => tracing::warn!("TURN UDP listener lost: {err}"),
                }
            };
            env.tasks.spawn_on(serve, &rt);
        }
        let tcp = bound.tcp.into_iter().map(|l| (l, None));
        for (listener, acceptor) in tcp.chain(bound.tls.into_iter().map(|(l, a)| (l, Some(a)))) {
            let list = match acceptor {
                None => &mut server.tcp,
                Some(_) => &mut server.tls,
            };
            list.push(local(listener.local_addr()));
            let (env2, listener) = (env.clone(), listener.into_std());
            let serve = async move {
                match listener.and_then(tokio::net::TcpListener::from_std) {
                    Ok(listener) => tcp::serve(listener, acceptor, env2).await,
                    Err(err) => tracing::warn!("TURN TCP listener lost: {err}"),
                }
            };
            env.tasks.spawn_on(serve, &rt);
        }
        env.tasks.spawn(host_watch::run(
            Arc::clone(&env.shared.policy),
            host_poll,
            host_watch::host_addresses,
            stop.clone(),
        ));
        env.tasks.spawn(sweep(Arc::clone(&env.shared), stop));
        server
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

    /// Which peers relays may reach (the cluster layer adds the other nodes' relays).
    pub fn peer_policy(&self) -> &Arc<peer_policy::PeerPolicy> {
        &self.shared.policy
    }

    pub fn realm(&self) -> &str {
        self.shared.creds.realm()
    }

    /// Applies what a config reload may change live (see `live.rs`); the keys that changed.
    pub fn apply_live(&self, config: &TurnConfig) -> Vec<&'static str> {
        live::apply(&self.shared, config)
    }

    /// Fresh `iceServers` (JSON array) for the login `login` (the caller's key for one login,
    /// not a display name), and the credentials' lifetime. The login is live from now until
    /// [`TurnServer::revoke_login`]; its REST username carries an opaque id, the same on every
    /// refresh.
    pub fn ice_servers_for(&self, login: &str) -> (serde_json::Value, Duration) {
        self.ice_servers_in(login, None)
    }

    /// As [`TurnServer::ice_servers_for`], for a login in `room` (a room key, never a display
    /// name): its allocations also count against `turn.max_allocations_per_room`. A refresh
    /// keeps the room of the first grant.
    pub fn ice_servers_in(&self, login: &str, room: Option<&str>) -> (serde_json::Value, Duration) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let id = lock(&self.shared.logins, "TURN logins").grant_in(login, room);
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
        lock(&self.shared.logins, "TURN logins").revoke(login);
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
            allocations: lock(&self.shared.quotas, "TURN quotas").total(),
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
            limiter_entries: lock(&self.shared.limiter, "TURN limiter").tracked(),
            live_logins: lock(&self.shared.logins, "TURN logins").len(),
        }
    }

    /// Stop listening and end every allocation. Inside callbox that is all: the process waits
    /// for the tasks on its one tracker, within its one grace. A standalone server waits for
    /// its own tasks here, for at most the default grace.
    pub async fn close(&self) {
        self.stop.cancel();
        if self.owns_tasks {
            self.env.tasks.close();
            let default = crate::config::ServerConfig::default().shutdown_grace_secs;
            let grace = crate::shutdown::StopBudget::new(default).grace;
            let _ = tokio::time::timeout(grace, self.env.tasks.wait()).await;
        }
    }
}

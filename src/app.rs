//! Wiring: the one place where the three jobs meet.
//!
//! `start` loads certificates, binds every socket, and spawns the web listener (which carries the
//! signaling routes and hands TURN-over-TLS streams to the TURN server). Shutdown is one
//! [`CancellationToken`] that every task watches, and one [`TaskTracker`] that says when they
//! have all finished, as in tokio's mini-redis. What an operator adds around that (systemd,
//! reloads, metrics) is in [`crate::ops`]; this file only plugs it in, and `service` (the
//! signal loop that runs `start` under systemd) drives those parts from above.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Checked, Config};
use crate::ops::certs::CertStore;
use crate::ops::stats::Sources;
use crate::shutdown::StopBudget;
use crate::signaling::live::Live;
use crate::signaling::{self, ConnId, HubConfig, IceGrant, IceServerSource, LocalSwitchboard};
use crate::signaling::{SignalingConfig, SignalingContext};
use crate::turn::{TurnContext, TurnError, TurnServer};
use crate::web;

mod service;
mod urls;
use urls::{allowed_origins, public_url};

/// Why callbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Tls(#[from] web::tls::TlsError),
    #[error("cannot bind server.listen {addr}: {source}")]
    BindHttp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    BindRedirect(#[from] web::redirect::BindError),
    #[error("turn: {0}")]
    Turn(#[from] TurnError),
    #[error(transparent)]
    Cluster(#[from] signaling::cluster::ClusterError),
    #[error("cannot wait for signals: {0}")]
    Signal(std::io::Error),
}

/// A started callbox: its bound addresses and the handle that stops it.
pub struct Running {
    /// Where the page, `/ws` and (with TLS) TURN over TLS are served.
    pub http_addr: SocketAddr,
    /// The URL to open, as printed at start.
    pub url: String,
    pub turn: Option<Arc<TurnServer>>,
    /// Where `/metrics` is served, if `[metrics] listen` is set and could be bound.
    pub metrics_addr: Option<SocketAddr>,
    /// Where `server.http_redirect` (plain HTTP to HTTPS, ACME HTTP-01) is served, if set.
    pub redirect_addr: Option<SocketAddr>,
    /// The certificate every TLS listener presents (with `[tls]`).
    pub certs: Option<Arc<CertStore>>,
    /// The figures behind STATUS= and `/metrics`.
    pub sources: Arc<Sources>,
    /// Presence and routing, for config reloads.
    pub switchboard: Arc<LocalSwitchboard>,
    /// The socket edge's signaling limits, for config reloads.
    pub edge: Arc<Live<SignalingConfig>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    grace: Duration,
}

impl Running {
    /// A token that, when cancelled, stops this instance (what SIGTERM does).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, closes every WebSocket with 1001 and every TURN allocation, and waits
    /// (at most the grace period) for connection tasks to finish.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.stopped().await;
    }

    /// Waits until the shutdown token is cancelled and everything has wound down.
    pub async fn stopped(self) {
        // TURN, signaling, the web listener and ops all watch this one token and run on this
        // one tracker: the grace below is the only wait on the way out (`crate::shutdown`).
        self.shutdown.cancelled().await;
        self.tasks.close();
        if tokio::time::timeout(self.grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within {:?}", self.grace);
        }
    }
}

/// Binds everything and starts serving. Configuration problems are reported before any socket
/// is bound.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let checked = config.checked()?;
    let (certs, tls) = tls_setup(&config, &checked)?;
    let (listener, http_addr) = bind_http(config.server.listen).await?;
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let turn_on_https = tls.is_some() && config.turn.enabled && config.turn.on_https_port;
    let https_port = turn_on_https.then_some(http_addr.port());
    let turn = match config.turn.enabled {
        true => Some(start_turn(&config, &tls, https_port, &shutdown, &tasks).await?),
        false => None,
    };
    let hub_config = HubConfig::new(&config.signaling, &config.rooms);
    let switchboard = Arc::new(LocalSwitchboard::new(hub_config));
    let edge = Arc::new(Live::new(config.signaling.clone()));
    let board = switchboard_for(&config, &switchboard, &turn, &shutdown)?;
    let stop = StopBudget::new(config.server.shutdown_grace_secs);
    let ws = SignalingContext {
        config: Arc::clone(&edge),
        rooms: config.rooms.clone(),
        allowed_origins: allowed_origins(&config, http_addr),
        ice: ice_source(&turn),
        shutdown: shutdown.clone(),
        tasks: tasks.clone(),
    };
    let routes = web::assets::router()
        .merge(crate::ops::metrics::readyz_router(shutdown.clone()))
        .merge(signaling::router_with(ws, board, stop));
    let divert = turn.as_ref().filter(|_| turn_on_https).map(divert_to);
    tasks.spawn(web::server::serve(
        listener,
        routes,
        tls,
        divert,
        web::limits::Settings::new(&config.server),
        shutdown.clone(),
        tasks.clone(),
    ));
    let sources = Arc::new(Sources {
        switchboard: Arc::clone(&switchboard),
        turn: turn.clone(),
        certs: certs.clone(),
    });
    let (metrics_addr, redirect_addr) =
        spawn_ops(&config, &sources, http_addr.port(), &shutdown, &tasks).await?;
    Ok(Running {
        http_addr,
        url: public_url(&config, http_addr),
        turn,
        metrics_addr,
        redirect_addr,
        certs,
        sources,
        switchboard,
        edge,
        shutdown,
        tasks,
        grace: grace(&config),
    })
}

/// The one wait of a shutdown (`crate::shutdown`); a longer setting is capped, and said so.
fn grace(config: &Config) -> Duration {
    let asked = config.server.shutdown_grace_secs;
    let grace = StopBudget::new(asked).grace;
    if grace.as_secs() < asked {
        tracing::warn!(
            "server.shutdown_grace_secs = {asked} is capped at {grace:?}, so a stop fits \
             systemd's TimeoutStopSec=10"
        );
    }
    grace
}

/// With `[tls]`: the certificate store and the one rustls config built on it.
type Tls = (Option<Arc<CertStore>>, Option<Arc<rustls::ServerConfig>>);

fn tls_setup(config: &Config, checked: &Checked) -> Result<Tls, StartError> {
    if !config.tls.enabled {
        return Ok((None, None));
    }
    let certs = certificates(config, checked)?;
    // TLS-ALPN-01: the CA's validator offers only acme-tls/1; the store's resolver answers it.
    let extra_alpn: &[&[u8]] = match config.tls.acme {
        Some(_) => &[crate::ops::acme_challenges::ACME_TLS_ALPN],
        None => &[],
    };
    let tls = web::tls::server_config(Arc::clone(&certs) as _, extra_alpn)?;
    Ok((Some(certs), Some(tls)))
}

/// The switchboard the socket edge talks to: the in-process one, or with `[cluster]` the
/// Redis one around it (which also tells TURN's peer policy the other nodes' relays).
fn switchboard_for(
    config: &Config,
    local: &Arc<LocalSwitchboard>,
    turn: &Option<Arc<TurnServer>>,
    shutdown: &CancellationToken,
) -> Result<Arc<dyn signaling::Switchboard>, StartError> {
    let Some(cluster) = &config.cluster else {
        return Ok(local.clone());
    };
    let mut ctx = signaling::cluster::ClusterContext::new(
        cluster.clone(),
        Arc::clone(local),
        shutdown.clone(),
    );
    if let Some(turn) = turn {
        let policy = Arc::clone(turn.peer_policy());
        let mut relays = config.turn.relay_ips.clone();
        relays.extend(config.turn.external_ip);
        let ports = (config.turn.relay_port_min, config.turn.relay_port_max);
        ctx = ctx.with_relays(
            relays,
            ports,
            Arc::new(move |peers| {
                policy.set_cluster_relays(signaling::cluster::peer_relays(peers))
            }),
        );
    }
    Ok(signaling::cluster::start(ctx)?)
}

/// What ops adds on the same token and tracker: `/metrics`, the certificate watch, the ACME
/// client and the plain-HTTP redirect (which answers its HTTP-01 challenges). Returns the
/// metrics and redirect addresses.
async fn spawn_ops(
    config: &Config,
    sources: &Arc<Sources>,
    https_port: u16,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<(Option<SocketAddr>, Option<SocketAddr>), StartError> {
    let metrics_addr =
        crate::ops::metrics::listen(&config.metrics, sources, shutdown, tasks).await?;
    if let Some(certs) = &sources.certs {
        tasks.spawn(crate::ops::certs::watch(
            Arc::clone(certs),
            shutdown.clone(),
        ));
    }
    if let (Some(certs), Some(acme)) = (&sources.certs, &config.tls.acme) {
        let (acme, certs) = (acme.clone(), Arc::clone(certs));
        tasks.spawn(crate::ops::acme::run(acme, certs, shutdown.clone()));
    }
    let challenges =
        (sources.certs.as_ref()).map(|c| c.challenges() as Arc<dyn web::redirect::Http01>);
    let redirect_addr =
        web::redirect::start(config, https_port, challenges, shutdown, tasks).await?;
    Ok((metrics_addr, redirect_addr))
}

async fn bind_http(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let failed = |source| StartError::BindHttp { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    Ok((listener, bound))
}

/// TURN on the process's one token and tracker, with the HTTPS port for `turns:` URLs when
/// it also serves TURN over TLS there.
async fn start_turn(
    config: &Config,
    tls: &Option<Arc<rustls::ServerConfig>>,
    https_port: Option<u16>,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<Arc<TurnServer>, StartError> {
    let ctx = TurnContext {
        public_host: config.server.public_host.clone(),
        https_port,
        tls: tls.clone(),
        shutdown: shutdown.clone(),
    };
    let turn = TurnServer::start_tracked(&config.turn, ctx, tasks.clone()).await?;
    Ok(Arc::new(turn))
}

/// Where signaling gets the ICE servers it hands to each login.
fn ice_source(turn: &Option<Arc<TurnServer>>) -> Arc<dyn IceServerSource> {
    match turn {
        Some(turn) => Arc::new(TurnIce(Arc::clone(turn))),
        None => Arc::new(NoIce),
    }
}

/// TURN-over-TLS streams the web listener's first-byte split hands over.
fn divert_to(turn: &Arc<TurnServer>) -> web::server::Divert {
    let turn = Arc::clone(turn);
    Arc::new(move |stream, peer, local| turn.serve_stream(stream, peer, local))
}

/// Runs until SIGTERM or SIGINT, then shuts down gracefully; SIGHUP reloads `config_path`
/// (see [`service::run`]).
pub async fn run_until_signal(
    config: Config,
    config_path: Option<std::path::PathBuf>,
) -> Result<(), StartError> {
    service::run(config, config_path).await
}

/// Logs for journald: no colours, no timestamps of our own when journald adds them.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CALLBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,turn=off,webrtc_util=off"));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!under_journald)
        .with_writer(std::io::stderr);
    let _ = if under_journald {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}

/// The certificate store of `[tls]`: certbot's files as validation read them (reloaded live
/// by `ops::certs::watch`), or a self-signed certificate for the public host.
fn certificates(config: &Config, checked: &Checked) -> Result<Arc<CertStore>, web::tls::TlsError> {
    let store = match (&checked.pem, config.tls.self_signed) {
        _ if config.tls.acme.is_some() => {
            crate::ops::acme::initial_store(&config.tls, &config.server.public_host)?
        }
        (_, true) => {
            let (chain, key) = web::tls::self_signed(&config.server.public_host)?;
            CertStore::new(chain, key, None)?
        }
        (Some(pem), false) => CertStore::new(
            pem.chain.clone(),
            pem.key.clone_key(),
            Some((pem.cert_path.clone(), pem.key_path.clone())),
        )?,
        (None, false) => {
            return Err(web::tls::TlsError::SelfSigned(
                "tls.cert and tls.key are required unless tls.self_signed = true".into(),
            ))
        }
    };
    Ok(Arc::new(store))
}

/// TURN credentials as the signaling relay hands them out: one TURN login per signaling login,
/// keyed by its connection id, live until signaling revokes it.
struct TurnIce(Arc<TurnServer>);

impl IceServerSource for TurnIce {
    fn ice_servers_for(&self, login: ConnId) -> IceGrant {
        let (ice_servers, ttl) = self.0.ice_servers_for(&login.0.to_string());
        IceGrant { ice_servers, ttl }
    }

    fn ice_servers_in(&self, login: ConnId, room: &str) -> IceGrant {
        let (ice_servers, ttl) = self.0.ice_servers_in(&login.0.to_string(), Some(room));
        IceGrant { ice_servers, ttl }
    }

    fn revoke(&self, login: ConnId) {
        self.0.revoke_login(&login.0.to_string());
    }
}

/// With TURN disabled, clients get no ICE servers from us (host candidates only).
struct NoIce;

impl IceServerSource for NoIce {
    fn ice_servers_for(&self, _login: ConnId) -> IceGrant {
        IceGrant {
            ice_servers: serde_json::json!([]),
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

//! Wiring: the one place where the three jobs meet.
//!
//! `start` loads certificates, binds every socket, and spawns the web listener (which carries the
//! signaling routes and hands TURN-over-TLS streams to the TURN server). Shutdown is one
//! [`CancellationToken`] that every task watches, and one [`TaskTracker`] that says when they
//! have all finished, as in tokio's mini-redis. What an operator adds around that (systemd,
//! reloads, metrics) is in [`crate::ops`]; this file only plugs it in.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::ops::certs::CertStore;
use crate::ops::stats::Sources;
use crate::signaling::SignalingContext;
use crate::signaling::{self, ConnId, HubConfig, IceGrant, IceServerSource, LocalSwitchboard};
use crate::turn::{TurnContext, TurnError, TurnServer};
use crate::web;

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
    /// The certificate every TLS listener presents (with `[tls]`).
    pub certs: Option<Arc<CertStore>>,
    /// The figures behind STATUS= and `/metrics`.
    pub sources: Arc<Sources>,
    /// Presence and routing, for config reloads.
    pub switchboard: Arc<LocalSwitchboard>,
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
        self.shutdown.cancelled().await;
        if let Some(turn) = &self.turn {
            turn.close().await;
        }
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
    config.validate()?;
    let tls = match config.tls.enabled {
        true => Some(web::tls::server_config(
            &config.tls,
            &config.server.public_host,
        )?),
        false => None,
    };
    let certs = tls.as_ref().map(|t| Arc::clone(&t.certs));
    let tls = tls.map(|t| t.config);
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|source| StartError::BindHttp {
            addr: config.server.listen,
            source,
        })?;
    let http_addr = listener
        .local_addr()
        .map_err(|source| StartError::BindHttp {
            addr: config.server.listen,
            source,
        })?;

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let turn_on_https = tls.is_some() && config.turn.enabled && config.turn.on_https_port;
    let turn = match config.turn.enabled {
        true => Some(Arc::new(
            TurnServer::start(
                &config.turn,
                TurnContext {
                    public_host: config.server.public_host.clone(),
                    https_port: turn_on_https.then_some(http_addr.port()),
                    tls: tls.clone(),
                    shutdown: shutdown.clone(),
                },
            )
            .await?,
        )),
        false => None,
    };

    let url = public_url(&config, http_addr);
    let ice: Arc<dyn IceServerSource> = match &turn {
        Some(turn) => Arc::new(TurnIce(Arc::clone(turn))),
        None => Arc::new(NoIce),
    };
    let switchboard = Arc::new(LocalSwitchboard::new(HubConfig::new(
        &config.signaling,
        &config.rooms,
    )));
    let board: Arc<dyn signaling::Switchboard> = match &config.cluster {
        None => switchboard.clone(),
        Some(cluster) => {
            let mut ctx = signaling::cluster::ClusterContext::new(
                cluster.clone(),
                Arc::clone(&switchboard),
                shutdown.clone(),
            );
            if let Some(turn) = &turn {
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
            signaling::cluster::start(ctx)?
        }
    };
    let signaling_ctx = SignalingContext {
        config: config.signaling.clone(),
        rooms: config.rooms.clone(),
        allowed_origins: allowed_origins(&config, http_addr),
        ice,
        shutdown: shutdown.clone(),
        tasks: tasks.clone(),
    };
    let routes = web::assets::router()
        .merge(crate::ops::metrics::readyz_router(shutdown.clone()))
        .merge(signaling::router_with(signaling_ctx, board));
    let divert: Option<web::server::Divert> = match (&turn, turn_on_https) {
        (Some(turn), true) => {
            let turn = Arc::clone(turn);
            Some(Arc::new(move |stream, peer, local| {
                turn.serve_stream(stream, peer, local)
            }))
        }
        _ => None,
    };
    tasks.spawn(web::server::serve(
        listener,
        routes,
        tls,
        divert,
        web::limits::Settings::new(&config.server, config.signaling.max_connections),
        shutdown.clone(),
        tasks.clone(),
    ));
    let sources = Arc::new(Sources {
        switchboard: Arc::clone(&switchboard),
        turn: turn.clone(),
        certs: certs.clone(),
    });
    let metrics_addr = crate::ops::serve::metrics(&config, &sources, &shutdown, &tasks).await?;
    if let Some(certs) = &certs {
        tasks.spawn(crate::ops::certs::watch(
            Arc::clone(certs),
            shutdown.clone(),
        ));
    }
    Ok(Running {
        http_addr,
        url,
        turn,
        metrics_addr,
        certs,
        sources,
        switchboard,
        shutdown,
        tasks,
        grace: Duration::from_secs(config.server.shutdown_grace_secs),
    })
}

/// Runs until SIGTERM or SIGINT, then shuts down gracefully; SIGHUP reloads `config_path`
/// (see [`crate::ops::serve::run`]).
pub async fn run_until_signal(
    config: Config,
    config_path: Option<std::path::PathBuf>,
) -> Result<(), StartError> {
    crate::ops::serve::run(config, config_path).await
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

fn public_url(config: &Config, http_addr: SocketAddr) -> String {
    let scheme = if config.tls.enabled { "https" } else { "http" };
    format!(
        "{scheme}://{}{}/",
        host_for_url(&config.server.public_host),
        port_suffix(scheme, http_addr.port())
    )
}

/// Origins a browser sends for our own page. On a localhost host the loopback spellings are
/// accepted too, since `localhost`, `127.0.0.1` and `[::1]` all reach the default config.
fn allowed_origins(config: &Config, http_addr: SocketAddr) -> Vec<String> {
    let scheme = if config.tls.enabled { "https" } else { "http" };
    let port = port_suffix(scheme, http_addr.port());
    let host = config.server.public_host.trim();
    let mut hosts = vec![host_for_url(host)];
    if host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "::1" {
        hosts = vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()];
    }
    let mut origins: Vec<String> = hosts
        .into_iter()
        .map(|h| format!("{scheme}://{h}{port}").to_ascii_lowercase())
        .collect();
    origins.extend(
        config
            .server
            .extra_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase()),
    );
    origins
}

fn host_for_url(host: &str) -> String {
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{host}]"),
        Err(_) => host.to_string(),
    }
}

fn port_suffix(scheme: &str, port: u16) -> String {
    match (scheme, port) {
        ("https", 443) | ("http", 80) => String::new(),
        _ => format!(":{port}"),
    }
}

/// TURN credentials as the signaling relay hands them out: one TURN login per signaling login,
/// keyed by its connection id, live until signaling revokes it.
struct TurnIce(Arc<TurnServer>);

impl IceServerSource for TurnIce {
    fn ice_servers_for(&self, login: ConnId) -> IceGrant {
        let (ice_servers, ttl) = self.0.ice_servers_for(&login.0.to_string());
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

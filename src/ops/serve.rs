//! callbox as a service: the signal loop around [`crate::app::start`], with the systemd
//! notifications at the points systemd cares about, SIGHUP reloads, and the metrics listener.
//!
//! READY=1 is sent only after `start` returned, i.e. once the HTTP(S) listener, every TURN
//! listener and the metrics listener are bound; STOPPING=1 as soon as a stop is asked for.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::StartError;
use crate::config::Config;

use super::notify::Notifier;
use super::reload::Reloader;
use super::stats::Sources;

/// Binds `[metrics] listen` and serves `/metrics` there until `shutdown`. A port that cannot be
/// bound is logged and skipped: the figures must never be the reason calls do not start.
pub async fn metrics(
    config: &Config,
    sources: &Arc<Sources>,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<Option<SocketAddr>, StartError> {
    let Some(addr) = config.metrics.listen_addr()? else {
        return Ok(None);
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("metrics.listen {addr}: cannot bind ({err}); metrics are off");
            return Ok(None);
        }
    };
    let bound = listener.local_addr().ok();
    let router = super::metrics::router(Arc::clone(sources));
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(err) = served {
            tracing::warn!("metrics listener stopped: {err}");
        }
    });
    tracing::info!(addr = ?bound, "metrics at /metrics");
    Ok(bound)
}

/// Runs until SIGTERM or SIGINT, then shuts down gracefully. SIGHUP re-reads `config_path`.
pub async fn run(config: Config, config_path: Option<PathBuf>) -> Result<(), StartError> {
    // Handlers first: a SIGTERM that arrives between the banner and their installation would
    // otherwise kill the process with the default action instead of a graceful stop.
    let mut term = signal(SignalKind::terminate()).map_err(StartError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(StartError::Signal)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(StartError::Signal)?;
    let notifier = Arc::new(Notifier::from_env());
    let running = crate::app::start(config).await?;
    tracing::info!("callbox is running: open {}", running.url);
    println!("callbox is running: open {}", running.url);
    let sources = Arc::clone(&running.sources);
    notifier.send(&format!(
        "READY=1\nSTATUS={}\n",
        sources.snapshot().status_line()
    ));
    let token = running.shutdown_token();
    tokio::spawn(super::memory::run(token.clone()));
    let status = tokio::spawn(super::status::run(
        Arc::clone(&notifier),
        sources,
        token.clone(),
    ));
    let reloader = Arc::new(Reloader::new(
        config_path,
        running.certs.clone(),
        Arc::clone(&running.switchboard),
        Arc::clone(&running.edge),
        running.turn.clone(),
    ));
    let signals = token.clone();
    let stopping = Arc::clone(&notifier);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
                _ = hangup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    let reloader = Arc::clone(&reloader);
                    let _ = tokio::task::spawn_blocking(move || reloader.reload_and_log()).await;
                    continue;
                }
                _ = signals.cancelled() => {}
            }
            break;
        }
        stopping.send("STOPPING=1\nSTATUS=shutting down\n");
        signals.cancel();
    });
    running.stopped().await;
    let _ = status.await;
    Ok(())
}

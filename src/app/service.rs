//! callbox as a service: the signal loop around [`super::start`], with the systemd
//! notifications at the points systemd cares about and SIGHUP reloads. It sits in app, above
//! the ops parts it drives, so ops never names app.
//!
//! READY=1 is sent only after `start` returned, i.e. once the HTTP(S) listener, every TURN
//! listener and the metrics listener are bound; STOPPING=1 as soon as a stop is asked for.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};

use super::StartError;
use crate::config::Config;
use crate::ops::notify::Notifier;
use crate::ops::reload::Reloader;

/// Runs until SIGTERM or SIGINT, then shuts down gracefully. SIGHUP re-reads `config_path`.
pub async fn run(config: Config, config_path: Option<PathBuf>) -> Result<(), StartError> {
    // Handlers first: a SIGTERM that arrives between the banner and their installation would
    // otherwise kill the process with the default action instead of a graceful stop.
    let mut term = signal(SignalKind::terminate()).map_err(StartError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(StartError::Signal)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(StartError::Signal)?;
    let notifier = Arc::new(Notifier::from_env());
    let source = config.source().clone();
    let running = super::start(config).await?;
    tracing::info!("callbox is running: open {}", running.url);
    println!("callbox is running: open {}", running.url);
    let sources = Arc::clone(&running.sources);
    notifier.send(&format!(
        "READY=1\nSTATUS={}\n",
        sources.snapshot().status_line()
    ));
    let token = running.shutdown_token();
    tokio::spawn(crate::ops::memory::run(token.clone()));
    let status = tokio::spawn(crate::ops::status::run(
        Arc::clone(&notifier),
        sources,
        token.clone(),
    ));
    let reloader = Arc::new(Reloader::new(
        config_path,
        source,
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

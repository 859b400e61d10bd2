//! The systemd side of a running callbox: WATCHDOG=1 pings and STATUS= lines.
//!
//! The pings come from a task on the tokio runtime that takes the hub's lock on every tick, so
//! systemd restarts callbox when the runtime stops scheduling tasks or the hub stays locked,
//! not only when the process is gone. A thread with a timer would keep pinging through both.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::notify::Notifier;
use super::stats::Sources;

/// STATUS= is sent when it changes, and at least this often.
pub const STATUS_EVERY: Duration = Duration::from_secs(10);
/// How often the figures are looked at without a watchdog.
const TICK: Duration = Duration::from_secs(1);

/// The tick: half the watchdog timeout (as sd_watchdog_enabled(3) advises), at most a second.
pub fn tick_for(watchdog: Option<Duration>) -> Duration {
    watchdog
        .map(|w| (w / 2).clamp(Duration::from_millis(10), TICK))
        .unwrap_or(TICK)
}

/// Pings and reports until `shutdown`.
pub async fn run(notifier: Arc<Notifier>, sources: Arc<Sources>, shutdown: CancellationToken) {
    let watchdog = notifier.watchdog();
    let mut tick = tokio::time::interval(tick_for(watchdog));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<(String, Instant)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let status = sources.snapshot().status_line();
        let due = match &last {
            Some((text, at)) => *text != status || at.elapsed() >= STATUS_EVERY,
            None => true,
        };
        let mut message = String::new();
        if watchdog.is_some() {
            message.push_str("WATCHDOG=1\n");
        }
        if due {
            message.push_str(&format!("STATUS={status}\n"));
            last = Some((status, Instant::now()));
        }
        if !message.is_empty() {
            notifier.send(&message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_half_the_watchdog_and_at_most_a_second() {
        assert_eq!(tick_for(None), TICK);
        assert_eq!(
            tick_for(Some(Duration::from_millis(400))),
            Duration::from_millis(200)
        );
        assert_eq!(tick_for(Some(Duration::from_secs(30))), TICK);
    }
}

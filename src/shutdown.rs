//! One shutdown for the whole process, and how long each part of it may take.
//!
//! Every task is spawned on one [`tokio_util::task::TaskTracker`] and watches one
//! [`tokio_util::sync::CancellationToken`] (both made in `app::start`); on SIGTERM the token is
//! cancelled and the process waits for the tracker for at most `server.shutdown_grace_secs`,
//! once. Nothing else on the stop path waits, so the time from SIGTERM to exit is the grace
//! plus the runtime's own teardown, and the grace is capped (a longer setting is logged) so this fits the
//! systemd unit's `TimeoutStopSec` (checked against systemd/callbox.service by a test here).
//! The layers' own waits inside that grace are derived from it ([`StopBudget`]).

use std::time::Duration;

use crate::config::server::MAX_SHUTDOWN_GRACE_SECS;

/// `TimeoutStopSec` of systemd/callbox.service: after this, systemd kills the process.
pub const UNIT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Left after the grace for what follows the tracker wait: dropping the runtime (blocking
/// tasks such as a reload in progress), flushing logs, the exit itself.
pub const EXIT_MARGIN: Duration = Duration::from_secs(2);
/// The longest an in-flight HTTP request gets to finish (never more than half the grace, so
/// the WebSocket close handshakes started at the same time also fit).
const HTTP_DRAIN_MAX: Duration = Duration::from_secs(2);
/// The longest one step of a WebSocket close may take (sending our Close, then waiting for the
/// client's). A socket closing on shutdown takes both steps, so it needs twice this.
const WS_CLOSE_MAX: Duration = Duration::from_secs(1);

/// The time budget of each layer on shutdown, all derived from one grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopBudget {
    /// How long the process waits for every tracked task to end (`shutdown_grace_secs`).
    pub grace: Duration,
    /// How long an HTTP connection gets to finish its in-flight request.
    pub http_drain: Duration,
    /// How long each of the two steps of a WebSocket close may take: both together stay
    /// within half the grace, like the HTTP drain running at the same time.
    pub ws_close: Duration,
}

impl StopBudget {
    /// The budget for `shutdown_grace_secs`, capped at [`MAX_SHUTDOWN_GRACE_SECS`].
    pub fn new(grace_secs: u64) -> StopBudget {
        let grace = Duration::from_secs(grace_secs.min(MAX_SHUTDOWN_GRACE_SECS));
        StopBudget {
            grace,
            http_drain: HTTP_DRAIN_MAX.min(grace / 2),
            ws_close: WS_CLOSE_MAX.min(grace / 4),
        }
    }

    /// From SIGTERM to exit at the latest.
    pub fn worst_case(&self) -> Duration {
        self.grace + EXIT_MARGIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_allowed_grace_still_fits_the_units_stop_timeout() {
        let unit = include_str!("../systemd/callbox.service");
        let line = unit
            .lines()
            .find_map(|l| l.trim().strip_prefix("TimeoutStopSec="))
            .expect("the unit sets TimeoutStopSec");
        let secs: u64 = line.trim().trim_end_matches('s').parse().expect("seconds");
        assert_eq!(Duration::from_secs(secs), UNIT_STOP_TIMEOUT);
        let longest = StopBudget::new(MAX_SHUTDOWN_GRACE_SECS);
        assert!(longest.worst_case() <= UNIT_STOP_TIMEOUT, "{longest:?}");
        assert_eq!(
            StopBudget::new(u64::MAX),
            longest,
            "a longer setting is capped"
        );
    }

    #[test]
    fn every_layer_budget_fits_inside_the_grace() {
        for secs in 0..=MAX_SHUTDOWN_GRACE_SECS {
            let budget = StopBudget::new(secs);
            assert_eq!(budget.grace, Duration::from_secs(secs));
            assert!(budget.http_drain <= budget.grace / 2, "{budget:?}");
            assert!(budget.ws_close * 2 <= budget.grace / 2, "{budget:?}");
        }
        // The default keeps the HTTP drain and WebSocket close waits it always had.
        assert_eq!(StopBudget::new(4).http_drain, Duration::from_secs(2));
        assert_eq!(StopBudget::new(4).ws_close, Duration::from_secs(1));
    }
}

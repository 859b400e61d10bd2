//! One ping timer for every WebSocket. A per-connection `interval` is a timer entry per idle
//! connection (and a timer-driver lock whenever one is armed or dropped); here one task turns
//! a wheel of [`SLOTS`] slots, one slot per `period / SLOTS`, and each connection, subscribed
//! to one slot, gets a [`Beat`] once per `period`. The connection decides what a beat means
//! (send a ping, give up on a silent client or a send that does not drain).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Slots on the wheel: connections' pings are spread over the period in this many groups.
pub const SLOTS: usize = 16;

pub struct PingWheel {
    period: Duration,
    slots: Vec<watch::Sender<u64>>,
    next: AtomicUsize,
}

impl PingWheel {
    /// A wheel that beats each subscriber once per `period` (at least 1 ms).
    pub fn new(period: Duration) -> PingWheel {
        PingWheel {
            period: period.max(Duration::from_millis(1)),
            slots: (0..SLOTS).map(|_| watch::channel(0).0).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// A new subscriber, on the slots in turn so that beats spread out.
    pub fn subscribe(&self) -> Beat {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % SLOTS;
        Beat(self.slots[slot].subscribe())
    }
}

/// Turns the wheel until `shutdown` or until the wheel is dropped: one slot beats every
/// `period / SLOTS`.
pub async fn run(wheel: Weak<PingWheel>, shutdown: CancellationToken) {
    let Some(step) = wheel.upgrade().map(|w| w.period / SLOTS as u32) else {
        return;
    };
    let mut ticks = tokio::time::interval(step.max(Duration::from_micros(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; a beat right after subscribing would come too early.
    ticks.tick().await;
    for slot in (0..SLOTS).cycle() {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(wheel) = wheel.upgrade() else { return };
        wheel.slots[slot].send_modify(|beats| *beats = beats.wrapping_add(1));
    }
}

/// One connection's place on the wheel.
pub struct Beat(watch::Receiver<u64>);

impl Beat {
    /// The next beat; never, once the wheel is gone.
    pub async fn next(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn every_subscriber_beats_and_subscribers_spread_over_the_slots() {
        let wheel = Arc::new(PingWheel::new(Duration::from_millis(160)));
        let mut beats: Vec<Beat> = (0..SLOTS * 2).map(|_| wheel.subscribe()).collect();
        assert!(wheel.slots.iter().all(|slot| slot.receiver_count() == 2));
        let shutdown = CancellationToken::new();
        let turning = tokio::spawn(run(Arc::downgrade(&wheel), shutdown.clone()));
        for round in 0..2 {
            for beat in &mut beats {
                let got = tokio::time::timeout(Duration::from_secs(10), beat.next()).await;
                assert!(got.is_ok(), "round {round}: every subscriber beats");
            }
        }
        shutdown.cancel();
        assert!(turning.await.is_ok());
    }

    #[tokio::test]
    async fn the_wheel_stops_when_dropped() {
        let wheel = Arc::new(PingWheel::new(Duration::from_millis(16)));
        let turning = tokio::spawn(run(Arc::downgrade(&wheel), CancellationToken::new()));
        drop(wheel);
        let ended = tokio::time::timeout(Duration::from_secs(10), turning).await;
        assert!(ended.is_ok());
    }
}

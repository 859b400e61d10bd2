//! The socket edge's writing half: one task per connection moves queued frames to the
//! WebSocket, in batches under load, and owns the connection's ping (driven by the shared
//! [`super::wheel::PingWheel`], not a timer of its own) and its TURN credential refresh. Split from [`super::connection`] so each half stays readable.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connection::{EdgeShared, End, LastHeard};
use super::hub::{ConnId, Outbound};
use super::protocol::ServerMsg;
use super::queue;

/// Credentials are refreshed when this fraction of their lifetime has passed.
const REFRESH_AT: f64 = 0.8;
/// Floor for the refresh period, so a tiny ttl cannot make a busy loop.
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// Serializes one message; a login success gets fresh ICE credentials for its connection's
/// login here, and the time to refresh them is noted in `refresh` (a frame flushed while
/// At a beat: has the ping sent at `*unanswered` gone without any frame from the client for
/// `pong_timeout`? Otherwise notes that a ping goes out now (if none is waiting) and forgets a
/// ping the client has answered since (any frame counts, as tungstenite answers in order).
fn pong_overdue(
    unanswered: &mut Option<Instant>,
    heard: &LastHeard,
    pong_timeout: Duration,
    now: Instant,
) -> bool {
    if let Some(since) = *unanswered {
        if heard.silent_for() < now.saturating_duration_since(since) {
            *unanswered = None;
        }
    }
    match *unanswered {
        Some(since) => now.saturating_duration_since(since) > pong_timeout,
        None => {
            *unanswered = Some(now);
            false
        }
    }
}

/// closing gets none: the login is already revoked).
pub(super) fn frame_for(
    mut msg: ServerMsg,
    shared: &EdgeShared,
    refresh: Option<(&mut Option<Instant>, ConnId)>,
) -> Message {
    if let ServerMsg::LoginOk { ice, room, .. } = &mut msg {
        if let Some((refresh, conn)) = refresh {
            let grant = shared.ice.ice_servers_in(conn, room);
            *refresh = Some(Instant::now() + refresh_after(grant.ttl));
            *ice = Some(grant);
        }
    }
    Message::Text(msg.into_text().into())
}

pub(super) async fn write_loop(
    sink: &mut SplitSink<WebSocket, Message>,
    rx: &mut queue::Receiver,
    conn: ConnId,
    shared: &EdgeShared,
    heard: &LastHeard,
    overflow: &CancellationToken,
) -> End {
    // Restart-only like the wheel's period: reload keeps the start-up value in `config`.
    let pong_timeout = Duration::from_secs(shared.config.load().pong_timeout_secs.max(1));
    // The shared ping wheel beats once per ping interval: a ping, or the end of a silent client.
    let mut beat = shared.wheel.subscribe();
    let stuck_beats = beats_within(pong_timeout, shared.wheel.period());
    // When to push fresh ICE credentials for this connection's login.
    let mut refresh: Option<Instant> = None;
    // When the oldest ping still unanswered went out: the client has `pong_timeout` from then
    // (measuring silence since the last frame instead would leave a pong only the timeout
    // minus one ping interval, as the last frame may be the pong of the ping before).
    let mut unanswered: Option<Instant> = None;
    loop {
        let refresh_at = refresh;
        let frame = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => return End::Shutdown,
            _ = overflow.cancelled() => return End::CutOff,
            out = rx.recv() => match out {
                None => return End::CutOff,
                Some(Outbound::Close { code, reason }) => return End::Server { code, reason },
                Some(Outbound::Frame(text)) => Message::Text(text),
                Some(Outbound::Msg(msg)) => login_frame(*msg, conn, shared, &mut refresh),
            },
            _ = beat.next() => {
                if pong_overdue(&mut unanswered, heard, pong_timeout, Instant::now()) {
                    tracing::info!(conn = conn.0, "no pong: closing");
                    return End::PongTimeout;
                }
                Message::Ping(Default::default())
            }
            _ = sleep_until_some(refresh_at) => {
                let grant = shared.ice.ice_servers_for(conn);
                refresh = Some(Instant::now() + refresh_after(grant.ttl));
                Message::Text(ServerMsg::IceServers(grant).to_text().into())
            }
        };
        // Under load, what else is queued goes out in the same write (one syscall per batch).
        let (batch, close) = take_batch(frame, rx, |msg| {
            login_frame(msg, conn, shared, &mut refresh)
        });
        let send_all = async {
            for frame in batch {
                sink.feed(frame).await?;
            }
            sink.flush().await
        };
        tokio::pin!(send_all);
        // A client that does not read blocks this send; its mailbox then overflows, or, if
        // nobody writes to it, the send gives up after the pong timeout's worth of beats.
        let mut beats = 0;
        loop {
            tokio::select! {
                sent = &mut send_all => match sent {
                    Ok(()) => break,
                    Err(_) => return End::Broken,
                },
                _ = shared.shutdown.cancelled() => return End::Shutdown,
                _ = overflow.cancelled() => return End::CutOff,
                _ = beat.next() => {
                    beats += 1;
                    if beats >= stuck_beats {
                        return End::CutOff;
                    }
                }
            }
        }
        if let Some(end) = close {
            return end;
        }
    }
}

/// Beats of `period` that cover `timeout` (at least one).
fn beats_within(timeout: Duration, period: Duration) -> u32 {
    let period = period.as_millis().max(1);
    timeout
        .as_millis()
        .div_ceil(period)
        .clamp(1, u32::MAX as u128) as u32
}

/// Most frames written in one go.
const BATCH: usize = 32;

/// `first` and the frames queued behind it; `to_frame` serialises a typed message.
fn take_batch(
    first: Message,
    rx: &mut queue::Receiver,
    mut to_frame: impl FnMut(ServerMsg) -> Message,
) -> (Vec<Message>, Option<End>) {
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match rx.try_recv() {
            Some(Outbound::Frame(text)) => batch.push(Message::Text(text)),
            Some(Outbound::Msg(msg)) => batch.push(to_frame(*msg)),
            Some(Outbound::Close { code, reason }) => {
                return (batch, Some(End::Server { code, reason }))
            }
            None => break,
        }
    }
    (batch, None)
}

/// [`frame_for`], noting a login in the log.
fn login_frame(
    msg: ServerMsg,
    conn: ConnId,
    shared: &EdgeShared,
    refresh: &mut Option<Instant>,
) -> Message {
    if matches!(msg, ServerMsg::LoginOk { .. }) {
        tracing::info!(conn = conn.0, "logged in");
    }
    frame_for(msg, shared, Some((refresh, conn)))
}

fn refresh_after(ttl: Duration) -> Duration {
    ttl.mul_f64(REFRESH_AT).max(MIN_REFRESH)
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_refreshed_before_they_expire() {
        assert_eq!(
            refresh_after(Duration::from_secs(100)),
            Duration::from_secs(80)
        );
        assert_eq!(refresh_after(Duration::ZERO), MIN_REFRESH);
    }

    #[test]
    fn a_stuck_send_waits_the_pong_timeout_rounded_up_to_beats() {
        let secs = Duration::from_secs;
        assert_eq!(beats_within(secs(60), secs(20)), 3);
        assert_eq!(beats_within(secs(2), secs(1)), 2);
        assert_eq!(beats_within(secs(5), secs(20)), 1);
    }
}

//! The socket edge's writing half: one task per connection moves queued messages to the
//! client through callbox's own [`FrameWriter`] (a batch per write under load, no buffer
//! held while idle), answers the client's pings, owns the connection's ping (driven by the
//! shared [`super::wheel::PingWheel`], not a timer of its own) and its TURN credential
//! refresh, and closes the connection with the right code. Split from [`super::connection`]
//! so each half stays readable.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tungstenite::protocol::CloseFrame;

use super::connection::{EdgeShared, End, FromReader, LastHeard, Reader, Writer};
use super::hub::{ConnId, Outbound};
use super::protocol::ServerMsg;
use super::queue;
use super::wire::FrameWriter;

/// Credentials are refreshed when this fraction of their lifetime has passed.
const REFRESH_AT: f64 = 0.8;
/// Floor for the refresh period, so a tiny ttl cannot make a busy loop.
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// Most messages written in one go.
const BATCH: usize = 32;

/// At a beat: has the ping sent at `*unanswered` gone without any frame from the client for
/// `pong_timeout`? Otherwise notes that a ping goes out now (if none is waiting) and forgets a
/// ping the client has answered since (any frame counts, as clients answer in order).
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

/// When to push fresh ICE credentials for this connection's login: one timer, armed at the
/// login and moved at each refresh (not a new timer per loop turn).
#[derive(Default)]
pub(super) struct Refresh(Option<Pin<Box<Sleep>>>);

impl Refresh {
    fn after(&mut self, ttl: Duration) {
        let at = Instant::now() + refresh_after(ttl);
        match &mut self.0 {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.0 = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    async fn due(&mut self) {
        match &mut self.0 {
            Some(sleep) => sleep.as_mut().await,
            None => std::future::pending().await,
        }
    }
}

/// Encodes one queued item as a frame; a close is handed back as the end it asks for. A
/// login success gets fresh ICE credentials for its connection's login here, and its refresh
/// is armed (a message encoded while closing gets none: the login is already revoked).
pub(super) fn encode<W: AsyncWrite + Unpin>(
    out: Outbound,
    writer: &mut FrameWriter<W>,
    shared: &EdgeShared,
    refresh: Option<(&mut Refresh, ConnId)>,
) -> Option<End> {
    let mut msg = match out {
        Outbound::Close { code, reason } => return Some(End::Server { code, reason }),
        Outbound::Frame(text) => {
            writer.text(text.as_str());
            return None;
        }
        Outbound::Text(text) => {
            writer.text(&text);
            return None;
        }
        Outbound::Msg(msg) => *msg,
    };
    if let ServerMsg::LoginOk { ice, room, .. } = &mut msg {
        if let Some((refresh, conn)) = refresh {
            tracing::info!(conn = conn.0, "logged in");
            let grant = shared.ice.ice_servers_in(conn, room);
            refresh.after(grant.ttl);
            *ice = Some(grant);
        }
    }
    if let Err(err) = writer.text_with(|buf| msg.write_text(buf)) {
        tracing::error!("a server message did not serialise: {err}");
    }
    None
}

pub(super) async fn write_loop(
    writer: &mut Writer,
    rx: &mut queue::Receiver,
    conn: ConnId,
    shared: &EdgeShared,
    from_reader: &FromReader,
    overflow: &CancellationToken,
) -> End {
    // Restart-only like the wheel's period: reload keeps the start-up value in `config`.
    let pong_timeout = Duration::from_secs(shared.config.load().pong_timeout_secs.max(1));
    // The shared ping wheel beats once per ping interval: a ping, or the end of a silent client.
    let mut beat = shared.wheel.subscribe();
    let stuck_beats = beats_within(pong_timeout, shared.wheel.period());
    let mut refresh = Refresh::default();
    // When the oldest ping still unanswered went out: the client has `pong_timeout` from then
    // (measuring silence since the last frame instead would leave a pong only the timeout
    // minus one ping interval, as the last frame may be the pong of the ping before).
    let mut unanswered: Option<Instant> = None;
    // Made once, not per loop turn: each registers a waiter with its token when first polled.
    let shutdown = shared.shutdown.cancelled();
    let cut_off = overflow.cancelled();
    tokio::pin!(shutdown, cut_off);
    loop {
        let mut close = tokio::select! {
            biased;
            _ = &mut shutdown => return End::Shutdown,
            _ = &mut cut_off => return End::CutOff,
            payload = from_reader.replies.pong() => {
                writer.pong(&payload);
                None
            }
            out = rx.recv() => match out {
                None => return End::CutOff,
                Some(out) => encode(out, writer, shared, Some((&mut refresh, conn))),
            },
            _ = beat.next() => {
                if pong_overdue(&mut unanswered, &from_reader.heard, pong_timeout, Instant::now()) {
                    tracing::info!(conn = conn.0, "no pong: closing");
                    return End::PongTimeout;
                }
                writer.ping();
                None
            }
            _ = refresh.due() => {
                let grant = shared.ice.ice_servers_for(conn);
                refresh.after(grant.ttl);
                writer.text(&ServerMsg::IceServers(grant).to_text());
                None
            }
        };
        // Under load, what else is queued goes out in the same write (one syscall per batch).
        let mut taken = 1;
        while close.is_none() && taken < BATCH {
            let Some(out) = rx.try_recv() else { break };
            close = encode(out, writer, shared, Some((&mut refresh, conn)));
            taken += 1;
        }
        // A client that does not read blocks this write; its mailbox then overflows, or, if
        // nobody writes to it, the write gives up after the pong timeout's worth of beats.
        let mut beats = 0;
        loop {
            tokio::select! {
                sent = writer.flush() => match sent {
                    Ok(()) => break,
                    Err(_) => return End::Broken,
                },
                _ = &mut shutdown => return End::Shutdown,
                _ = &mut cut_off => return End::CutOff,
                _ = beat.next() => {
                    beats += 1;
                    if beats >= stuck_beats {
                        return End::CutOff;
                    }
                }
            }
        }
        if taken < BATCH {
            // The queue is drained: the connection may now stay idle, without a buffer.
            writer.release();
        }
        if let Some(end) = close {
            return end;
        }
    }
}

/// Ends the connection as `end` says: a close frame with its code after what was already
/// queued, the echo of the client's close, or nothing for a broken socket. Each step waits at
/// most the shared close wait.
pub(super) async fn closing(
    end: End,
    client_close: Option<Option<CloseFrame>>,
    (mut reader, mut writer): (Reader, Writer),
    mut rx: queue::Receiver,
    shared: &EdgeShared,
) {
    let (code, reason) = match end {
        End::Shutdown => (1001, "going away"),
        End::TooBig => (1009, "message too big"),
        End::Flood => (1008, "rate limit exceeded"),
        End::PongTimeout => (1001, "ping timeout"),
        End::Server { code, reason } => (code, reason),
        End::ClientClosed => {
            if let Some(frame) = client_close {
                // The echo carries the client's code and reason (tungstenite has already
                // replaced a code a client may not send with 1002).
                writer.close(
                    frame
                        .as_ref()
                        .map(|f| (u16::from(f.code), f.reason.as_str())),
                );
                let _ = within(shared.close_wait, writer.flush()).await;
            }
            return;
        }
        End::Broken | End::CutOff => return,
    };
    if matches!(end, End::TooBig | End::Flood | End::Shutdown) {
        // What was already queued (e.g. replies to the frames before the flood) goes first.
        while let Some(out) = rx.try_recv() {
            if encode(out, &mut writer, shared, None).is_some() {
                break;
            }
        }
    }
    writer.close(Some((code, reason)));
    if let Some(Ok(())) = within(shared.close_wait, writer.flush()).await {
        // Wait (briefly) for the client's Close so the close frame is not lost to a reset.
        let drain = async { while let Some(Ok(_)) = reader.next().await {} };
        let _ = within(shared.close_wait, drain).await;
    }
}

async fn within<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    tokio::time::timeout(limit, future).await.ok()
}

/// Beats of `period` that cover `timeout` (at least one).
fn beats_within(timeout: Duration, period: Duration) -> u32 {
    let period = period.as_millis().max(1);
    timeout
        .as_millis()
        .div_ceil(period)
        .clamp(1, u32::MAX as u128) as u32
}

fn refresh_after(ttl: Duration) -> Duration {
    ttl.mul_f64(REFRESH_AT).max(MIN_REFRESH)
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

//! The socket edge's writing half: one task per connection moves queued frames to the
//! WebSocket, in batches under load, and owns the connection's ping and its TURN credential
//! refresh. Split from [`super::connection`] so each half stays readable.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connection::{End, LastHeard, Shared};
use super::hub::{ConnId, Outbound};
use super::protocol::ServerMsg;

/// Credentials are refreshed when this fraction of their lifetime has passed.
const REFRESH_AT: f64 = 0.8;
/// Floor for the refresh period, so a tiny ttl cannot make a busy loop.
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// Serializes one message; a login success gets fresh ICE credentials for its connection's
/// login here, and the time to refresh them is noted in `refresh` (a frame flushed while
/// closing gets none: the login is already revoked).
pub(super) fn frame_for(
    mut msg: ServerMsg,
    shared: &Shared,
    refresh: Option<(&mut Option<Instant>, ConnId)>,
) -> Message {
    if let ServerMsg::LoginOk { ice, .. } = &mut msg {
        if let Some((refresh, conn)) = refresh {
            let grant = shared.ice.ice_servers_for(conn);
            *refresh = Some(Instant::now() + refresh_after(grant.ttl));
            *ice = Some(grant);
        }
    }
    Message::Text(msg.into_text().into())
}

pub(super) async fn write_loop(
    sink: &mut SplitSink<WebSocket, Message>,
    rx: &mut mpsc::Receiver<Outbound>,
    conn: ConnId,
    shared: &Shared,
    heard: &LastHeard,
    overflow: &CancellationToken,
) -> End {
    let config = &shared.config;
    let ping_every = Duration::from_secs(config.ping_interval_secs.max(1));
    let pong_timeout = Duration::from_secs(config.pong_timeout_secs.max(1));
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    // When to push fresh ICE credentials for this connection's login.
    let mut refresh: Option<Instant> = None;
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
            _ = ping.tick() => {
                if heard.silent_for() > pong_timeout {
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
        // Under load, what else is queued goes out in the same write (one syscall and one
        // send timer per batch, not per frame).
        let (batch, close) = take_batch(frame, rx, |msg| {
            login_frame(msg, conn, shared, &mut refresh)
        });
        let send_all = async {
            for frame in batch {
                sink.feed(frame).await?;
            }
            sink.flush().await
        };
        // A client that does not read blocks this send; its mailbox then overflows, or, if
        // nobody writes to it, the send times out like a missing pong.
        tokio::select! {
            sent = send_all => if sent.is_err() { return End::Broken },
            _ = shared.shutdown.cancelled() => return End::Shutdown,
            _ = overflow.cancelled() => return End::CutOff,
            _ = tokio::time::sleep(pong_timeout) => return End::CutOff,
        }
        if let Some(end) = close {
            return end;
        }
    }
}

/// Most frames written in one go.
const BATCH: usize = 32;

/// `first` and the frames queued behind it; `to_frame` serialises a typed message.
fn take_batch(
    first: Message,
    rx: &mut mpsc::Receiver<Outbound>,
    mut to_frame: impl FnMut(ServerMsg) -> Message,
) -> (Vec<Message>, Option<End>) {
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(Outbound::Frame(text)) => batch.push(Message::Text(text)),
            Ok(Outbound::Msg(msg)) => batch.push(to_frame(*msg)),
            Ok(Outbound::Close { code, reason }) => {
                return (batch, Some(End::Server { code, reason }))
            }
            Err(_) => break,
        }
    }
    (batch, None)
}

/// [`frame_for`], noting a login in the log.
fn login_frame(
    msg: ServerMsg,
    conn: ConnId,
    shared: &Shared,
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
}

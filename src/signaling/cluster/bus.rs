//! The Redis side of the cluster: three tasks. `publish` writes queued [`Op`]s in order (one
//! connection, so other nodes see one node's events in the order they happened here);
//! `subscribe` hears the events channel and this node's channel, resyncing presence from the
//! claims after every (re)subscription; `heartbeat` keeps this node's liveness key and names
//! alive, notices dead nodes, and hands the others' relay addresses to the TURN peer policy.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::claims::{all_claims, Renewal};
use super::state::Op;
use super::wire::{node_channel, node_key, Event, NodeInfo, EVENTS, NODES};
use super::Inner;

/// At most this many queued writes go out in one round trip.
const BATCH: usize = 256;
/// A node whose liveness key is missing on this many heartbeats in a row is gone.
const MISSES_TO_DEAD: u32 = 3;
/// After resyncing, ghosts without a claim are dropped once live nodes had time to renew.
const RECONCILE_EVERY: Duration = Duration::from_secs(30);

/// Writes queued ops until shutdown (then what is queued within a second, for logouts).
pub(crate) async fn publish(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Op>,
    shutdown: CancellationToken,
) {
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let first = tokio::select! {
            op = rx.recv() => op,
            _ = shutdown.cancelled(), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                continue;
            }
            _ = sleep_until(deadline) => return,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(err) = write_batch(&inner, batch).await {
            inner.health.down("publish", &err);
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Consecutive publishes go in one pipeline; claim writes in between keep their place.
async fn write_batch(inner: &Inner, batch: Vec<Op>) -> Result<(), super::claims::ClaimError> {
    let mut redis = inner.redis.clone();
    let mut pipe = redis::pipe();
    let mut pending = 0;
    for op in batch {
        match op {
            Op::Publish { channel, event } => {
                pipe.publish(channel, serde_json::to_string(&event)?)
                    .ignore();
                pending += 1;
                continue;
            }
            Op::Confirm { record, expect } => {
                flush(&mut redis, &mut pipe, &mut pending).await?;
                inner.claims.renew(&mut redis, &[(record, expect)]).await?;
            }
            Op::Release { room, key, token } => {
                flush(&mut redis, &mut pipe, &mut pending).await?;
                let node = &inner.node;
                inner
                    .claims
                    .release(&mut redis, node, &room, &key, &token)
                    .await?;
            }
        }
    }
    flush(&mut redis, &mut pipe, &mut pending).await
}

async fn flush(
    redis: &mut redis::aio::ConnectionManager,
    pipe: &mut redis::Pipeline,
    pending: &mut usize,
) -> Result<(), super::claims::ClaimError> {
    if *pending > 0 {
        let () = pipe.query_async(redis).await?;
        pipe.clear();
        *pending = 0;
    }
    Ok(())
}

/// Keeps a subscription up; each time it (re)starts, presence is read back from the claims.
/// Returning Ok means: resubscribe now (or shut down, if cancelled).
pub(crate) async fn subscribe(inner: Weak<Inner>, shutdown: CancellationToken) {
    for attempt in 0u64.. {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let result = subscribe_once(&strong, &shutdown).await;
        if shutdown.is_cancelled() {
            return;
        }
        match result {
            // Straight back: Redis is up again and presence must be read anew.
            Ok(()) => continue,
            Err(err) => strong.health.down("subscription", &err),
        }
        drop(strong);
        // Back off a little, longer after repeated failures, never more than 2 s.
        let wait = Duration::from_millis(200 * (attempt % 10 + 1)).min(Duration::from_secs(2));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn subscribe_once(
    inner: &Inner,
    shutdown: &CancellationToken,
) -> Result<(), super::claims::ClaimError> {
    let connect = tokio::time::timeout(Duration::from_secs(2), inner.client.get_async_pubsub());
    let mut pubsub = match connect.await {
        Ok(pubsub) => pubsub?,
        Err(_) => return Err(timed_out().into()),
    };
    pubsub.subscribe(EVENTS).await?;
    pubsub.subscribe(node_channel(&inner.node)).await?;
    let records = all_claims(&mut inner.redis.clone()).await?;
    tracing::debug!(
        names = records.len(),
        "cluster: subscribed; presence read from the claims"
    );
    inner.with(|cluster, hub| cluster.resync(hub, records));
    inner.health.up();
    let mut messages = pubsub.into_on_message();
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = inner.resync.notified() => {
                tracing::info!("cluster: Redis answers again; resubscribing to read presence anew");
                return Ok(());
            }
            msg = messages.next() => msg,
        };
        let Some(msg) = msg else {
            return Err(closed().into());
        };
        let Ok(payload) = msg.get_payload::<String>() else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Event>(&payload) else {
            tracing::debug!("cluster: an event this node does not understand (newer node?)");
            continue;
        };
        let now = crate::signaling::switchboard::now_ms();
        tracing::trace!(?event, "cluster: event");
        inner.with(|cluster, hub| (cluster.remote(hub, event, now), Vec::new()));
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "timed out"))
}

fn closed() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "subscription closed"))
}

/// Liveness, renewal, dead nodes and peer relays, once a second.
pub(crate) async fn heartbeat(inner: Weak<Inner>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beat = Beat::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        if let Err(err) = beat.run(&inner).await {
            inner.health.down("heartbeat", &err);
            beat.up_since = None;
            beat.failed = true;
        }
    }
}

#[derive(Default)]
struct Beat {
    /// Since when Redis answered every heartbeat (dead-node checks wait for a few).
    up_since: Option<Instant>,
    /// The last heartbeat failed: the subscription may have missed events (or Redis restarted
    /// empty), so the next good one asks for a resync.
    failed: bool,
    misses: HashMap<String, u32>,
    last_renew: Option<Instant>,
    last_reconcile: Option<Instant>,
}

impl Beat {
    async fn run(&mut self, inner: &Inner) -> Result<(), super::claims::ClaimError> {
        let mut redis = inner.redis.clone();
        let ttl_ms = inner.ttl.as_millis() as u64;
        let info = serde_json::to_string(&inner.info)?;
        let (members,): (Vec<String>,) = redis::pipe()
            .set_options(node_key(&inner.node), info, px(ttl_ms))
            .ignore()
            .sadd(NODES, &inner.node)
            .ignore()
            .smembers(NODES)
            .query_async(&mut redis)
            .await?;
        if self.failed {
            // Redis answers again: resubscribe and read presence back.
            inner.resync.notify_one();
            self.failed = false;
        }
        if self.up_since.is_none() {
            self.up_since = Some(Instant::now());
            self.last_reconcile = Some(Instant::now());
        }
        self.check_nodes(inner, &mut redis, members).await?;
        let renew_every = inner.ttl / 3;
        if self.last_renew.is_none_or(|at| at.elapsed() >= renew_every) {
            self.last_renew = Some(Instant::now());
            renew(inner, &mut redis).await?;
        }
        if self
            .last_reconcile
            .is_some_and(|at| at.elapsed() >= RECONCILE_EVERY.min(inner.ttl * 2))
        {
            self.last_reconcile = Some(Instant::now());
            let records = all_claims(&mut redis).await?;
            inner.with(|cluster, hub| (cluster.reconcile(hub, &records), Vec::new()));
        }
        Ok(())
    }

    /// Reads every known node's liveness key: the live ones' relays go to the peer policy, one
    /// missing a few beats in a row is gone (its users leave every hub).
    async fn check_nodes(
        &mut self,
        inner: &Inner,
        redis: &mut redis::aio::ConnectionManager,
        members: Vec<String>,
    ) -> Result<(), super::claims::ClaimError> {
        let mut nodes: std::collections::BTreeSet<String> = members.into_iter().collect();
        nodes.extend(crate::lock::lock(&inner.cluster, "cluster state").remote_nodes());
        nodes.remove(&inner.node);
        let nodes: Vec<String> = nodes.into_iter().collect();
        let mut live = Vec::new();
        if !nodes.is_empty() {
            let keys: Vec<String> = nodes.iter().map(|n| node_key(n)).collect();
            let values: Vec<Option<String>> = redis.mget(&keys).await?;
            let settled = self
                .up_since
                .is_some_and(|at| at.elapsed() >= Duration::from_secs(3));
            for (node, value) in nodes.iter().zip(values) {
                let info = value.and_then(|v| serde_json::from_str::<NodeInfo>(&v).ok());
                let Some(info) = info else {
                    let misses = self.misses.entry(node.clone()).or_insert(0);
                    *misses += 1;
                    if *misses >= MISSES_TO_DEAD && settled {
                        tracing::info!(%node, "cluster: node stopped renewing; its users are gone");
                        self.misses.remove(node);
                        inner.with(|cluster, hub| (cluster.node_gone(hub, node), Vec::new()));
                        let _: i64 = redis.srem(NODES, node).await?;
                    }
                    continue;
                };
                self.misses.remove(node);
                live.push(info);
            }
        }
        if let Some(hook) = &inner.on_peers {
            hook(&live);
        }
        Ok(())
    }
}

fn px(ttl_ms: u64) -> redis::SetOptions {
    redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl_ms))
}

/// Renews this node's names; names Redis had lost are announced again.
async fn renew(
    inner: &Inner,
    redis: &mut redis::aio::ConnectionManager,
) -> Result<(), super::claims::ClaimError> {
    let records = crate::lock::lock(&inner.cluster, "cluster state").local_claims();
    let pairs: Vec<_> = records
        .into_iter()
        .map(|r| {
            let t = r.token.clone();
            (r, t)
        })
        .collect();
    let outcomes = inner.claims.renew(redis, &pairs).await?;
    for ((record, _), outcome) in pairs.into_iter().zip(outcomes) {
        match outcome {
            Renewal::Renewed => {}
            Renewal::Recreated => {
                let joined = Event::Joined {
                    node: record.node,
                    room: record.room,
                    key: record.key,
                    name: record.name,
                };
                let _ = inner.ops.try_send(Op::Publish {
                    channel: EVENTS.into(),
                    event: joined,
                });
            }
            Renewal::Lost => {
                tracing::warn!(room = %record.room, "cluster: a name held here was claimed on another node");
            }
        }
    }
    Ok(())
}

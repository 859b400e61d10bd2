//! Several callbox nodes as one service, through one Redis (`[cluster]`). A [`RedisSwitchboard`]
//! is the [`Switchboard`] the socket edge talks to: local state stays in this node's
//! [`LocalSwitchboard`] (whose hub also shows other nodes' users as ghosts, see [`state`]);
//! names are claimed in Redis ([`claims`]); what other nodes must hear goes out and comes in
//! over pub/sub ([`bus`]). Redis being away degrades, never stops, the node: see docs/cluster.md.

pub mod bus;
pub mod claims;
pub mod state;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use self::claims::{ClaimOutcome, Claims};
use self::state::{Cluster, Granted, Op};
use self::wire::{ClaimRecord, NodeInfo};
use super::hub::{ConnId, Delivery, Hub, Outbound};
use super::names;
use super::protocol::{Dialect, LoginFailure, LoginRequest, Routed};
use super::switchboard::{LocalSwitchboard, Mailbox, Switchboard};
use crate::config::cluster::ClusterConfig;

/// Called with the other live nodes each heartbeat (the TURN peer policy learns their relays).
pub type PeersHook = Arc<dyn Fn(&[NodeInfo]) + Send + Sync>;

/// What the cluster layer needs from the rest of the process.
pub struct ClusterContext {
    pub config: ClusterConfig,
    pub local: Arc<LocalSwitchboard>,
    /// This node's TURN relay addresses and port range, published for the other nodes.
    pub relays: Vec<std::net::IpAddr>,
    pub relay_ports: (u16, u16),
    pub on_peers: Option<PeersHook>,
    pub shutdown: CancellationToken,
}

impl ClusterContext {
    /// A node without TURN relays to announce.
    pub fn new(
        config: ClusterConfig,
        local: Arc<LocalSwitchboard>,
        shutdown: CancellationToken,
    ) -> ClusterContext {
        ClusterContext {
            config,
            local,
            relays: Vec::new(),
            relay_ports: (0, 0),
            on_peers: None,
            shutdown,
        }
    }

    /// Announces this node's relays and hands the other nodes' to `on_peers`.
    pub fn with_relays(
        mut self,
        relays: Vec<std::net::IpAddr>,
        ports: (u16, u16),
        on_peers: PeersHook,
    ) -> ClusterContext {
        self.relays = relays;
        self.relay_ports = ports;
        self.on_peers = Some(on_peers);
        self
    }
}

/// The other nodes' relay addresses, each with its own port range, for the TURN peer policy.
pub fn peer_relays(peers: &[NodeInfo]) -> Vec<(std::net::IpAddr, std::ops::RangeInclusive<u16>)> {
    peers
        .iter()
        .flat_map(|p| p.relays.iter().map(move |ip| (*ip, p.ports.0..=p.ports.1)))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Queued Redis writes; beyond this many (Redis slow or gone) new ones are dropped.
const OPS_QUEUE: usize = 16_384;
/// How long a login waits for Redis before it is refused as "cluster-unavailable".
const CLAIM_TIMEOUT: Duration = Duration::from_secs(3);
/// MDN clients get a numbered variant of a taken name; this many are tried.
const MAX_VARIANTS: u32 = 20;

/// Whether Redis answers; transitions are logged once each.
pub(crate) struct Health {
    up: AtomicBool,
    node: String,
}

impl Health {
    pub(crate) fn down(&self, what: &str, err: &dyn std::fmt::Display) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                node = %self.node,
                "cluster degraded: Redis unreachable ({what}: {err}); new logins are refused, \
                 users on other nodes are out of reach, users on this node keep chatting and calling"
            );
        }
    }

    /// Marks Redis reachable; true if it was not.
    pub(crate) fn up(&self) -> bool {
        let was_down = !self.up.swap(true, Ordering::Relaxed);
        if was_down {
            tracing::info!(node = %self.node, "cluster: Redis reachable; presence in sync");
        }
        was_down
    }
}

pub(crate) struct Inner {
    node: String,
    ttl: Duration,
    cluster: Mutex<Cluster>,
    local: Arc<LocalSwitchboard>,
    redis: ConnectionManager,
    client: redis::Client,
    claims: Claims,
    ops: mpsc::Sender<Op>,
    health: Health,
    /// Wakes the subscriber to resubscribe and resync (Redis came back).
    resync: Notify,
    info: NodeInfo,
    on_peers: Option<PeersHook>,
}

impl Inner {
    /// Runs a cluster step on the hub under both locks (cluster first, always), makes its
    /// deliveries and queues its Redis writes in the order the steps happened.
    pub(crate) fn with(&self, f: impl FnOnce(&mut Cluster, &mut Hub) -> (Vec<Delivery>, Vec<Op>)) {
        let mut cluster = crate::lock::lock(&self.cluster, "cluster state");
        let ops = self.local.apply(|hub| f(&mut cluster, hub));
        for op in ops {
            if self.ops.try_send(op).is_err() {
                self.health.down("write queue", &"full");
            }
        }
    }
}

/// Presence and routing shared with the other nodes through Redis.
pub struct RedisSwitchboard {
    inner: Arc<Inner>,
}

/// Connects (lazily: Redis may be down at start) and spawns the bus tasks.
pub fn start(ctx: ClusterContext) -> Result<Arc<RedisSwitchboard>, ClusterError> {
    let node = ctx.config.node_id();
    let client = redis::Client::open(ctx.config.redis.trim())?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    let redis = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
    let ttl = Duration::from_secs(ctx.config.claim_ttl_secs);
    let (ops, ops_rx) = mpsc::channel(OPS_QUEUE);
    let inner = Arc::new(Inner {
        cluster: Mutex::new(Cluster::new(node.clone())),
        local: ctx.local,
        redis,
        client,
        claims: Claims::new(ttl.as_millis() as u64),
        ops,
        health: Health {
            up: AtomicBool::new(false),
            node: node.clone(),
        },
        resync: Notify::new(),
        info: NodeInfo {
            node: node.clone(),
            relays: ctx.relays,
            ports: ctx.relay_ports,
        },
        on_peers: ctx.on_peers,
        node,
        ttl,
    });
    tracing::info!(node = %inner.node, "cluster: presence and routing through Redis");
    tokio::spawn(bus::publish(
        Arc::clone(&inner),
        ops_rx,
        ctx.shutdown.clone(),
    ));
    tokio::spawn(bus::subscribe(Arc::downgrade(&inner), ctx.shutdown.clone()));
    tokio::spawn(bus::heartbeat(Arc::downgrade(&inner), ctx.shutdown));
    Ok(Arc::new(RedisSwitchboard { inner }))
}

impl RedisSwitchboard {
    /// Claims the login's name in Redis (or, for an MDN client, the first free numbered
    /// variant). Ok(None): taken everywhere tried.
    async fn claim(
        &self,
        room: &str,
        name: &str,
        req: &LoginRequest,
        max_chars: usize,
    ) -> Result<Option<Granted>, claims::ClaimError> {
        let inner = &self.inner;
        let variants = match req.dialect {
            Dialect::Mdn => MAX_VARIANTS,
            Dialect::Tutorial => 1,
        };
        let placeholder = format!(
            "{}{:032x}",
            state::PLACEHOLDER_PREFIX,
            rand::random::<u128>()
        );
        for n in 1..=variants {
            let candidate = match n {
                1 => name.to_string(),
                n => names::variant(name, n, max_chars),
            };
            let record = ClaimRecord {
                node: inner.node.clone(),
                room: room.to_string(),
                key: names::key(&candidate),
                name: candidate.clone(),
                token: placeholder.clone(),
            };
            let token = (n == 1).then_some(req.token.as_deref()).flatten();
            let mut redis = inner.redis.clone();
            let outcome = inner.claims.claim(&mut redis, &record, token).await?;
            match outcome {
                ClaimOutcome::Free | ClaimOutcome::Reclaimed => {
                    return Ok(Some(Granted {
                        name: candidate,
                        placeholder,
                        variant: n > 1,
                        reclaimed: outcome == ClaimOutcome::Reclaimed,
                    }))
                }
                ClaimOutcome::Taken => continue,
            }
        }
        Ok(None)
    }

    fn refuse(&self, conn: ConnId, reason: LoginFailure) -> Result<(), LoginFailure> {
        self.inner
            .with(|_, hub| (vec![state::refusal(hub, conn, reason)], Vec::new()));
        Err(reason)
    }
}

#[async_trait::async_trait]
impl Switchboard for RedisSwitchboard {
    async fn connect(&self, room: &str, mailbox: Mailbox) -> ConnId {
        let conn = self.inner.local.connect_mailbox(room, mailbox);
        self.inner.with(|cluster, _| {
            cluster.connected(conn, room);
            (Vec::new(), Vec::new())
        });
        conn
    }

    async fn login(&self, conn: ConnId, req: LoginRequest) -> Result<(), LoginFailure> {
        let mut plan = None;
        self.inner.with(|cluster, hub| {
            plan = cluster.claim_for(hub, conn, &req).map(|slot| {
                let max = hub.config().name_max_chars;
                let name = names::valid_name(&req.name, max).unwrap_or_default();
                (slot.0, name, max)
            });
            (Vec::new(), Vec::new())
        });
        let Some((room, name, max)) = plan else {
            // A local rule refuses it; the hub says which.
            return self.inner.local.login(conn, req).await;
        };
        let claimed =
            tokio::time::timeout(CLAIM_TIMEOUT, self.claim(&room, &name, &req, max)).await;
        let granted = match claimed {
            Ok(Ok(Some(granted))) => granted,
            Ok(Ok(None)) => return self.refuse(conn, LoginFailure::NameTaken),
            Ok(Err(err)) => {
                self.inner.health.down("name claim", &err);
                return self.refuse(conn, LoginFailure::ClusterUnavailable);
            }
            Err(_) => {
                self.inner.health.down("name claim", &"timed out");
                return self.refuse(conn, LoginFailure::ClusterUnavailable);
            }
        };
        let mut result = Err(LoginFailure::AlreadyLoggedIn);
        self.inner.with(|cluster, hub| {
            let (out, outcome, ops) = cluster.login(hub, conn, req, granted);
            result = outcome;
            (out, ops)
        });
        result
    }

    async fn route(&self, conn: ConnId, msg: Routed) {
        let now = super::switchboard::now_ms();
        self.inner
            .with(|cluster, hub| cluster.route(hub, conn, msg, now));
    }

    async fn logout(&self, conn: ConnId) {
        self.inner.local.drop_mailbox(conn);
        self.inner.with(|cluster, hub| cluster.logout(hub, conn));
    }

    async fn user_list(&self, room: &str) -> Vec<String> {
        self.inner.local.user_list(room).await
    }

    async fn deliver(&self, to: ConnId, out: Outbound) {
        self.inner.local.deliver(to, out).await;
    }

    async fn tick(&self, now_ms: u64) {
        self.inner.local.tick(now_ms).await;
    }
}

//! The one narrow interface between socket tasks and presence/routing. A socket task hands
//! parsed messages to a [`Switchboard`] and receives frames through its [`Mailbox`]; it never
//! touches rooms or names itself. Today the [`LocalSwitchboard`] keeps the [`Hub`] in memory;
//! a multi-node deployment can put the same interface over shared storage (e.g. Redis pub/sub)
//! without changing the socket code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::hub::{ConnId, Delivery, Hub, HubConfig, Outbound};
use super::protocol::{LoginFailure, LoginRequest, Routed};

/// Where one connection's outbound frames go. Bounded: a client that does not read fills it
/// and is cut off (its `overflow` token is cancelled) instead of growing memory.
#[derive(Clone)]
pub struct Mailbox {
    pub tx: super::queue::Sender,
    pub overflow: CancellationToken,
}

/// Presence and routing, as the socket edge sees them. Async so that an implementation over
/// shared storage can wait on the network; the in-memory one never waits.
#[async_trait::async_trait]
pub trait Switchboard: Send + Sync + 'static {
    /// Registers a new connection in `room`; it is sent its `id` message.
    async fn connect(&self, room: &str, mailbox: Mailbox) -> ConnId;
    /// Logs in; the reply is delivered to the connection, the outcome returned (the socket
    /// edge counts wrong access codes per client address).
    async fn login(&self, conn: ConnId, req: LoginRequest) -> Result<(), LoginFailure>;
    /// Chat and targeted messages.
    async fn route(&self, conn: ConnId, msg: Routed);
    /// The connection is gone: frees its name, tells its call partner and its room.
    async fn logout(&self, conn: ConnId);
    async fn user_list(&self, room: &str) -> Vec<String>;
    /// Queues a frame for one connection (e.g. an error about its own message).
    async fn deliver(&self, to: ConnId, out: Outbound);
    /// Sends the presence batches due at `now_ms`; one task calls this for all rooms.
    async fn tick(&self, now_ms: u64);
}

/// Drives [`Switchboard::tick`] until shutdown or until the switchboard is dropped.
pub async fn run_presence_ticks(
    board: std::sync::Weak<dyn Switchboard>,
    shutdown: CancellationToken,
) {
    let period = std::time::Duration::from_millis(super::presence::PRESENCE_INTERVAL_MS / 4);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(board) = board.upgrade() else { return };
        board.tick(now_ms()).await;
    }
}

/// Presence and routing for one process.
pub struct LocalSwitchboard {
    next_id: AtomicU64,
    state: Mutex<State>,
}

struct State {
    hub: Hub,
    mailboxes: HashMap<ConnId, Mailbox>,
}

impl LocalSwitchboard {
    pub fn new(config: HubConfig) -> LocalSwitchboard {
        LocalSwitchboard {
            next_id: AtomicU64::new(1),
            state: Mutex::new(State {
                hub: Hub::new(config),
                mailboxes: HashMap::new(),
            }),
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        crate::lock::lock(&self.state, "signaling hub")
    }

    /// Presence gauges. Takes the lock every message takes, so a caller also learns that the
    /// hub is not stuck (the systemd watchdog relies on that).
    pub fn stats(&self) -> super::hub::HubStats {
        let state = self.lock_state();
        state.hub.stats()
    }

    /// Applies new access codes and chat limit to the next logins and messages.
    pub fn set_config(&self, config: HubConfig) {
        self.with_state(|hub| {
            hub.set_config(config);
            Vec::new()
        });
    }

    /// Runs `op` on the hub and makes the deliveries it returns under one lock; deliveries to
    /// ids without a mailbox (another node's users, seen through the cluster layer) are dropped.
    pub fn apply<R>(&self, op: impl FnOnce(&mut Hub) -> (Vec<Delivery>, R)) -> R {
        let mut state = self.lock_state();
        let (out, result) = op(&mut state.hub);
        state.deliver_all(out);
        result
    }

    /// Registers a mailbox and its connection in the hub (the cluster layer allocates the id).
    pub fn connect_mailbox(&self, room: &str, mailbox: Mailbox) -> ConnId {
        let conn = ConnId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut state = self.lock_state();
        state.mailboxes.insert(conn, mailbox);
        let deliveries = state.hub.connect(conn, room);
        state.deliver_all(deliveries);
        conn
    }

    /// Forgets a mailbox; the caller disconnects the connection in the hub.
    pub fn drop_mailbox(&self, conn: ConnId) {
        let mut state = self.lock_state();
        state.mailboxes.remove(&conn);
    }

    /// The hub operation and its deliveries happen under one lock, so every recipient sees
    /// events in the same order.
    fn with_state(&self, op: impl FnOnce(&mut Hub) -> Vec<Delivery>) {
        let mut state = self.lock_state();
        let deliveries = op(&mut state.hub);
        state.deliver_all(deliveries);
    }
}

impl State {
    /// Delivers without waiting. A connection whose mailbox is full (or whose task is gone) is
    /// cut off and disconnected, which may produce more deliveries; each round removes one
    /// mailbox, so this ends.
    fn deliver_all(&mut self, mut work: Vec<Delivery>) {
        while !work.is_empty() {
            let mut cut_off = Vec::new();
            for Delivery { to, out } in work.drain(..) {
                let Some(mailbox) = self.mailboxes.get(&to) else {
                    continue;
                };
                if mailbox.tx.try_send(out).is_err() {
                    if let Some(mailbox) = self.mailboxes.remove(&to) {
                        tracing::info!(conn = to.0, "outbound queue full: disconnecting");
                        mailbox.overflow.cancel();
                        cut_off.push(to);
                    }
                }
            }
            for conn in cut_off {
                work.extend(self.hub.disconnect_at(conn, Instant::now()));
            }
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl Switchboard for LocalSwitchboard {
    async fn connect(&self, room: &str, mailbox: Mailbox) -> ConnId {
        self.connect_mailbox(room, mailbox)
    }

    async fn login(&self, conn: ConnId, req: LoginRequest) -> Result<(), LoginFailure> {
        let mut result = Err(LoginFailure::AlreadyLoggedIn);
        self.with_state(|hub| {
            let (out, outcome) = hub.login(conn, req);
            result = outcome;
            out
        });
        result
    }

    async fn route(&self, conn: ConnId, msg: Routed) {
        self.with_state(|hub| hub.route_at(conn, msg, now_ms(), Instant::now()));
    }

    async fn logout(&self, conn: ConnId) {
        let mut state = self.lock_state();
        state.mailboxes.remove(&conn);
        let deliveries = state.hub.disconnect_at(conn, Instant::now());
        state.deliver_all(deliveries);
    }

    async fn user_list(&self, room: &str) -> Vec<String> {
        let state = self.lock_state();
        state.hub.user_list(room)
    }

    async fn deliver(&self, to: ConnId, out: Outbound) {
        self.with_state(|_| vec![Delivery { to, out }]);
    }

    async fn tick(&self, now_ms: u64) {
        self.with_state(|hub| hub.tick(now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signaling::protocol::Dialect;

    fn mailbox(size: usize) -> (Mailbox, crate::signaling::queue::Receiver) {
        let (tx, rx) = crate::signaling::queue::channel(size);
        let overflow = CancellationToken::new();
        (Mailbox { tx, overflow }, rx)
    }

    fn login(name: &str) -> LoginRequest {
        LoginRequest {
            dialect: Dialect::Tutorial,
            name: name.into(),
            access_code: None,
            token: None,
            presence_deltas: false,
        }
    }

    #[tokio::test]
    async fn a_full_mailbox_cuts_off_only_that_connection() {
        let board = LocalSwitchboard::new(HubConfig {
            chat_max_chars: 2000,
            ..HubConfig::default()
        });
        let (slow_box, _slow_rx) = mailbox(3);
        let overflow = slow_box.overflow.clone();
        let slow = board.connect("lobby", slow_box).await;
        let (fast_box, mut fast_rx) = mailbox(100);
        let fast = board.connect("lobby", fast_box).await;
        assert!(board.login(slow, login("slow")).await.is_ok());
        assert!(board.login(fast, login("fast")).await.is_ok());
        assert!(!overflow.is_cancelled(), "id, login, userlist fit in 3");
        let now = now_ms();
        board.tick(now).await;
        assert!(overflow.is_cancelled(), "the presence batch overflows 3");
        board
            .tick(now + crate::signaling::presence::PRESENCE_INTERVAL_MS)
            .await;
        assert_eq!(board.user_list("lobby").await, vec!["fast".to_string()]);
        let mut last = None;
        while let Some(out) = fast_rx.try_recv() {
            last = Some(out);
        }
        let Some(Outbound::Frame(users)) = last else {
            panic!("fast should last see a user list, got {last:?}");
        };
        assert_eq!(users.as_str(), r#"{"type":"userlist","users":["fast"]}"#);
    }
}

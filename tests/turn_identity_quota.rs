//! Quota counts follow the crate's allocation table: Refresh(0) immediately followed by a new
//! Allocate on the same TCP connection, raced many times, never leaves an allocation that no
//! quota counts, and the per-login cap still holds afterwards.

mod turn_support;

use std::sync::Arc;
use std::time::Duration;

use stun::message::{Setter, METHOD_ALLOCATE, METHOD_REFRESH};
use tokio::net::TcpStream;
use turn::proto::lifetime::Lifetime;
use turn::proto::reqtrans::RequestedTransport;
use turn_support::*;
use webrtc_util::Conn;

const CONNECTIONS: usize = 4;
const ROUNDS: usize = 40;

/// A hand-driven client over one TCP connection: `signer` only builds signed messages.
struct TcpRaw {
    conn: Arc<StreamConn<TcpStream>>,
    signer: RawClient,
}

fn allocate_attrs() -> Vec<Box<dyn Setter>> {
    vec![Box::new(RequestedTransport {
        protocol: turn::proto::PROTO_UDP,
    })]
}

fn lifetime(secs: u64) -> Vec<Box<dyn Setter>> {
    vec![Box::new(Lifetime(Duration::from_secs(secs)))]
}

impl TcpRaw {
    async fn new(server: &callbox::turn::TurnServer, user: &str, pass: &str) -> TcpRaw {
        let conn = tcp_conn(server.tcp_addrs()[0]).await;
        let signer = RawClient::new(server.udp_addrs()[0], user, pass).await;
        let mut c = TcpRaw { conn, signer };
        // The unsigned Allocate earns the nonce and realm.
        let (raw, txn) = c.signer.build(METHOD_ALLOCATE, allocate_attrs(), false);
        let challenge = c.exchange(&[(raw, txn)]).await.remove(0);
        assert_eq!(challenge.0, 401);
        c.signer.nonce = challenge.1.expect("nonce");
        c.signer.realm = challenge.2.expect("realm");
        c
    }

    /// Sends every request in one go, then reads their answers in order: (code, nonce, realm).
    async fn exchange(
        &self,
        requests: &[(Vec<u8>, [u8; 12])],
    ) -> Vec<(u16, Option<String>, Option<String>)> {
        let mut bytes = Vec::new();
        for (raw, _) in requests {
            bytes.extend_from_slice(raw);
        }
        self.conn.send(&bytes).await.expect("send");
        let mut answers = Vec::new();
        let mut buf = vec![0u8; 2048];
        for (_, txn) in requests {
            let read = tokio::time::timeout(STEP, self.conn.recv_from(&mut buf)).await;
            let (n, _) = read.expect("answer in time").expect("read");
            let m = callbox::turn::wire::parse(&buf[..n]).expect("STUN answer");
            assert_eq!(&m.transaction_id.0, txn, "answers come in order");
            let code = callbox::turn::wire::error_code(&m).unwrap_or(0);
            let text = |t| callbox::turn::wire::text_attr(&m, t);
            answers.push((
                code,
                text(stun::attributes::ATTR_NONCE),
                text(stun::attributes::ATTR_REALM),
            ));
        }
        answers
    }

    async fn request(&self, method: stun::message::Method, attrs: Vec<Box<dyn Setter>>) -> u16 {
        let request = self.signer.build(method, attrs, true);
        self.exchange(&[request]).await[0].0
    }
}

/// Sends Refresh(0) at once followed by Allocate, `ROUNDS` times, then makes sure it holds an
/// allocation (437 or 486 while closed ones are not yet gone: wait and try again).
async fn race(c: &TcpRaw) {
    assert_eq!(c.request(METHOD_ALLOCATE, allocate_attrs()).await, 0);
    let mut holds = true;
    for _ in 0..ROUNDS {
        let zero = c.signer.build(METHOD_REFRESH, lifetime(0), true);
        let again = c.signer.build(METHOD_ALLOCATE, allocate_attrs(), true);
        let answers = c.exchange(&[zero, again]).await;
        assert_eq!(answers[0].0, 0, "Refresh(0) succeeds");
        // 437 while the old allocation is still closing, 486 when others' closing ones fill
        // the login's cap for a moment.
        assert!([0, 437, 486].contains(&answers[1].0), "{answers:?}");
        holds = answers[1].0 == 0;
    }
    for _ in 0..50 {
        if holds {
            return;
        }
        holds = c.request(METHOD_ALLOCATE, allocate_attrs()).await == 0;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not hold an allocation after the race");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_zero_raced_with_allocate_leaves_no_uncounted_allocation() {
    let mut cfg = config();
    cfg.max_allocations_per_user = CONNECTIONS;
    let server = start(cfg).await;
    let (user, pass) = rest_credentials(&server, "alice");
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(TcpRaw::new(&server, &user, &pass).await);
    }
    futures_util::future::join_all(clients.iter().map(race)).await;

    // Each connection holds exactly one allocation in the crate (a refresh finds it)...
    for c in &clients {
        assert_eq!(c.request(METHOD_REFRESH, lifetime(600)).await, 0);
    }
    // ...and the quotas count exactly those, once the closed ones' notifications are in.
    assert!(
        eventually(|| server.stats().allocations == CONNECTIONS).await,
        "counted {} for {CONNECTIONS} live allocations",
        server.stats().allocations
    );
    // The per-login cap holds: one more allocation for the same login is refused.
    let extra = TcpRaw::new(&server, &user, &pass).await;
    assert_eq!(extra.request(METHOD_ALLOCATE, allocate_attrs()).await, 486);

    for c in &clients {
        c.conn.shutdown().await;
    }
    extra.conn.shutdown().await;
    assert!(
        eventually(|| server.stats().allocations == 0).await,
        "every slot is given back when the connections close"
    );
    server.close().await;
}

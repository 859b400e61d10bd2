//! TURN credentials: the login reply carries `iceServers` and `ttl` from the ICE source, and
//! the server pushes fresh ones (`ice-servers`) before the old ones expire. Served from the
//! signaling router alone, with a short-lived fake credential source.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callbox::signaling::{
    self, ConnId, IceGrant, IceServerSource, SignalingConfig, SignalingContext,
};
use common::{connect, WAIT};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Mints numbered credentials valid for three seconds (refreshed at 2.4 s).
struct Counting(AtomicU32);

impl IceServerSource for Counting {
    fn ice_servers_for(&self, _login: ConnId) -> IceGrant {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        IceGrant {
            ice_servers: json!([{"urls": ["turn:127.0.0.1:3478"], "username": format!("ann-{n}"), "credential": n.to_string()}]),
            ttl: Duration::from_secs(3),
        }
    }
}

#[tokio::test]
async fn credentials_are_pushed_again_before_they_expire() {
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let router = signaling::router(SignalingContext {
        config: Arc::new(signaling::live::Live::new(SignalingConfig::default())),
        rooms: Vec::new(),
        allowed_origins: Vec::new(),
        ice: Arc::new(Counting(AtomicU32::new(0))),
        shutdown: shutdown.clone(),
        tasks: tasks.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    });

    let mut client = connect(addr, "/ws").await;
    let reply = client.login("ann").await;
    assert_eq!(reply["ttl"], 3);
    assert_eq!(reply["iceServers"][0]["username"], "ann-1");
    let started = std::time::Instant::now();
    let push = client.recv_type("ice-servers").await;
    assert_eq!(push["iceServers"][0]["username"], "ann-2");
    assert_eq!(push["ttl"], 3);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "pushed before expiry ({waited:?})"
    );
    let push = client.recv_type("ice-servers").await;
    assert_eq!(push["iceServers"][0]["username"], "ann-3", "and again");

    shutdown.cancel();
    assert_eq!(common::code(&client.closed().await), Some(1001));
    tasks.close();
    tokio::time::timeout(WAIT, tasks.wait())
        .await
        .expect("tasks end");
    let _ = tokio::time::timeout(WAIT, server)
        .await
        .expect("server ends");
}

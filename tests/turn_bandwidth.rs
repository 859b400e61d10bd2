//! `turn.bandwidth_per_allocation_kbps`: one allocation cannot push more than its share through
//! the relay. Asserted as volume (what gets through a burst), not as timing.

mod turn_support;

use std::time::Duration;

use turn_support::*;
use webrtc_util::Conn;

const DATAGRAMS: usize = 200;
const SIZE: usize = 1000;

/// Bytes Bob receives from a burst Alice sends through callbox's relay as fast as she can.
async fn burst_through_relay(kbps: u64) -> usize {
    let mut cfg = config();
    cfg.bandwidth_per_allocation_kbps = kbps;
    let server = start(cfg).await;
    let (_clients, (ra, rb)) = alice_and_bob_allocated(&server).await;
    let (a_relay, b_relay) = (ra.local_addr().unwrap(), rb.local_addr().unwrap());
    let _ = rb.send_to(b"open", a_relay).await;
    relay_once(&ra, &rb, b_relay, b"hello")
        .await
        .expect("path works");

    // Bob reads while Alice sends, and Alice keeps at most WINDOW datagrams unread ahead of
    // him (waiting at most 10 ms for him each time): the server relays on its own thread, and
    // a burst that outran Bob's reads would overflow his socket's receive buffer (about 92
    // such datagrams at the default 208 KiB) and measure that instead of the relay. When the
    // limit drops datagrams, Bob falls behind and each send waits its 10 ms: still a burst,
    // 200 kB in about 2 s against a budget of 8000 B/s.
    const WINDOW: usize = 40;
    let payload = vec![7u8; SIZE];
    let read = std::cell::Cell::new(0usize);
    let send = async {
        for sent in 0..DATAGRAMS {
            let behind = tokio::time::timeout(Duration::from_millis(10), async {
                while sent >= read.get() + WINDOW {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
            let _ = behind.await;
            let _ = ra.send_to(&payload, b_relay).await;
        }
    };
    let receive = async {
        let mut received = 0;
        let mut buf = vec![0u8; 1500];
        // Until 500 ms of silence, at most DATAGRAMS reads.
        for _ in 0..DATAGRAMS {
            match tokio::time::timeout(Duration::from_millis(500), rb.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) if n == SIZE => received += n,
                Ok(Ok(_)) => {}
                _ => break,
            }
            read.set(read.get() + 1);
        }
        received
    };
    let ((), received) = tokio::join!(send, receive);
    server.close().await;
    received
}

#[tokio::test]
async fn a_burst_beyond_the_allocation_bandwidth_is_cut_while_unlimited_passes() {
    let unlimited = tokio::time::timeout(Duration::from_secs(20), burst_through_relay(0))
        .await
        .expect("in time");
    // 64 kbit/s is 8000 B/s with a 16 KiB bucket: a 200 kB burst over a few seconds stays far
    // below 64 kB.
    let limited = tokio::time::timeout(Duration::from_secs(20), burst_through_relay(64))
        .await
        .expect("in time");
    println!(
        "unlimited: {unlimited} B, limited to 64 kbit/s: {limited} B of {} B",
        DATAGRAMS * SIZE
    );
    assert!(
        unlimited >= DATAGRAMS * SIZE / 2,
        "control: unlimited relay passed only {unlimited} B"
    );
    assert!(limited > 0, "the limited relay passed nothing");
    assert!(limited <= 64_000, "limit not applied: {limited} B passed");
}

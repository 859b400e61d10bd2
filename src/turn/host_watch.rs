//! Keeps the peer policy's list of this host's addresses current.
//!
//! A relay must not reach services bound to an address of this host that is not a relay
//! address (a second public IP, a LAN or VPN interface). Interfaces come and go while the
//! server runs (a VPN comes up, DHCP hands out a new address), so the list is re-read on a
//! short poll rather than once at start. Polling needs no netlink code and costs one
//! `getifaddrs` call per period.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::peer_policy::PeerPolicy;

/// Every address on this host's interfaces; empty (and a warning) if they cannot be listed.
pub fn host_addresses() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces.into_iter().map(|i| i.ip()).collect(),
        Err(err) => {
            tracing::warn!("cannot list this host's addresses to refuse them as TURN peers: {err}");
            Vec::new()
        }
    }
}

/// Re-reads the host's addresses with `list` every `every` and hands changes to `policy`,
/// until `stop` is cancelled.
pub async fn run(
    policy: Arc<PeerPolicy>,
    every: Duration,
    list: impl Fn() -> Vec<IpAddr>,
    stop: CancellationToken,
) {
    let mut known = sorted(list());
    policy.set_host_addresses(known.iter().copied());
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = sorted(list());
        if now != known {
            tracing::info!(addresses = ?now, "host addresses changed; TURN peer policy updated");
            policy.set_host_addresses(now.iter().copied());
            known = now;
        }
    }
}

fn sorted(mut addrs: Vec<IpAddr>) -> Vec<IpAddr> {
    addrs.sort();
    addrs.dedup();
    addrs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    #[tokio::test]
    async fn an_address_added_later_is_refused_after_the_next_poll() {
        let policy = Arc::new(PeerPolicy::new(vec![], vec![], 49152..=65535));
        let addrs = Arc::new(Mutex::new(vec!["8.8.4.4".parse::<IpAddr>().unwrap()]));
        let stop = CancellationToken::new();
        let source = Arc::clone(&addrs);
        let task = tokio::spawn(run(
            Arc::clone(&policy),
            Duration::from_millis(20),
            move || source.lock().unwrap().clone(),
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let peer = |s: &str| SocketAddr::new(s.parse().unwrap(), 53);
        assert!(policy.check(peer("8.8.4.4")).is_err());
        assert!(policy.check(peer("9.9.9.9")).is_ok());
        *addrs.lock().unwrap() = vec!["9.9.9.9".parse().unwrap()];
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(policy.check(peer("9.9.9.9")).is_err());
        assert!(policy.check(peer("8.8.4.4")).is_ok());
        stop.cancel();
        task.await.unwrap();
    }
}

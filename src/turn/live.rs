//! What a config reload (SIGHUP) changes in a running TURN server, without touching a
//! listener or an allocation: the REST secrets (credentials minted from now on use the new
//! first secret; allocations keep the key they were made with, so calls go on), the peer
//! allow-list (each relay and guard loads it per decision) and the allocation quotas. The
//! rest of `[turn]` (listeners, relay addresses and port range, realm, static users,
//! max_clients, bandwidth, credential lifetime) needs a restart; `ops/reload.rs` names it.

use super::guard::ServerState;
use crate::config::TurnConfig;

/// The `[turn]` keys [`apply`] changes live.
pub const LIVE_KEYS: &[&str] = &[
    "turn.secrets",
    "turn.allow_peers",
    "turn.max_allocations_per_user",
    "turn.max_allocations_per_ip",
    "turn.max_allocations_per_room",
    "turn.max_allocations",
];

/// Puts `config`'s live settings in force; the keys whose value changed.
pub fn apply(shared: &ServerState, config: &TurnConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if shared.creds.secrets.replace(&config.secrets) {
        changed.push("turn.secrets");
    }
    let allowed: Vec<ipnet::IpNet> = config
        .allow_peers
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect();
    if shared.policy.set_allow_list(allowed.clone()) {
        changed.push("turn.allow_peers");
        for net in &allowed {
            tracing::warn!(
                "turn.allow_peers: relays may reach {net} despite the built-in deny list \
                 (anyone with TURN credentials can reach hosts there)"
            );
        }
    }
    let quotas_changed = {
        let mut quotas = crate::lock::lock(&shared.quotas, "TURN quotas");
        let caps = quotas.set_limits(
            config.max_allocations_per_user,
            config.max_allocations_per_ip,
            config.max_allocations,
        );
        quotas.set_room_limit(config.allocations_per_room()) || caps
    };
    if quotas_changed {
        changed.push("turn quotas");
    }
    changed
}

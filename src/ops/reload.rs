//! SIGHUP: read config.toml again and apply what can change under running calls.
//!
//! Applied at once: the certificate files (re-read even if unchanged on disk), access codes
//! (`signaling.access_code`, `[[rooms]]`), `signaling.chat_max_chars` and `name_max_chars`,
//! which the hub uses for the next login or message; people already logged in stay. The socket
//! edge's limits (frame size, message rate and burst, outbound queue, connections per address)
//! hold for connections opened after the reload: an open connection keeps the limits it started
//! with. `ping_interval_secs` and `pong_timeout_secs` need a restart (one ping wheel with a
//! fixed period serves every connection). And in TURN (`turn/live.rs`): the
//! REST secrets (new credentials use the new first secret, allocations already made go on),
//! `turn.allow_peers` (the next packet or request is checked against the new list) and the
//! allocation quotas. Everything else is logged by key as needing a restart, listeners (and
//! the relay's addresses and port range) named apart, since a restart moves ports. A file that
//! does not parse or validate changes nothing, and the log says why.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::signaling::live::Live;
use crate::signaling::{HubConfig, LocalSwitchboard, SignalingConfig};
use crate::turn::live::LIVE_KEYS as TURN_LIVE;
use crate::turn::TurnServer;

use super::certs::CertStore;

/// Keys applied live by [`Reloader::reload`] (and [`crate::turn::live::LIVE_KEYS`] when TURN
/// runs).
const LIVE: &[&str] = &[
    "rooms",
    "signaling.access_code",
    "signaling.chat_max_chars",
    "signaling.name_max_chars",
    "signaling.max_frame_bytes",
    "signaling.messages_per_second",
    "signaling.message_burst",
    "signaling.outbound_queue",
    "signaling.max_connections_per_ip",
];
/// Keys that open or close sockets.
const LISTENERS: &[&str] = &[
    "turn.relay_ips",
    "turn.external_ip",
    "turn.relay_port_min",
    "turn.relay_port_max",
    "server.listen",
    "server.http_redirect",
    "turn.listen_udp",
    "turn.listen_tcp",
    "turn.listen_tls",
    "turn.on_https_port",
    "turn.enabled",
    "tls.enabled",
    "metrics.listen",
];

/// What a reload did, for the log and for tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub applied: Vec<String>,
    pub listeners: Vec<String>,
    pub restart: Vec<String>,
}

/// Holds the text the running settings came from.
pub struct Reloader {
    path: Option<PathBuf>,
    running: Mutex<toml::Table>,
    certs: Option<Arc<CertStore>>,
    switchboard: Arc<LocalSwitchboard>,
    edge: Arc<Live<SignalingConfig>>,
    turn: Option<Arc<TurnServer>>,
}

impl Reloader {
    /// `path` is the `--config` file (none: only certificates reload); `running` is what the
    /// running settings were parsed from ([`crate::config::Config::source`]).
    pub fn new(
        path: Option<PathBuf>,
        running: toml::Table,
        certs: Option<Arc<CertStore>>,
        switchboard: Arc<LocalSwitchboard>,
        edge: Arc<Live<SignalingConfig>>,
        turn: Option<Arc<TurnServer>>,
    ) -> Reloader {
        Reloader {
            path,
            running: Mutex::new(running),
            certs,
            switchboard,
            edge,
            turn,
        }
    }

    /// What SIGHUP does. Blocking file reads: call it off the async workers.
    pub fn reload(&self) -> Result<Outcome, String> {
        if let Some(certs) = &self.certs {
            certs.reload_and_log(true);
        }
        let Some(path) = &self.path else {
            return Ok(Outcome::default());
        };
        let config = Config::load(path).map_err(|err| err.to_string())?;
        let table = std::fs::read_to_string(path)
            .map_err(|err| err.to_string())?
            .parse::<toml::Table>()
            .map_err(|err| err.to_string())?;
        let mut running = crate::lock::lock(&self.running, "running config");
        let mut outcome = Outcome::default();
        let turn_live = |k: &str| self.turn.is_some() && TURN_LIVE.contains(&k);
        for key in changed_keys(&running, &table) {
            match key.as_str() {
                k if LIVE.contains(&k) || turn_live(k) => outcome.applied.push(key),
                k if LISTENERS.contains(&k) => outcome.listeners.push(key),
                _ => outcome.restart.push(key),
            }
        }
        self.switchboard
            .set_config(HubConfig::new(&config.signaling, &config.rooms));
        self.edge
            .store(edge_config(&self.edge.load(), &config.signaling));
        if let Some(turn) = &self.turn {
            turn.apply_live(&config.turn);
        }
        // The live keys now run with the file's values; the others keep their old values, so
        // they are reported again at the next SIGHUP until a restart.
        for key in &outcome.applied {
            adopt(&mut running, key, lookup(&table, key));
        }
        Ok(outcome)
    }

    /// Reloads and writes one log line per kind of outcome.
    pub fn reload_and_log(&self) {
        match self.reload() {
            Err(err) => tracing::error!("SIGHUP: keeping the running settings: {err}"),
            Ok(o) => {
                if o.applied.is_empty() && o.listeners.is_empty() && o.restart.is_empty() {
                    tracing::info!("SIGHUP: config re-read, no setting changed");
                }
                if !o.applied.is_empty() {
                    tracing::info!("SIGHUP: applied {}", o.applied.join(", "));
                }
                if !o.listeners.is_empty() {
                    tracing::warn!(
                        "SIGHUP: listeners changed, restart to apply: {}",
                        o.listeners.join(", ")
                    );
                }
                if !o.restart.is_empty() {
                    tracing::warn!(
                        "SIGHUP: changed, restart to apply: {}",
                        o.restart.join(", ")
                    );
                }
            }
        }
    }
}

/// The file's signaling settings with the restart-only ones (ping and pong timing; the total
/// connection cap, which the web listener holds) kept as they run.
fn edge_config(running: &SignalingConfig, file: &SignalingConfig) -> SignalingConfig {
    SignalingConfig {
        ping_interval_secs: running.ping_interval_secs,
        pong_timeout_secs: running.pong_timeout_secs,
        max_connections: running.max_connections,
        ..file.clone()
    }
}

/// Dotted keys (`section.key`; arrays and `[[rooms]]` as one key) whose values differ.
pub fn changed_keys(old: &toml::Table, new: &toml::Table) -> Vec<String> {
    let (old, new) = (flatten(old), flatten(new));
    let mut keys: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn flatten(table: &toml::Table) -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    for (section, value) in table {
        match value {
            toml::Value::Table(inner) => {
                for (key, value) in inner {
                    out.insert(format!("{section}.{key}"), value.clone());
                }
            }
            other => {
                out.insert(section.clone(), other.clone());
            }
        }
    }
    out
}

fn lookup(table: &toml::Table, dotted: &str) -> Option<toml::Value> {
    match dotted.split_once('.') {
        Some((section, key)) => table.get(section)?.as_table()?.get(key).cloned(),
        None => table.get(dotted).cloned(),
    }
}

/// Sets (or removes) `dotted` in `table` to the value it has in the new file.
fn adopt(table: &mut toml::Table, dotted: &str, value: Option<toml::Value>) {
    let Some((section, key)) = dotted.split_once('.') else {
        match value {
            Some(value) => table.insert(dotted.to_string(), value),
            None => table.remove(dotted),
        };
        return;
    };
    let entry = table
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(inner) = entry {
        match value {
            Some(value) => inner.insert(key.to_string(), value),
            None => inner.remove(key),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().expect("toml")
    }

    #[test]
    fn changed_keys_names_each_key_and_whole_arrays() {
        let old = table("[server]\nlisten = \"[::]:443\"\n[turn]\nlisten_udp = [\"[::]:3478\"]\n");
        let new = table(
            "[server]\nlisten = \"[::]:8443\"\n[turn]\nlisten_udp = [\"[::]:3478\"]\n\
             [[rooms]]\nname = \"family\"\n",
        );
        assert_eq!(changed_keys(&old, &new), vec!["rooms", "server.listen"]);
        assert!(changed_keys(&new, &new).is_empty());
    }
}

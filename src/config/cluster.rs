//! `[cluster]`: several callbox nodes acting as one service through one Redis. Absent, callbox
//! keeps presence and routing in its own process and never talks to Redis.

use serde::Deserialize;

use super::ConfigError;

/// Where the shared Redis is and who this node is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[:password@]host[:port][/db]`.
    pub redis: String,
    /// This node's name in Redis keys and channels; defaults to the host name. Must differ
    /// between nodes.
    #[serde(default)]
    pub node_id: Option<String>,
    /// How long a name (and a node's liveness) lasts in Redis without renewal: a node that dies
    /// loses its names after this long. Renewed every third of it.
    #[serde(default = "default_claim_ttl")]
    pub claim_ttl_secs: u64,
}

fn default_claim_ttl() -> u64 {
    6
}

impl ClusterConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.redis.trim();
        if !(url.starts_with("redis://") || url.starts_with("redis+unix://")) {
            return Err(ConfigError::invalid(
                "cluster.redis",
                "must be a redis:// (or redis+unix://) URL",
            ));
        }
        if let Err(err) = redis::Client::open(url) {
            return Err(ConfigError::invalid("cluster.redis", err.to_string()));
        }
        if let Some(id) = &self.node_id {
            if !valid_node_id(id) {
                return Err(ConfigError::invalid(
                    "cluster.node_id",
                    "must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
                ));
            }
        }
        if !(2..=300).contains(&self.claim_ttl_secs) {
            return Err(ConfigError::invalid(
                "cluster.claim_ttl_secs",
                "must be between 2 and 300",
            ));
        }
        Ok(())
    }

    /// `node_id`, or the host name (reduced to the allowed characters), or "callbox".
    pub fn node_id(&self) -> String {
        if let Some(id) = &self.node_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let clean: String = host
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(64)
            .collect();
        if clean.is_empty() {
            "callbox".into()
        } else {
            clean
        }
    }
}

fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClusterConfig, String> {
        let config: ClusterConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn a_redis_url_is_required_and_node_id_defaults_to_a_usable_name() {
        let config = parse("redis = \"redis://10.0.0.5:6379\"").expect("valid");
        assert_eq!(config.claim_ttl_secs, 6);
        assert!(valid_node_id(&config.node_id()));
        assert!(parse("node_id = \"a\"").is_err());
    }

    #[test]
    fn bad_urls_node_ids_and_ttls_are_refused_naming_the_key() {
        let bad_url = parse("redis = \"http://x\"").unwrap_err();
        assert!(bad_url.contains("cluster.redis"), "{bad_url}");
        let bad_id = parse("redis = \"redis://x\"\nnode_id = \"a b\"").unwrap_err();
        assert!(bad_id.contains("cluster.node_id"), "{bad_id}");
        let bad_ttl = parse("redis = \"redis://x\"\nclaim_ttl_secs = 1").unwrap_err();
        assert!(bad_ttl.contains("cluster.claim_ttl_secs"), "{bad_ttl}");
    }
}

//! Keys that moved, still read under their old names so an existing config.toml keeps working;
//! each use logs a warning that names the new key.

use super::{Config, ConfigError};

/// Applies the old keys present in `raw` (the file as a table) to `config`, returning one
/// warning per old key used. Setting both the old and the new key is refused: which one wins
/// would be a guess.
pub fn apply(config: &mut Config, raw: &toml::Table) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    if let Some(old) = config.signaling.max_connections.take() {
        if has_key(raw, "server", "max_connections") {
            return Err(ConfigError::invalid(
                "signaling.max_connections",
                "is the old name of server.max_connections: set only server.max_connections",
            ));
        }
        config.server.max_connections = old;
        warnings.push(
            "signaling.max_connections is deprecated: it caps the whole web listener, so it is \
             now server.max_connections (move it there)"
                .to_string(),
        );
    }
    Ok(warnings)
}

fn has_key(raw: &toml::Table, section: &str, key: &str) -> bool {
    raw.get(section)
        .and_then(toml::Value::as_table)
        .is_some_and(|t| t.contains_key(key))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn old_signaling_max_connections_sets_server_max_connections_with_a_warning() {
        let text = "[signaling]\nmax_connections = 4\n";
        let mut config: Config = toml::from_str(text).expect("parses");
        let raw: toml::Table = toml::from_str(text).expect("table");
        let warnings = super::apply(&mut config, &raw).expect("alias applies");
        assert_eq!(config.server.max_connections, 4);
        assert_eq!(config.signaling.max_connections, None);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("server.max_connections"),
            "{warnings:?}"
        );
        let parsed = Config::parse(text).expect("parses");
        assert_eq!(parsed.server.max_connections, 4);
    }

    #[test]
    fn new_server_max_connections_needs_no_alias() {
        let config = Config::parse("[server]\nmax_connections = 7\n").expect("parses");
        assert_eq!(config.server.max_connections, 7);
    }

    #[test]
    fn old_and_new_key_together_are_refused() {
        let err =
            Config::parse("[server]\nmax_connections = 7\n[signaling]\nmax_connections = 4\n")
                .unwrap_err();
        assert!(
            err.to_string().contains("signaling.max_connections"),
            "{err}"
        );
    }
}

//! `[tls] acme = { ... }`: built-in certificates from an ACME CA (Let's Encrypt by default), and
//! `[server] http_redirect`, the plain-HTTP listener that can answer its HTTP-01 challenges.
//!
//! Only the keys and their checks live here; the protocol is in `crate::ops::acme`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{Config, ConfigError};

/// Let's Encrypt's production directory, used when `directory` is not set.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Where the account and certificates are kept (systemd's `StateDirectory=callbox`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/callbox";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// DNS names on the certificate; `server.public_host` must be one of them.
    pub domains: Vec<String>,
    /// Contact address the CA writes to about expiry or problems (optional, recommended).
    #[serde(default)]
    pub email: Option<String>,
    /// ACME directory URL (default: Let's Encrypt production).
    #[serde(default = "default_directory")]
    pub directory: String,
    /// Which challenge proves the names are ours.
    #[serde(default)]
    pub challenge: Challenge,
    /// The account and certificates are cached under `<state_dir>/acme/`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// A PEM root certificate to trust for the connection to the ACME server instead of the
    /// system's roots: for a test or staging CA such as Pebble, never needed for Let's Encrypt.
    #[serde(default)]
    pub directory_ca: Option<PathBuf>,
}

/// The ACME challenge type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Challenge {
    /// On the HTTPS listener itself (port 443): no port 80 needed.
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// On `server.http_redirect` (port 80).
    #[serde(rename = "http-01")]
    Http01,
}

fn default_directory() -> String {
    LETS_ENCRYPT.to_string()
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}

/// Checks `[tls] acme` against the rest of the file, and `server.http_redirect`.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    if config.server.http_redirect.is_some() && !config.tls.enabled {
        return Err(ConfigError::invalid(
            "server.http_redirect",
            "redirects to HTTPS, so it needs tls.enabled = true",
        ));
    }
    let Some(acme) = &config.tls.acme else {
        return Ok(());
    };
    let key = |k: &str| format!("tls.acme.{k}");
    if !config.tls.enabled {
        return Err(ConfigError::invalid("tls.acme", "needs tls.enabled = true"));
    }
    if config.tls.cert.is_some() || config.tls.key.is_some() || config.tls.self_signed {
        return Err(ConfigError::invalid(
            "tls.acme",
            "cannot be combined with tls.cert, tls.key or tls.self_signed (pick one source)",
        ));
    }
    validate_domains(&acme.domains, config.server.public_host.trim())?;
    if !acme.directory.starts_with("https://") {
        return Err(ConfigError::invalid(
            key("directory"),
            "must be an https:// URL",
        ));
    }
    if let Some(email) = &acme.email {
        if !email.contains('@') || email.contains([' ', ':', '/']) {
            return Err(ConfigError::invalid(
                key("email"),
                format!("{email:?} is not an address"),
            ));
        }
    }
    if acme.challenge == Challenge::Http01 && config.server.http_redirect.is_none() {
        return Err(ConfigError::invalid(
            key("challenge"),
            "\"http-01\" is answered on server.http_redirect; set it (e.g. \"[::]:80\")",
        ));
    }
    Ok(())
}

/// At least one name, each a DNS name, one of them the public host.
fn validate_domains(domains: &[String], host: &str) -> Result<(), ConfigError> {
    let key = "tls.acme.domains";
    if domains.is_empty() {
        return Err(ConfigError::invalid(key, "must list at least one DNS name"));
    }
    if let Some(name) = domains.iter().find(|name| !is_dns_name(name)) {
        return Err(ConfigError::invalid(
            key,
            format!("{name:?} is not a DNS name (no wildcards, IPs, schemes or ports)"),
        ));
    }
    if !domains.iter().any(|d| d.eq_ignore_ascii_case(host)) {
        return Err(ConfigError::invalid(
            key,
            format!("must include server.public_host ({host:?}), the name browsers open"),
        ));
    }
    Ok(())
}

/// Letters, digits and hyphens in dot-separated labels of at most 63, 253 in all.
fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[server]\npublic_host = \"call.example.com\"\n[tls]\nenabled = true\n";

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{BASE}{extra}"))
    }

    #[test]
    fn acme_defaults_to_lets_encrypt_tls_alpn_and_var_lib() {
        let config = parse("acme = { domains = [\"call.example.com\"] }\n").expect("valid");
        let acme = config.tls.acme.expect("acme");
        assert_eq!(acme.directory, LETS_ENCRYPT);
        assert_eq!(acme.challenge, Challenge::TlsAlpn01);
        assert_eq!(acme.state_dir, PathBuf::from("/var/lib/callbox"));
    }

    #[test]
    fn acme_must_cover_the_public_host_and_refuses_wildcards() {
        let err = parse("acme = { domains = [\"other.example.com\"] }\n").unwrap_err();
        assert!(err.to_string().contains("server.public_host"), "{err}");
        let err = parse("acme = { domains = [\"*.example.com\"] }\n").unwrap_err();
        assert!(err.to_string().contains("tls.acme.domains"), "{err}");
    }

    #[test]
    fn acme_excludes_pem_files_and_http_01_needs_the_redirect_listener() {
        let err =
            parse("self_signed = true\nacme = { domains = [\"call.example.com\"] }\n").unwrap_err();
        assert!(err.to_string().contains("tls.self_signed"), "{err}");
        let http = "acme = { domains = [\"call.example.com\"], challenge = \"http-01\" }\n";
        let err = parse(http).unwrap_err();
        assert!(err.to_string().contains("server.http_redirect"), "{err}");
        let with_redirect = format!(
            "[server]\npublic_host = \"call.example.com\"\nhttp_redirect = \"[::]:80\"\n\
             [tls]\nenabled = true\n{http}"
        );
        assert!(Config::parse(&with_redirect).is_ok());
    }

    #[test]
    fn http_redirect_needs_tls() {
        let err = Config::parse("[server]\nhttp_redirect = \"[::]:80\"\n").unwrap_err();
        assert!(err.to_string().contains("server.http_redirect"), "{err}");
    }
}

//! The addresses the page is reached at: the URL printed at start, and the origins /ws
//! accepts as our own page's.

use std::net::SocketAddr;

use crate::config::Config;

/// The URL people open, as printed at start.
pub(super) fn public_url(config: &Config, http_addr: SocketAddr) -> String {
    let scheme = if config.tls.enabled { "https" } else { "http" };
    format!(
        "{scheme}://{}{}/",
        host_for_url(&config.server.public_host),
        port_suffix(scheme, http_addr.port())
    )
}

/// Origins a browser sends for our own page. On a localhost host the loopback spellings are
/// accepted too, since `localhost`, `127.0.0.1` and `[::1]` all reach the default config.
pub(super) fn allowed_origins(config: &Config, http_addr: SocketAddr) -> Vec<String> {
    let scheme = if config.tls.enabled { "https" } else { "http" };
    let port = port_suffix(scheme, http_addr.port());
    let host = config.server.public_host.trim();
    let mut hosts = vec![host_for_url(host)];
    if host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "::1" {
        hosts = vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()];
    }
    let mut origins: Vec<String> = hosts
        .into_iter()
        .map(|h| format!("{scheme}://{h}{port}").to_ascii_lowercase())
        .collect();
    origins.extend(
        config
            .server
            .extra_origins
            .iter()
            .map(|o| crate::net::normalize_origin(o)),
    );
    origins
}

fn host_for_url(host: &str) -> String {
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{host}]"),
        Err(_) => host.to_string(),
    }
}

fn port_suffix(scheme: &str, port: u16) -> String {
    match (scheme, port) {
        ("https", 443) | ("http", 80) => String::new(),
        _ => format!(":{port}"),
    }
}

//! `callbox selftest`: checks an installed server from the outside, the way a browser reaches
//! it: the public name resolves, HTTPS presents a certificate for that name (verified against
//! the configured chain) and answers `/healthz`, STUN answers on every TURN listener, a TURN
//! allocation succeeds with the credentials a login is handed, an Allocate without
//! credentials is refused, a permission for a private peer is refused, and `/metrics` answers.
//! A failed check prints a line saying what to fix.
//!
//! Run it on the server after `systemctl start callbox`, or anywhere with a copy of the config
//! (and its certificate chain) to see what the internet sees. Each check prints one line; the
//! exit status says whether all passed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Config;

/// Longest wait for any one check.
pub(super) const STEP: Duration = Duration::from_secs(5);

/// Fewer days of validity than this fail the `certificate` check. certbot renews at 30 days
/// left and the built-in ACME well before expiry, so a certificate this close to its end means
/// renewal has been failing for weeks; a week still leaves time to fix it before browsers
/// refuse the page and TURN/TLS.
pub const MIN_CERT_DAYS: i64 = 7;

/// How a handshake refused for an expired certificate starts its detail.
const EXPIRED: &str = "TLS: certificate expired";

/// One check's result line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What to do about a failed check, by the check's name.
pub fn fix_for(name: &str) -> &'static str {
    let fixes: &[(&str, &str)] = &[
        ("dns", "point server.public_host's A/AAAA records at this server"),
        ("certificate", "renew it: `certbot renew` (check certbot's timer and /var/log/letsencrypt), or with [tls] acme read callbox's ACME log lines; then `systemctl reload callbox`"),
        ("web", "open server.listen's TCP port in the firewall; tls.cert must be the unexpired chain for server.public_host (and this config must be the server's)"),
        ("stun udp", "open this UDP port in the firewall and check turn.listen_udp (is callbox running?)"),
        ("stun tcp", "open this TCP port in the firewall and check turn.listen_tcp"),
        ("stun tls", "open this TCP port in the firewall; the TURN/TLS certificate is tls.cert"),
        ("login", "check that /ws answers and signaling.access_code; TURN credentials come with the login"),
        ("turn allocate", "check turn.secrets, relay_ips/external_ip (this server's addresses), and open the relay port range (UDP relay_port_min..relay_port_max)"),
        ("turn unauthenticated", "an open relay answers on this port: stop whatever it is and run callbox there (it always asks for credentials)"),
        ("turn private peer", "relays reach private addresses: remove private ranges from turn.allow_peers, or stop the non-callbox server on this port"),
        ("metrics", "check metrics.listen, or set it to \"\" to turn metrics off"),
    ];
    fixes
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, fix)| *fix)
        .unwrap_or("see the detail above")
}

fn check(name: impl Into<String>, result: Result<String, String>) -> Check {
    let (ok, detail) = match result {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    };
    Check {
        name: name.into(),
        ok,
        detail,
    }
}

/// Runs every check that applies to `config`, in order.
pub async fn run(config: &Config) -> Vec<Check> {
    let host = config.server.public_host.trim().to_string();
    let mut checks = Vec::new();
    let addrs = resolve(&host).await;
    checks.push(check(
        "dns",
        addrs
            .as_ref()
            .map(|a| format!("{host} -> {a:?}"))
            .map_err(Clone::clone),
    ));
    let Ok(addrs) = addrs else { return checks };
    let ip = addrs[0];
    let web = SocketAddr::new(ip, config.server.listen.port());
    let roots = trust_anchors(config);
    let mut expiry = None;
    let result = web_check(config, &host, web, &roots, &mut expiry).await;
    checks.push(check("web", result));
    checks.extend(expiry.map(|result| check("certificate", result)));
    if config.turn.enabled {
        for addr in &config.turn.listen_udp {
            let target = SocketAddr::new(ip, addr.port());
            checks.push(check(
                format!("stun udp {}", addr.port()),
                stun_udp(target).await,
            ));
        }
        for addr in &config.turn.listen_tcp {
            let target = SocketAddr::new(ip, addr.port());
            checks.push(check(
                format!("stun tcp {}", addr.port()),
                stun_tcp(target).await,
            ));
        }
        let mut tls_ports: Vec<u16> = config.turn.listen_tls.iter().map(|a| a.port()).collect();
        if config.tls.enabled && config.turn.on_https_port {
            tls_ports.push(config.server.listen.port());
        }
        for port in tls_ports {
            let target = SocketAddr::new(ip, port);
            let result = stun_tls(&host, target, &roots).await;
            checks.push(check(format!("stun tls {port}"), result));
        }
        if let Some(addr) = config.turn.listen_udp.first() {
            let target = SocketAddr::new(ip, addr.port());
            checks.extend(turn_checks(config, (&host, web, &roots), target).await);
        }
    }
    if let Ok(Some(addr)) = config.metrics.listen_addr() {
        checks.push(check("metrics", metrics(addr).await));
    }
    checks
}

/// Logs in over /ws for fresh TURN credentials, then allocates with them on `target` and
/// checks that TURN refuses an unauthenticated Allocate and a private peer.
async fn turn_checks(
    config: &Config,
    (host, web, roots): (
        &str,
        SocketAddr,
        &[rustls_pki_types::CertificateDer<'static>],
    ),
    target: SocketAddr,
) -> Vec<Check> {
    let mut login = match super::selftest_login::login(config, host, web, roots).await {
        Ok(login) => login,
        Err(err) => return vec![check("login", Err(err))],
    };
    let mut checks = vec![check("login", Ok(format!("TURN user {}", login.username)))];
    let allocated = allocate(config, target, &login.username, &login.password);
    checks.push(check("turn allocate udp", allocated.await));
    let (unauth, private) =
        super::selftest_peer::refusals(target, &login.username, &login.password).await;
    checks.push(check("turn unauthenticated", unauth));
    checks.push(check("turn private peer", private));
    let _ = login.socket.close(None).await;
    checks
}

/// Addresses of `host`, IPv4 first (a dual-stack name is most often served on both).
async fn resolve(host: &str) -> Result<Vec<std::net::IpAddr>, String> {
    let found = tokio::time::timeout(STEP, tokio::net::lookup_host((host, 0)))
        .await
        .map_err(|_| format!("{host}: lookup timed out"))?
        .map_err(|err| format!("{host}: {err}"))?;
    let mut ips: Vec<_> = found.map(|a| a.ip()).collect();
    ips.sort_by_key(|ip| ip.is_ipv6());
    ips.dedup();
    match ips.is_empty() {
        true => Err(format!("{host} has no address")),
        false => Ok(ips),
    }
}

/// The configured chain as trust anchors: the server must present a certificate that chains
/// to one of them, for the public name, and not expired (self-signed: the one certificate).
fn trust_anchors(config: &Config) -> Vec<CertificateDer<'static>> {
    if let Some(acme) = config.tls.acme.as_ref().filter(|_| config.tls.enabled) {
        return crate::ops::acme::cached_chain(acme);
    }
    match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) if config.tls.enabled && !config.tls.self_signed => {
            crate::web::tls::load_pem_files(cert, key)
                .map(|(chain, _)| chain)
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

async fn web_check(
    config: &Config,
    host: &str,
    addr: SocketAddr,
    roots: &[CertificateDer<'static>],
    expiry: &mut Option<Result<String, String>>,
) -> Result<String, String> {
    let tcp = connect(addr).await?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (response, what) = match config.tls.enabled {
        false => (
            http_exchange(tcp, &request).await?,
            format!("http://{addr}"),
        ),
        true if roots.is_empty() => return Err("self-signed: nothing to verify against".into()),
        true => {
            let tls = tls_connect(host, tcp, roots).await.inspect_err(|err| {
                if err.starts_with(EXPIRED) {
                    *expiry = Some(Err(err.clone()));
                }
            })?;
            *expiry = Some(expiry_check(not_after(&tls), unix_now()));
            let response = http_exchange(tls, &request).await?;
            (response, format!("https://{host}:{}", addr.port()))
        }
    };
    match response.starts_with("HTTP/1.1 200") {
        true => Ok(format!("{what} /healthz ok")),
        false => Err(format!("{what} /healthz: {}", first_line(&response))),
    }
}

async fn metrics(addr: SocketAddr) -> Result<String, String> {
    let tcp = connect(addr).await?;
    let request = "GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n";
    let response = http_exchange(tcp, request).await?;
    match response.starts_with("HTTP/1.1 200") && response.contains("callbox_build_info") {
        true => Ok(format!("http://{addr}/metrics ok")),
        false => Err(format!("http://{addr}/metrics: {}", first_line(&response))),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("no response")
}

pub(super) async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    tokio::time::timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{addr}: connect timed out (firewall?)"))?
        .map_err(|err| format!("{addr}: {err}"))
}

async fn http_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> Result<String, String> {
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        // A health answer is small; read at most 64 KiB of anything else.
        (&mut stream)
            .take(64 * 1024)
            .read_to_end(&mut response)
            .await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    tokio::time::timeout(STEP, exchange)
        .await
        .map_err(|_| "no HTTP answer in time".to_string())?
        .map_err(|err| err.to_string())
}

pub(super) async fn tls_connect(
    host: &str,
    tcp: TcpStream,
    roots: &[CertificateDer<'static>],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        let _ = store.add(root.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(store)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|err| err.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tokio::time::timeout(STEP, connector.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(handshake_error)
}

/// The handshake failure as a detail line; an expired certificate says so in plain words
/// (the verifier refuses it before selftest could read its dates).
fn handshake_error(err: std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    let expired = matches!(
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>()),
        Some(Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        ))
    );
    match expired {
        true => format!("{EXPIRED} ({err})"),
        false => format!("TLS: {err}"),
    }
}

/// The served leaf certificate's `notAfter`, as Unix seconds.
fn not_after(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> Option<i64> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| x509_parser::parse_x509_certificate(der.as_ref()).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The `certificate` check: fails under [`MIN_CERT_DAYS`] left, or when the dates are unreadable.
pub fn expiry_check(not_after: Option<i64>, now: i64) -> Result<String, String> {
    let Some(not_after) = not_after else {
        return Err("certificate expiry unreadable".into());
    };
    let days = (not_after - now).div_euclid(86400);
    match days {
        d if d < 0 => Err(format!("expired {} days ago", -d)),
        d if d < MIN_CERT_DAYS => Err(format!(
            "expires in {d} days (under {MIN_CERT_DAYS}): renewal is failing"
        )),
        d => Ok(format!("valid for {d} more days")),
    }
}

use super::selftest_turn::{allocate, stun_tcp, stun_tls, stun_udp};

/// Prints the checks as aligned lines; true when all passed.
pub fn report(checks: &[Check]) -> bool {
    for c in checks {
        println!(
            "{} {:<18} {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
        if !c.ok {
            println!("     fix: {}", fix_for(&c.name));
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    println!("{} passed, {failed} failed", checks.len() - failed);
    failed == 0
}

#[cfg(test)]
mod tests {
    use super::{expiry_check, MIN_CERT_DAYS};

    const DAY: i64 = 86400;

    #[test]
    fn a_certificate_near_its_end_fails_and_a_fresh_one_passes() {
        let now = 1_800_000_000;
        assert!(expiry_check(Some(now + 60 * DAY), now).is_ok());
        assert!(expiry_check(Some(now + MIN_CERT_DAYS * DAY), now).is_ok());
        let near = expiry_check(Some(now + 2 * DAY + 5), now);
        assert_eq!(
            near,
            Err("expires in 2 days (under 7): renewal is failing".into())
        );
        assert_eq!(
            expiry_check(Some(now - 3 * DAY), now),
            Err("expired 3 days ago".into())
        );
        assert!(expiry_check(None, now).is_err());
    }
}

//! Built-in ACME (`[tls] acme`): callbox gets and renews its own certificate, and every TLS
//! listener (HTTPS, WSS, TURN over TLS on 5349 and on 443) switches to it at once because they
//! share one [`CertStore`]. The challenge is answered by callbox itself: TLS-ALPN-01 in that
//! store's resolver on the HTTPS port, or HTTP-01 on `server.http_redirect`
//! ([`super::acme_challenges`]).
//!
//! The decisions (when to order, how long to back off) are plain state in
//! [`super::acme_plan`]; this file is the thin driver that sleeps, talks to the CA through
//! instant-acme and keeps the account and certificate in [`super::acme_cache`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use tokio_util::sync::CancellationToken;

use super::acme_cache::{Cache, CacheError};
use super::acme_challenges::{ChallengeCertError, Challenges};
use super::acme_plan::{sleep_for, Next, Renewal, Validity};
use super::certs::CertStore;
use crate::config::acme::{AcmeConfig, Challenge};
use crate::config::TlsConfig;
use crate::web::tls::TlsError;

/// One order may take this long in all (the CA's own retries included) before it counts as
/// failed and backs off.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);
/// How the order's status is polled while the CA validates and issues.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(2.0)
    .timeout(Duration::from_secs(120));

/// Why an order failed (logged, then retried after a back-off).
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("ACME server: {0}")]
    Protocol(#[from] instant_acme::Error),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    ChallengeCert(#[from] ChallengeCertError),
    #[error("the CA offers no {kind} challenge for {name} (set tls.acme.challenge to another)")]
    NoChallenge { kind: &'static str, name: String },
    #[error("authorization for {name} is {status:?}")]
    Authorization { name: String, status: String },
    #[error("the order ended {status}{detail}")]
    Order { status: String, detail: String },
    #[error("the issued certificate cannot be used: {0}")]
    Issued(#[from] TlsError),
    #[error("the issued certificate is not PEM: {0}")]
    Pem(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The certificate to start with: the cached one if it covers the domains, else a
/// self-signed stand-in that serves until the first order completes.
pub fn initial_store(tls: &TlsConfig, public_host: &str) -> Result<CertStore, TlsError> {
    let Some(acme) = &tls.acme else {
        return Err(TlsError::SelfSigned("tls.acme is not set".into()));
    };
    let cache = Cache::new(acme);
    match cache.certificate(&acme.domains) {
        Ok(Some(cached)) => {
            tracing::info!(dir = %cache.dir().display(), "ACME: serving the cached certificate");
            return CertStore::new(cached.chain, cached.key, None);
        }
        Ok(None) => tracing::info!(
            "ACME: no cached certificate for {:?}; a self-signed one serves until the CA issues one",
            acme.domains
        ),
        Err(err) => tracing::warn!("ACME: {err}; ordering a new certificate"),
    }
    let (chain, key) = crate::web::tls::self_signed(public_host)?;
    CertStore::new(chain, key, None)
}

/// The cached certificate chain (empty if none yet), for `callbox selftest` to verify against.
pub fn cached_chain(acme: &AcmeConfig) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    match Cache::new(acme).certificate(&acme.domains) {
        Ok(Some(cached)) => cached.chain,
        _ => Vec::new(),
    }
}

/// Orders and renews until `shutdown`. Never returns an error: each failure is logged with
/// the time of the next attempt.
pub async fn run(acme: AcmeConfig, certs: Arc<CertStore>, shutdown: CancellationToken) {
    let cache = Cache::new(&acme);
    let mut held: Option<Validity> = match cache.certificate(&acme.domains) {
        Ok(cached) => cached.map(|c| c.validity),
        Err(_) => None,
    };
    if let Some(validity) = held {
        let due = validity.renew_at().duration_since(SystemTime::now());
        let days = due.map_or(0, |d| d.as_secs() / 86_400);
        tracing::info!("ACME: renewal of the cached certificate due in {days} days");
    }
    let mut renewal = Renewal::default();
    loop {
        let now = SystemTime::now();
        if let Next::WaitUntil(at) = renewal.next(now, held) {
            tokio::select! {
                _ = tokio::time::sleep(sleep_for(now, at)) => continue,
                _ = shutdown.cancelled() => return,
            }
        }
        tracing::info!(
            domains = ?acme.domains,
            directory = %acme.directory,
            attempt = renewal.attempt(),
            "ACME: ordering a certificate"
        );
        let order = tokio::time::timeout(ORDER_TIMEOUT, issue(&acme, &cache, &certs));
        let outcome = tokio::select! {
            outcome = order => outcome.unwrap_or(Err(AcmeError::Timeout(ORDER_TIMEOUT))),
            _ = shutdown.cancelled() => return,
        };
        // Whatever happened, the answers of this order must not outlive it.
        certs.challenges().clear();
        match outcome {
            Ok(validity) => {
                renewal.succeeded();
                held = Some(validity);
                let renew_in = validity.renew_at().duration_since(now).unwrap_or_default();
                tracing::info!(
                    "ACME: new certificate in use on every TLS listener; renewal in {}s",
                    renew_in.as_secs()
                );
            }
            Err(err) => {
                let delay = renewal.failed(SystemTime::now());
                tracing::error!(
                    "ACME: order for {:?} failed: {err}; next attempt in {}s",
                    acme.domains,
                    delay.as_secs()
                );
            }
        }
    }
}

/// One order from start to a certificate in use and cached.
async fn issue(acme: &AcmeConfig, cache: &Cache, certs: &CertStore) -> Result<Validity, AcmeError> {
    let account = account(acme, cache).await?;
    let identifiers: Vec<Identifier> = acme
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    answer_challenges(&mut order, acme.challenge, &certs.challenges()).await?;
    let status = order.poll_ready(&POLL).await?;
    if status != OrderStatus::Ready {
        let detail = order_problems(&mut order).await;
        return Err(AcmeError::Order {
            status: format!("{status:?}"),
            detail,
        });
    }
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&POLL).await?;
    let (chain, key) = parse_pem(&chain_pem, &key_pem)?;
    let validity = chain
        .first()
        .and_then(|der| super::acme_cache::inspect(der.as_ref()))
        .map(|(validity, _)| validity)
        .ok_or_else(|| AcmeError::Pem("no readable certificate in the chain".into()))?;
    certs.install(chain, key)?;
    if let Err(err) = cache.save_certificate(&chain_pem, &key_pem) {
        // Serving it matters more; a restart will order again.
        tracing::error!("ACME: certificate in use but not cached: {err}");
    }
    Ok(validity)
}

/// The cached account, or a new one (cached at once, so a later failure does not make another).
async fn account(acme: &AcmeConfig, cache: &Cache) -> Result<Account, AcmeError> {
    let builder = || match &acme.directory_ca {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    };
    if let Some(credentials) = cache.account()? {
        return Ok(builder()?.from_credentials(credentials).await?);
    }
    let contact = acme.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = builder()?
        .create(&new, acme.directory.clone(), None)
        .await?;
    cache.save_account(&credentials)?;
    tracing::info!(id = account.id(), "ACME: account created and cached");
    Ok(account)
}

/// Puts up the answer of every pending authorization and tells the CA to check it.
async fn answer_challenges(
    order: &mut instant_acme::Order,
    kind: Challenge,
    challenges: &Challenges,
) -> Result<(), AcmeError> {
    let (wanted, label) = match kind {
        Challenge::TlsAlpn01 => (ChallengeType::TlsAlpn01, "tls-alpn-01"),
        Challenge::Http01 => (ChallengeType::Http01, "http-01"),
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        let name = authz.identifier().to_string();
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(AcmeError::Authorization {
                    name,
                    status: format!("{other:?}"),
                })
            }
        }
        let mut challenge = authz
            .challenge(wanted.clone())
            .ok_or(AcmeError::NoChallenge {
                kind: label,
                name: name.clone(),
            })?;
        let key_authorization = challenge.key_authorization();
        match kind {
            Challenge::TlsAlpn01 => {
                challenges.set_tls_alpn(&name, key_authorization.digest().as_ref())?
            }
            Challenge::Http01 => challenges.set_http(&challenge.token, key_authorization.as_str()),
        }
        challenge.set_ready().await?;
    }
    Ok(())
}

/// The CA's reasons on the challenges of a failed order, for the log line.
async fn order_problems(order: &mut instant_acme::Order) -> String {
    let mut problems = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for challenge in &authz.challenges {
            if let Some(problem) = &challenge.error {
                problems.push(format!("{}: {problem}", authz.identifier()));
            }
        }
    }
    match problems.is_empty() {
        true => String::new(),
        false => format!(" ({})", problems.join("; ")),
    }
}

fn parse_pem(
    chain_pem: &str,
    key_pem: &str,
) -> Result<
    (
        Vec<rustls_pki_types::CertificateDer<'static>>,
        rustls_pki_types::PrivateKeyDer<'static>,
    ),
    AcmeError,
> {
    let chain = rustls_pemfile::certs(&mut chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| AcmeError::Pem(err.to_string()))?;
    if chain.is_empty() {
        return Err(AcmeError::Pem("no CERTIFICATE block".into()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|err| AcmeError::Pem(err.to_string()))?
        .ok_or_else(|| AcmeError::Pem("no PRIVATE KEY block".into()))?;
    Ok((chain, key))
}

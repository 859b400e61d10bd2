//! Live certificate reload: every TLS listener (HTTPS and WSS on `server.listen`, TURN over TLS
//! on `turn.listen_tls` and on 443) shares one [`CertStore`] as its rustls certificate resolver,
//! so swapping the certificate here switches all of them at the next handshake, and open
//! connections and allocations keep the session they already have.
//!
//! certbot renews by pointing `live/HOST/*.pem` at new files; [`watch`] notices the change in
//! size or modification time within [`POLL_EVERY`], and SIGHUP forces a reload. A file that does
//! not load (half-written, key not matching the certificate) keeps the old certificate.
//!
//! With `[tls] acme` there are no files: the ACME driver hands each new certificate to
//! [`CertStore::install`], and the store also presents the TLS-ALPN-01 challenge certificate
//! ([`Challenges`]) to the CA's validator, so the challenge runs on the HTTPS port itself.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use super::acme_challenges::{wants_tls_alpn, Challenges};
use crate::web::tls::{load_pem_files, TlsError};

/// How often the PEM files' metadata is looked at.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// What identifies one version of the files without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<(Option<SystemTime>, u64)>);

/// The certificate every TLS listener presents.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
    /// certificate and key files; `None` for a self-signed certificate (nothing to reload).
    files: Option<(PathBuf, PathBuf)>,
    /// The files as last read, good or bad, so one bad version is logged once.
    seen: Mutex<Option<Stamp>>,
    /// Expiry of the certificate in use, unix seconds (0 if it could not be read).
    not_after: AtomicI64,
    /// ACME challenge answers while an order is open.
    challenges: Arc<Challenges>,
}

/// What [`CertStore::reload`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The files are the ones in use (or there are no files).
    Unchanged,
    /// A new certificate is in use, valid until this unix time.
    Replaced { not_after: i64 },
}

impl CertStore {
    /// A store for PEM files (or a fixed certificate when `files` is `None`).
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        files: Option<(PathBuf, PathBuf)>,
    ) -> Result<CertStore, TlsError> {
        let certified = certified_key(chain, key)?;
        let not_after = not_after(&certified);
        let seen = files
            .as_ref()
            .map(|(c, k)| stamp(&[c.as_path(), k.as_path()]));
        Ok(CertStore {
            current: RwLock::new(Arc::new(certified)),
            files,
            seen: Mutex::new(seen),
            not_after: AtomicI64::new(not_after),
            challenges: Arc::default(),
        })
    }

    /// Expiry of the certificate in use, unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after.load(Ordering::Relaxed)
    }

    /// The certificate in use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The ACME challenge answers this store (and the redirect listener) present.
    pub fn challenges(&self) -> Arc<Challenges> {
        Arc::clone(&self.challenges)
    }

    /// Puts a new certificate in use on every TLS listener (what ACME does after an order);
    /// returns its expiry, unix seconds. A chain and key that do not match change nothing.
    pub fn install(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<i64, TlsError> {
        let certified = certified_key(chain, key)?;
        let not_after = not_after(&certified);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(certified);
        self.not_after.store(not_after, Ordering::Relaxed);
        Ok(not_after)
    }

    /// Reads the files again if their size or modification time changed since last read (or
    /// always, with `force`). On error the certificate in use stays.
    pub fn reload(&self, force: bool) -> Result<Reload, TlsError> {
        let Some((cert, key)) = &self.files else {
            return Ok(Reload::Unchanged);
        };
        let now = stamp(&[cert.as_path(), key.as_path()]);
        {
            let mut seen = crate::lock::lock(&self.seen, "certificate file stamps");
            if !force && seen.as_ref() == Some(&now) {
                return Ok(Reload::Unchanged);
            }
            *seen = Some(now);
        }
        let (chain, key) = load_pem_files(cert, key)?;
        let certified = certified_key(chain, key)?;
        if certified.cert == self.current().cert {
            return Ok(Reload::Unchanged);
        }
        let not_after = not_after(&certified);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(certified);
        self.not_after.store(not_after, Ordering::Relaxed);
        Ok(Reload::Replaced { not_after })
    }

    /// Reloads and logs the outcome (what the poll and SIGHUP do).
    pub fn reload_and_log(&self, force: bool) {
        match self.reload(force) {
            Ok(Reload::Unchanged) => {
                if force {
                    tracing::info!("certificate files unchanged");
                }
            }
            Ok(Reload::Replaced { not_after }) => {
                tracing::info!(not_after, "new certificate in use for every TLS listener")
            }
            Err(err) => tracing::error!("keeping the old certificate: {err}"),
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if wants_tls_alpn(&hello) {
            // Only the validator offers acme-tls/1; no answer for its name fails the handshake.
            return self.challenges.tls_alpn(hello.server_name()?);
        }
        Some(self.current())
    }
}

/// Polls the files until `shutdown`.
pub async fn watch(store: Arc<CertStore>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        // File reads are small but blocking; keep them off the runtime's worker threads.
        let store = Arc::clone(&store);
        let _ = tokio::task::spawn_blocking(move || store.reload_and_log(false)).await;
    }
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, TlsError> {
    let provider = rustls::crypto::ring::default_provider();
    Ok(CertifiedKey::from_der(chain, key, &provider)?)
}

fn not_after(certified: &CertifiedKey) -> i64 {
    certified
        .cert
        .first()
        .and_then(|der| x509_parser::parse_x509_certificate(der.as_ref()).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .unwrap_or(0)
}

/// Size and modification time of each file, following symlinks (certbot's `live/` links).
fn stamp(paths: &[&std::path::Path]) -> Stamp {
    Stamp(
        paths
            .iter()
            .map(|p| match std::fs::metadata(p) {
                Ok(m) => (m.modified().ok(), m.len()),
                Err(_) => (None, 0),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let certified = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("cert");
        let (cert, key) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
        std::fs::write(&cert, certified.cert.pem()).expect("write cert");
        std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key");
        (cert, key, certified.cert.der().to_vec())
    }

    fn store(cert: &std::path::Path, key: &std::path::Path) -> CertStore {
        let (chain, der) = load_pem_files(cert, key).expect("load");
        CertStore::new(chain, der, Some((cert.into(), key.into()))).expect("store")
    }

    #[test]
    fn a_key_that_does_not_match_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key, first) = write_pair(dir.path(), "a.test");
        let store = store(&cert, &key);
        let other = rcgen::generate_simple_self_signed(vec!["b.test".into()]).expect("cert");
        std::fs::write(&key, other.key_pair.serialize_pem()).expect("write key");
        assert!(store.reload(true).is_err());
        assert_eq!(store.current().cert[0].as_ref(), first.as_slice());
        assert!(store.not_after() > 0);
    }

    #[test]
    fn new_files_replace_the_certificate_and_unchanged_files_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key, _) = write_pair(dir.path(), "a.test");
        let store = store(&cert, &key);
        assert_eq!(store.reload(false).expect("reload"), Reload::Unchanged);
        let (_, _, second) = write_pair(dir.path(), "b.test");
        assert!(matches!(store.reload(true), Ok(Reload::Replaced { .. })));
        assert_eq!(store.current().cert[0].as_ref(), second.as_slice());
    }
}

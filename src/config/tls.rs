//! The `[tls]` section, and reading the certificate files it names.
//!
//! The files are read here, once, while the config is validated: `callbox check-config` then
//! names a missing or broken file, and `start` builds the TLS listener from what was read
//! instead of reading the files again (later changes are picked up by `ops::certs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Serve HTTPS (and TURN over TLS on the same port). Off on the default config only.
    pub enabled: bool,
    /// PEM certificate chain, e.g. /etc/letsencrypt/live/HOST/fullchain.pem.
    pub cert: Option<PathBuf>,
    /// PEM private key, e.g. /etc/letsencrypt/live/HOST/privkey.pem.
    pub key: Option<PathBuf>,
    /// Generate a self-signed certificate for `server.public_host` at start (labs and tests).
    pub self_signed: bool,
    /// Certificates from an ACME CA instead of files (see `acme`).
    pub acme: Option<super::acme::AcmeConfig>,
}

/// A certificate chain and its private key as read from certbot's PEM files.
pub struct PemPair {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Where they were read from, for live reloads.
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("PemPair")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Why a PEM file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
}

impl TlsConfig {
    /// With `enabled` and not `self_signed`, both files are required and read: the pair is
    /// returned so nothing reads them again at start.
    pub fn validate(&self) -> Result<Option<Arc<PemPair>>, ConfigError> {
        if !self.enabled || self.self_signed || self.acme.is_some() {
            return Ok(None);
        }
        let required = |path: &Option<PathBuf>, key: &str| {
            path.clone().ok_or_else(|| {
                ConfigError::invalid(key, "required when tls.enabled (or set tls.self_signed)")
            })
        };
        let cert_path = required(&self.cert, "tls.cert")?;
        let key_path = required(&self.key, "tls.key")?;
        let (chain, key) = load_pem_files(&cert_path, &key_path)
            .map_err(|err| ConfigError::invalid("tls", err.to_string()))?;
        Ok(Some(Arc::new(PemPair {
            chain,
            key,
            cert_path,
            key_path,
        })))
    }
}

/// Reads a PEM certificate chain and private key, checking both are present.
pub fn load_pem_files(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PemError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| PemError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let pem_error = |path: &Path, message: String| PemError::Pem {
        path: path.to_path_buf(),
        message,
    };
    let cert_pem = read(cert)?;
    let chain = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(cert, err.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(cert, "no CERTIFICATE block found".into()));
    }
    let key_pem = read(key)?;
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|err| pem_error(key, err.to_string()))?
        .ok_or_else(|| pem_error(key, "no PRIVATE KEY block found".into()))?;
    Ok((chain, key_der))
}

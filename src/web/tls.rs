//! Certificates: certbot's PEM files in production, or a self-signed one for a lab.
//!
//! One rustls config serves HTTPS and TURN over TLS (on 443 and on `turn.listen_tls`), so the
//! ALPN list names both: a client that offers only `stun.turn` must still get a handshake.
//! Its certificate comes from one shared [`CertStore`], which reloads certbot's files live.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use crate::config::tls::{load_pem_files, PemError};
use crate::config::{PemPair, TlsConfig};
use crate::ops::certs::CertStore;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("certificate and key do not work together: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(String),
}

/// The server-side TLS config for `[tls]`, and the certificate store inside it.
pub struct TlsSetup {
    /// Shared by every TLS listener (HTTPS and TURN over TLS).
    pub config: Arc<rustls::ServerConfig>,
    pub certs: Arc<CertStore>,
}

/// Builds the TLS config for `[tls]`: certbot's PEM files (reloadable), as validation read
/// them into `pem`, or a self-signed one.
pub fn server_config(
    tls: &TlsConfig,
    pem: Option<&PemPair>,
    public_host: &str,
) -> Result<TlsSetup, TlsError> {
    let certs = match (pem, tls.self_signed) {
        _ if tls.acme.is_some() => crate::ops::acme::initial_store(tls, public_host)?,
        (_, true) => {
            let (chain, key) = self_signed(public_host)?;
            CertStore::new(chain, key, None)?
        }
        (Some(pem), false) => CertStore::new(
            pem.chain.clone(),
            pem.key.clone_key(),
            Some((pem.cert_path.clone(), pem.key_path.clone())),
        )?,
        _ => {
            return Err(TlsError::SelfSigned(
                "tls.cert and tls.key are required unless tls.self_signed = true".into(),
            ))
        }
    };
    let certs = Arc::new(certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&certs) as Arc<dyn rustls::server::ResolvesServerCert>);
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"stun.turn".to_vec()];
    if tls.acme.is_some() {
        // TLS-ALPN-01: the CA's validator offers only this; the resolver answers it.
        config
            .alpn_protocols
            .push(crate::ops::acme_challenges::ACME_TLS_ALPN.to_vec());
    }
    Ok(TlsSetup {
        config: Arc::new(config),
        certs,
    })
}

/// A certificate for the public host (and the loopback names), valid for a lab or a test.
pub fn self_signed(
    public_host: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let mut names = vec![public_host.to_string()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_string());
        }
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|err| TlsError::SelfSigned(err.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    Ok((vec![certified.cert.der().clone()], key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_config_builds() {
        let tls = TlsConfig {
            enabled: true,
            self_signed: true,
            ..TlsConfig::default()
        };
        assert!(server_config(&tls, None, "callbox.test").is_ok());
    }

    #[test]
    fn key_file_without_key_is_refused_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (chain, _) = self_signed("callbox.test").expect("cert");
        let cert_path = dir.path().join("fullchain.pem");
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64_lines(chain[0].as_ref())
        );
        std::fs::write(&cert_path, pem).expect("write cert");
        let key_path = dir.path().join("privkey.pem");
        std::fs::write(&key_path, "not a key").expect("write key");
        let err = load_pem_files(&cert_path, &key_path).unwrap_err();
        assert!(err.to_string().contains("privkey.pem"), "{err}");
    }

    fn base64_lines(der: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(der)
    }
}

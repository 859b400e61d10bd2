//! Certificates: certbot's PEM files in production, or a self-signed one for a lab.
//!
//! One rustls config serves HTTPS and TURN over TLS (on 443 and on `turn.listen_tls`), so the
//! ALPN list names both: a client that offers only `stun.turn` must still get a handshake.
//! Its certificate comes from a resolver app hands in (ops' `CertStore`, which reloads
//! certbot's files live), so this file needs nothing from ops.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use crate::config::tls::{load_pem_files, PemError};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("certificate and key do not work together: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(String),
}

/// The one rustls config every TLS listener shares (HTTPS and TURN over TLS), presenting
/// whatever certificate `certs` resolves to (app hands in ops' reloadable store).
pub fn server_config(
    certs: Arc<dyn rustls::server::ResolvesServerCert>,
    extra_alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"stun.turn".to_vec()];
    config
        .alpn_protocols
        .extend(extra_alpn.iter().map(|p| p.to_vec()));
    Ok(Arc::new(config))
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

    #[derive(Debug)]
    struct Fixed(Arc<rustls::sign::CertifiedKey>);

    impl rustls::server::ResolvesServerCert for Fixed {
        fn resolve(
            &self,
            _hello: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(Arc::clone(&self.0))
        }
    }

    #[test]
    fn self_signed_config_builds_and_offers_both_alpn_names() {
        let (chain, key) = self_signed("callbox.test").expect("cert");
        let signer = rustls::crypto::ring::sign::any_supported_type(&key).expect("key");
        let fixed = Fixed(Arc::new(rustls::sign::CertifiedKey::new(chain, signer)));
        let config = server_config(Arc::new(fixed), &[]).expect("builds");
        assert_eq!(config.alpn_protocols.len(), 2);
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

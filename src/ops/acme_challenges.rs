//! The answers to ACME challenges while an order is open, where the listeners find them: the
//! TLS-ALPN-01 certificate that the shared resolver ([`super::certs::CertStore`]) presents to a
//! client offering only `acme-tls/1` (RFC 8737), and the HTTP-01 key authorizations that
//! `server.http_redirect` serves under `/.well-known/acme-challenge/` (RFC 8555 §8.3).
//!
//! Both tables hold one entry per configured domain at most and are emptied when the order
//! ends, so a stranger cannot grow them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::server::ClientHello;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol of TLS-ALPN-01; normal clients never offer it.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Challenge answers for the order in progress (empty between orders).
#[derive(Debug, Default)]
pub struct Challenges {
    /// Lower-case DNS name -> self-signed certificate carrying the acmeIdentifier extension.
    tls_alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01 token -> key authorization.
    http: RwLock<HashMap<String, String>>,
}

impl crate::web::redirect::Http01 for Challenges {
    fn http(&self, token: &str) -> Option<String> {
        Challenges::http(self, token)
    }
}

/// A TLS-ALPN-01 certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the TLS-ALPN-01 certificate for {name}: {message}")]
pub struct ChallengeCertError {
    pub name: String,
    pub message: String,
}

impl Challenges {
    /// The certificate to present for a TLS-ALPN-01 handshake naming `name`.
    pub fn tls_alpn(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let table = self.tls_alpn.read().unwrap_or_else(|p| p.into_inner());
        table.get(&name.to_ascii_lowercase()).cloned()
    }

    /// The key authorization to answer for an HTTP-01 `token`.
    pub fn http(&self, token: &str) -> Option<String> {
        let table = self.http.read().unwrap_or_else(|p| p.into_inner());
        table.get(token).cloned()
    }

    /// Presents a certificate for `name` proving `digest` (SHA-256 of the key authorization).
    pub fn set_tls_alpn(&self, name: &str, digest: &[u8]) -> Result<(), ChallengeCertError> {
        let certified = challenge_cert(name, digest).map_err(|message| ChallengeCertError {
            name: name.to_string(),
            message,
        })?;
        let mut table = self.tls_alpn.write().unwrap_or_else(|p| p.into_inner());
        table.insert(name.to_ascii_lowercase(), Arc::new(certified));
        Ok(())
    }

    /// Answers `key_authorization` for `token` on the HTTP-01 path.
    pub fn set_http(&self, token: &str, key_authorization: &str) {
        let mut table = self.http.write().unwrap_or_else(|p| p.into_inner());
        table.insert(token.to_string(), key_authorization.to_string());
    }

    /// Forgets every answer (the order is over, successfully or not).
    pub fn clear(&self) {
        self.tls_alpn
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.http.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// True when the client offers `acme-tls/1`: the CA's validator, which offers nothing else.
pub fn wants_tls_alpn(hello: &ClientHello<'_>) -> bool {
    hello
        .alpn()
        .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN))
}

/// RFC 8737 §3: a certificate for exactly `name`, with the critical acmeIdentifier extension
/// holding the digest. Its key is thrown away with the order.
fn challenge_cert(name: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_string()]).map_err(|err| err.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|err| err.to_string())?;
    let cert = params.self_signed(&key).map_err(|err| err.to_string())?;
    let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    // Not CertifiedKey::from_der: its key check parses the certificate with webpki, which
    // rejects the critical acmeIdentifier extension it does not know.
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|err| err.to_string())?;
    Ok(CertifiedKey::new(chain, signing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_certificate_names_the_domain_and_carries_the_digest() {
        let challenges = Challenges::default();
        let digest = [7u8; 32];
        challenges
            .set_tls_alpn("Call.Example.com", &digest)
            .expect("cert");
        let certified = challenges.tls_alpn("call.example.com").expect("present");
        let (_, cert) =
            x509_parser::parse_x509_certificate(certified.cert[0].as_ref()).expect("x509");
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // The value is an OCTET STRING (tag 4, length 32) holding the digest.
        assert_eq!(&ext.value[..2], &[0x04, 32]);
        assert_eq!(&ext.value[2..], &digest);
        challenges.clear();
        assert!(challenges.tls_alpn("call.example.com").is_none());
    }

    #[test]
    fn http_tokens_answer_until_cleared() {
        let challenges = Challenges::default();
        challenges.set_http("tok", "tok.thumb");
        assert_eq!(challenges.http("tok").as_deref(), Some("tok.thumb"));
        assert!(challenges.http("other").is_none());
        challenges.clear();
        assert!(challenges.http("tok").is_none());
    }
}

//! The TLS-ALPN-01 side of the shared certificate resolver, without a CA: a client offering
//! only `acme-tls/1` (what a CA's validator does) negotiates it and gets the challenge
//! certificate for the name it asks for, and nothing at all for any other name or once the
//! order's answers are cleared; it never gets the real certificate.

mod acme_support;

use acme_support::{presented, WAIT};
use callbox::ops::acme_challenges::ACME_TLS_ALPN;
use rustls_pki_types::CertificateDer;

#[tokio::test]
async fn acme_tls_alpn_clients_get_the_challenge_certificate_for_their_name_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A "CA" that accepts and never answers: the first order hangs for the whole test, so it
    // neither fails (which would clear the answers) nor completes.
    let silent = acme_support::Forwarder::start().await;
    let text = format!(
        "[server]\npublic_host = \"call.example.com\"\nlisten = \"127.0.0.1:0\"\n\
         [metrics]\nlisten = \"\"\n[turn]\nenabled = false\n\
         [tls]\nenabled = true\nacme = {{ domains = [\"call.example.com\", \"www.example.com\"], \
         directory = \"https://{}/dir\", state_dir = {:?} }}\n",
        silent.addr,
        dir.path()
    );
    let config = callbox::config::Config::parse(&text).expect("config");
    let running = tokio::time::timeout(WAIT, callbox::app::start(config))
        .await
        .expect("start in time")
        .expect("start");
    let certs = running.certs.clone().expect("TLS on");
    let digest = [42u8; 32];
    certs
        .challenges()
        .set_tls_alpn("call.example.com", &digest)
        .expect("challenge certificate");

    let challenge = certs
        .challenges()
        .tls_alpn("call.example.com")
        .expect("set");
    let tls = connect_any(running.http_addr, "call.example.com", &[ACME_TLS_ALPN])
        .await
        .expect("validator handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(ACME_TLS_ALPN));
    assert_eq!(presented(&tls), challenge.cert[0]);
    // Another configured name has no answer up: the validator's handshake fails.
    assert!(
        connect_any(running.http_addr, "www.example.com", &[ACME_TLS_ALPN])
            .await
            .is_err()
    );
    // A browser for the same name gets the real (here: stand-in) certificate, not the challenge.
    let browser = connect_any(running.http_addr, "call.example.com", &[b"http/1.1"])
        .await
        .expect("browser handshake");
    assert_eq!(presented(&browser), certs.current().cert[0]);
    assert_ne!(presented(&browser), challenge.cert[0]);
    certs.challenges().clear();
    assert!(
        connect_any(running.http_addr, "call.example.com", &[ACME_TLS_ALPN])
            .await
            .is_err()
    );
    running.shutdown().await;
}

/// A handshake that accepts any certificate (what is presented is what the test checks).
async fn connect_any(
    addr: std::net::SocketAddr,
    name: &str,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from(name.to_string()).expect("name");
    tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

#[derive(Debug)]
struct AnyCert(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    // Not rustls::crypto::verify_tls1x_signature: it parses the certificate with webpki, which
    // refuses the challenge certificate's critical acmeIdentifier extension.
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

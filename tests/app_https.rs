//! The production listener: HTTPS from certbot-style PEM files, served by the in-process app.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn https_get(
    addr: std::net::SocketAddr,
    root: CertificateDer<'static>,
    path: &str,
) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).expect("trust test root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("call.example.com").expect("server name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: call.example.com\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.expect("read response");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn page_is_served_over_https_with_certbot_pem_files_and_a_strict_csp() {
    let certified = rcgen::generate_simple_self_signed(vec!["call.example.com".to_string()])
        .expect("generate certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("fullchain.pem");
    let key = dir.path().join("privkey.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key");
    let config = callbox::config::Config::parse(&format!(
        "[server]\npublic_host = \"call.example.com\"\nlisten = \"127.0.0.1:0\"\n\
         [tls]\nenabled = true\ncert = {cert:?}\nkey = {key:?}\n\
         [turn]\nenabled = false\n",
    ))
    .expect("config");
    let running = callbox::app::start(config).await.expect("start");
    assert_eq!(
        running.url,
        format!("https://call.example.com:{}/", running.http_addr.port())
    );

    let root = certified.cert.der().clone();
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        https_get(running.http_addr, root.clone(), "/r/team"),
    )
    .await
    .expect("response in time");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response
        .to_ascii_lowercase()
        .contains("content-security-policy: default-src 'none'"));
    assert!(response.contains("<!doctype html>"));

    let missing = https_get(running.http_addr, root, "/../../etc/passwd").await;
    assert!(
        missing.starts_with("HTTP/1.1 404") || missing.starts_with("HTTP/1.1 400"),
        "{missing}"
    );
    tokio::time::timeout(Duration::from_secs(5), running.shutdown())
        .await
        .expect("shutdown in time");
}

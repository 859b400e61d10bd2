//! The STUN/TURN half of `callbox selftest`: a Binding request on every listener (UDP, TCP,
//! TLS) and one real allocation over UDP with the credentials a login was handed.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use stun::message::Getter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;

use super::selftest::{connect, tls_connect, STEP};
use crate::config::Config;

/// A Binding request with a random transaction id.
fn binding_request() -> ([u8; 12], Vec<u8>) {
    let txid: [u8; 12] = rand::random();
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&txid);
    (txid, request)
}

/// "sees us as ADDR" from a Binding success response for `txid`.
fn mapped(response: &[u8], txid: &[u8; 12]) -> Result<String, String> {
    if response.len() < 20 || response[0..2] != [0x01, 0x01] || response[8..20] != txid[..] {
        return Err("not a Binding success response".into());
    }
    let mut msg = stun::message::Message::new();
    msg.raw = response.to_vec();
    msg.decode().map_err(|err| err.to_string())?;
    let mut xor = stun::xoraddr::XorMappedAddress::default();
    xor.get_from(&msg).map_err(|err| err.to_string())?;
    Ok(format!("answers, sees us as {}:{}", xor.ip, xor.port))
}

pub async fn stun_udp(server: SocketAddr) -> Result<String, String> {
    let any: SocketAddr = match server.is_ipv4() {
        true => "0.0.0.0:0".parse().map_err(|_| "address")?,
        false => "[::]:0".parse().map_err(|_| "address")?,
    };
    let socket = UdpSocket::bind(any).await.map_err(|err| err.to_string())?;
    let (txid, request) = binding_request();
    let mut buf = [0u8; 1024];
    // UDP may lose a datagram: three tries within the step.
    for _ in 0..3 {
        socket
            .send_to(&request, server)
            .await
            .map_err(|err| err.to_string())?;
        if let Ok(Ok(n)) = tokio::time::timeout(STEP / 3, socket.recv(&mut buf)).await {
            return mapped(&buf[..n], &txid);
        }
    }
    Err(format!("{server}: no answer (UDP blocked by a firewall?)"))
}

pub async fn stun_tcp(server: SocketAddr) -> Result<String, String> {
    stun_stream(connect(server).await?).await
}

pub async fn stun_tls(
    host: &str,
    server: SocketAddr,
    roots: &[CertificateDer<'static>],
) -> Result<String, String> {
    if roots.is_empty() {
        return Err("no configured certificate chain to verify against".into());
    }
    let tls = tls_connect(host, connect(server).await?, roots).await?;
    stun_stream(tls).await
}

/// Binding over a stream: STUN messages are self-delimiting (header length field).
async fn stun_stream<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> Result<String, String> {
    let (txid, request) = binding_request();
    let exchange = async {
        stream.write_all(&request).await?;
        let mut header = [0u8; 20];
        stream.read_exact(&mut header).await?;
        let len = u16::from_be_bytes([header[2], header[3]]) as usize;
        let mut body = vec![0u8; len.min(2048)];
        stream.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>([header.to_vec(), body].concat())
    };
    let response = tokio::time::timeout(STEP, exchange)
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|err| err.to_string())?;
    mapped(&response, &txid)
}

/// One allocation as a browser makes it; reports the relayed address.
pub async fn allocate(
    config: &Config,
    server: SocketAddr,
    username: &str,
    password: &str,
) -> Result<String, String> {
    let (username, password) = (username.to_string(), password.to_string());
    let any = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(any).await.map_err(|err| err.to_string())?;
    let client = turn::client::Client::new(turn::client::ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username,
        password,
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(socket),
        vnet: None,
    })
    .await
    .map_err(|err| err.to_string())?;
    client.listen().await.map_err(|err| err.to_string())?;
    let result = match tokio::time::timeout(STEP, client.allocate()).await {
        Err(_) => Err("no allocation in time".to_string()),
        Ok(Err(err)) => Err(format!("refused: {err}")),
        Ok(Ok(relay)) => {
            use webrtc_util::Conn;
            let relayed = relay.local_addr().map_err(|err| err.to_string())?;
            let _ = relay.close().await;
            let expected = config.turn.external_ip.into_iter();
            let mut expected: Vec<_> = expected.chain(config.turn.relay_ips.clone()).collect();
            expected.dedup();
            match expected.contains(&relayed.ip()) {
                true => Ok(format!("relayed address {relayed}")),
                false => Err(format!("relayed address {relayed} is not in {expected:?}")),
            }
        }
    };
    let _ = client.close().await;
    result
}

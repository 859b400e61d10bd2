//! The signaling half of `callbox selftest`: log in over `/ws` as a browser would and take the
//! TURN credentials from the login reply.
//!
//! TURN credentials allow new allocations only while the login they were handed to lives
//! (docs/turn.md, "Live logins"), so the selftest cannot mint its own from `turn.secrets`: it
//! holds a real login open for as long as it allocates, which also proves `/ws` and the
//! credential hand-out work from outside.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::selftest::{connect, tls_connect, STEP};
use crate::config::Config;

/// Any stream a WebSocket can run over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A logged-in selftest user: TURN credentials valid while `socket` stays open.
pub struct Login {
    pub username: String,
    pub password: String,
    pub socket: WebSocketStream<Box<dyn Io>>,
}

/// Logs in as a fresh `selftest-…` name on the default room.
pub async fn login(
    config: &Config,
    host: &str,
    addr: SocketAddr,
    roots: &[CertificateDer<'static>],
) -> Result<Login, String> {
    let tcp = connect(addr).await?;
    let (stream, scheme): (Box<dyn Io>, _) = match config.tls.enabled {
        true => (Box::new(tls_connect(host, tcp, roots).await?), "wss"),
        false => (Box::new(tcp), "ws"),
    };
    let url = format!("{scheme}://{host}:{}/ws", addr.port());
    let handshake = tokio_tungstenite::client_async(url.as_str(), stream);
    let (mut socket, _) = tokio::time::timeout(STEP, handshake)
        .await
        .map_err(|_| format!("{url}: no WebSocket upgrade in time"))?
        .map_err(|err| format!("{url}: {err}"))?;
    let name = format!("selftest-{:08x}", rand::random::<u32>());
    let mut request = serde_json::json!({"type": "login", "name": name});
    if let Some(code) = config
        .signaling
        .access_code
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        request["access_code"] = code.into();
    }
    socket
        .send(Message::text(request.to_string()))
        .await
        .map_err(|err| format!("{url}: {err}"))?;
    let reply = tokio::time::timeout(STEP, login_reply(&mut socket))
        .await
        .map_err(|_| format!("{url}: no login reply in time"))??;
    let server = &reply["iceServers"][0];
    match (server["username"].as_str(), server["credential"].as_str()) {
        (Some(username), Some(password)) => Ok(Login {
            username: username.to_string(),
            password: password.to_string(),
            socket,
        }),
        _ => Err(format!(
            "{url}: the login reply carries no TURN credentials"
        )),
    }
}

/// The first `login` message, refused with its reason if it says so.
async fn login_reply(
    socket: &mut WebSocketStream<Box<dyn Io>>,
) -> Result<serde_json::Value, String> {
    while let Some(frame) = socket.next().await {
        let text = match frame.map_err(|err| err.to_string())? {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if value["type"] != "login" {
            continue;
        }
        return match value["success"].as_bool() {
            Some(true) => Ok(value),
            _ => Err(format!("login refused: {}", value["reason"])),
        };
    }
    Err("the server closed the WebSocket before answering the login".into())
}

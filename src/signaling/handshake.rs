//! The WebSocket opening handshake (RFC 6455, 4.2), done here rather than by axum's
//! `WebSocketUpgrade`: that one hands over a tungstenite `WebSocket` that owns the socket,
//! and with it tungstenite's writer and the buffer it keeps. Here the upgraded stream comes
//! out raw (hyper's upgrade), so the relay reads with tungstenite and writes its own frames
//! ([`super::wire`]). The checks and refusals are axum's: 405 for a method other than GET,
//! 400 for a missing or wrong `Connection`, `Upgrade`, `Sec-WebSocket-Version` or
//! `Sec-WebSocket-Key`, 426 when the connection cannot be upgraded.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Version};
use axum::response::{IntoResponse, Response};

/// The one subprotocol the relay speaks, chosen when the client offers it.
const PROTOCOL: &str = "json";

/// A valid upgrade request, not yet answered.
pub struct Handshake {
    accept: HeaderValue,
    protocol: bool,
    pub on_upgrade: hyper::upgrade::OnUpgrade,
}

impl Handshake {
    /// Checks `req` is a WebSocket upgrade this server can take; a refusal otherwise.
    pub fn check(req: &mut Request<Body>) -> Result<Handshake, Refusal> {
        if req.version() > Version::HTTP_11 {
            // The web listener serves HTTP/1.1 only; RFC 8441's CONNECT is not offered.
            return Err(refuse(StatusCode::BAD_REQUEST, "WebSocket needs HTTP/1.1"));
        }
        if req.method() != Method::GET {
            return Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request method must be `GET`",
            ));
        }
        let headers = req.headers();
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Connection header did not include 'upgrade'",
            ));
        }
        if !has_token(headers, header::UPGRADE, "websocket") {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "`Upgrade` header did not include 'websocket'",
            ));
        }
        let version = headers.get(header::SEC_WEBSOCKET_VERSION);
        if version.is_none_or(|v| v.as_bytes() != b"13") {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Version` header did not include '13'",
            ));
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Key` header missing",
            ));
        };
        let accept = accept_key(key.as_bytes());
        let protocol = offers(headers, PROTOCOL);
        let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(refuse(
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket request couldn't be upgraded since no upgrade state was present",
            ));
        };
        Ok(Handshake {
            accept,
            protocol,
            on_upgrade,
        })
    }

    /// The 101 response that completes the handshake once hyper has sent it.
    pub fn response(&self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept.clone());
        if self.protocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(PROTOCOL),
            );
        }
        response
    }
}

/// Why an upgrade request was refused, as the response it gets.
#[derive(Debug)]
pub struct Refusal(StatusCode, &'static str);

impl Refusal {
    #[cfg(test)]
    fn status(&self) -> StatusCode {
        self.0
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

fn refuse(status: StatusCode, why: &'static str) -> Refusal {
    Refusal(status, why)
}

/// `Sec-WebSocket-Accept` for a client's key (RFC 6455 §4.2.2), as tungstenite derives it.
fn accept_key(key: &[u8]) -> HeaderValue {
    let encoded = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
    // Base64 is always a valid header value; the fallback only satisfies the type.
    HeaderValue::from_str(&encoded).unwrap_or(HeaderValue::from_static(""))
}

/// A comma-separated header (any of its lines) lists `token`, case-insensitively.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// The client offers subprotocol `name` (subprotocol names are case-sensitive).
fn offers(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .any(|value| {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|p| p.trim_ascii() == name.as_bytes())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request<Body> {
        let mut builder = Request::get("/ws");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).expect("request")
    }

    const UPGRADE: [(&str, &str); 4] = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn the_accept_key_is_the_rfcs_example() {
        // RFC 6455, 1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn a_request_without_upgrade_state_is_refused_with_426() {
        // Built outside hyper, it has no upgrade to take over.
        let refused = Handshake::check(&mut request(&UPGRADE)).err();
        assert_eq!(
            refused.map(|r| r.status()),
            Some(StatusCode::UPGRADE_REQUIRED)
        );
    }

    #[test]
    fn missing_or_wrong_headers_are_refused_as_axum_did() {
        for skip in 0..UPGRADE.len() {
            let headers: Vec<_> = (0..UPGRADE.len())
                .filter(|&i| i != skip)
                .map(|i| UPGRADE[i])
                .collect();
            let refused = Handshake::check(&mut request(&headers)).err();
            assert_eq!(refused.map(|r| r.status()), Some(StatusCode::BAD_REQUEST));
        }
        let mut post = request(&UPGRADE);
        *post.method_mut() = Method::POST;
        let refused = Handshake::check(&mut post).err();
        assert_eq!(
            refused.map(|r| r.status()),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
    }

    #[test]
    fn the_json_subprotocol_is_found_in_any_offer() {
        let offered = request(&[("sec-websocket-protocol", "chat, json")]);
        assert!(offers(offered.headers(), "json"));
        let other = request(&[("sec-websocket-protocol", "JSON, jsonx")]);
        assert!(!offers(other.headers(), "json"));
        assert!(has_token(
            request(&UPGRADE).headers(),
            header::CONNECTION,
            "upgrade"
        ));
    }
}

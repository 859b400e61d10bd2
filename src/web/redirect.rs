//! `[server] http_redirect`: the plain-HTTP listener (port 80). It sends every request to the
//! same path on `https://public_host/`, and, while an ACME order uses HTTP-01, answers the CA
//! under `/.well-known/acme-challenge/TOKEN` with the key authorization.
//!
//! It runs on the main listener's own accept loop ([`super::server::serve`] without TLS), so
//! it has the same connection cap, per-address cap and phase deadlines, counted separately.
//! The Location is built from the configured host, never from the request's Host header, so
//! the listener cannot be used to redirect anywhere else.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use axum::Router;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;

/// Where the listener finds HTTP-01 answers while an ACME order is open (ops' ACME client
/// implements it; the web layer does not know ACME).
pub trait Http01: Send + Sync {
    /// The key authorization to answer for `token`, if an order is waiting for it.
    fn http(&self, token: &str) -> Option<String>;
}

/// Where HTTP-01 tokens are asked for (RFC 8555 §8.3).
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The redirect listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind server.http_redirect {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Binds `server.http_redirect` (if set) and serves it until `shutdown`; returns the bound
/// address. `https_port` is the main listener's, `challenges` the ACME answers (with TLS).
pub async fn start(
    config: &Config,
    https_port: u16,
    challenges: Option<Arc<dyn Http01>>,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<Option<SocketAddr>, BindError> {
    let Some(addr) = config.server.http_redirect else {
        return Ok(None);
    };
    let bind_error = |source| BindError { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let origin = https_origin(&config.server.public_host, https_port);
    tasks.spawn(super::server::serve(
        listener,
        router(origin, challenges),
        None,
        None,
        super::limits::Settings::new(&config.server),
        shutdown.clone(),
        tasks.clone(),
    ));
    tracing::info!(%bound, "redirecting plain HTTP to HTTPS");
    Ok(Some(bound))
}

/// Every path: the challenge answer if it is one, else a permanent redirect to `origin`.
pub fn router(origin: String, challenges: Option<Arc<dyn Http01>>) -> Router {
    let origin: Arc<str> = origin.into();
    Router::new().fallback(move |request: Request<Body>| {
        let origin = Arc::clone(&origin);
        let challenges = challenges.clone();
        async move { answer(&origin, challenges.as_deref(), &request) }
    })
}

fn answer(
    origin: &str,
    challenges: Option<&dyn Http01>,
    request: &Request<Body>,
) -> Response<Body> {
    let path = request.uri().path();
    if let Some(token) = path.strip_prefix(CHALLENGE_PREFIX) {
        let found = challenges.and_then(|c| c.http(token));
        return match found {
            Some(key_authorization) => plain(StatusCode::OK, key_authorization),
            None => plain(StatusCode::NOT_FOUND, "no such challenge\n".into()),
        };
    }
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    // An absolute-form or "*" target has no path of ours; send it to the front page.
    let target = if target.starts_with('/') { target } else { "/" };
    // 301 is what every client follows for GET; 308 keeps the method and body of the rest.
    let status = match *request.method() {
        Method::GET | Method::HEAD => StatusCode::MOVED_PERMANENTLY,
        _ => StatusCode::PERMANENT_REDIRECT,
    };
    let mut response = plain(status, String::new());
    match HeaderValue::try_from(format!("{origin}{target}")) {
        Ok(location) => {
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => plain(StatusCode::BAD_REQUEST, "bad request target\n".into()),
    }
}

fn plain(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `https://host[:port]`, the port left out when it is 443, IPv6 addresses in brackets.
pub fn https_origin(public_host: &str, port: u16) -> String {
    let host = public_host.trim();
    let host = match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{host}]"),
        Err(_) => host.to_string(),
    };
    match port {
        443 => format!("https://{host}"),
        _ => format!("https://{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn get(router: &Router, method: Method, uri: &str) -> Response<Body> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let Ok(response) = router.clone().oneshot(request).await;
        response
    }

    async fn body(response: Response<Body>) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn requests_go_to_the_same_path_on_the_public_https_origin() {
        let router = router(https_origin("call.example.com", 443), None);
        let response = get(&router, Method::GET, "/room/abc?x=1").await;
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://call.example.com/room/abc?x=1"
        );
        let response = get(&router, Method::POST, "http://evil.example/steal").await;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://call.example.com/steal"
        );
        assert_eq!(https_origin("::1", 8443), "https://[::1]:8443");
    }

    /// One waiting token, as an open order has it.
    struct OneToken;
    impl Http01 for OneToken {
        fn http(&self, token: &str) -> Option<String> {
            (token == "tok123").then(|| "tok123.thumbprint".to_string())
        }
    }

    #[tokio::test]
    async fn a_challenge_token_answers_its_key_authorization_and_others_are_not_found() {
        let router = router(
            https_origin("call.example.com", 443),
            Some(Arc::new(OneToken)),
        );
        let response = get(&router, Method::GET, "/.well-known/acme-challenge/tok123").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, "tok123.thumbprint");
        let response = get(&router, Method::GET, "/.well-known/acme-challenge/other").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}

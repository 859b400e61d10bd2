//! The web client, embedded into the binary so an install is one file.
//!
//! `/` is the lobby, `/r/<room>` another room; both serve the same page, which reads the room
//! from its URL. The security headers (CSP and the rest) are set on every response by
//! [`super::headers`], around the whole router.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

pub fn router() -> Router {
    Router::new()
        .route("/", get(page))
        .route("/r/{room}", get(page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/{*path}", get(asset))
}

async fn page() -> Response {
    serve("index.html")
}

async fn asset(Path(path): Path<String>) -> Response {
    serve(&path)
}

fn serve(path: &str) -> Response {
    let Some(file) = Assets::get(path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut response = file.data.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(mime.as_ref()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

//! Security headers on every response the router makes: the page, assets, 404s, and the
//! signaling relay's refusals (403, 429...). They are applied once, around the whole router, so
//! a new route or error path cannot forget them.
//!
//! The page runs only its own scripts (CSP), so text from other people can never become code;
//! no other site may frame it (clickjacking a call's camera prompt); no URL (room names) leaks
//! in a Referer; and with TLS, browsers stop trying plain HTTP first (HSTS).

use axum::http::{header, HeaderMap, HeaderValue};

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       media-src 'self' blob: mediastream:; connect-src 'self'; \
                       manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One year, as HSTS preload lists expect; only sent over TLS (RFC 6797 §7.2).
pub const HSTS: &str = "max-age=31536000";

pub const PERMISSIONS_POLICY: &str = "camera=(self), microphone=(self), display-capture=(self)";

/// Sets every security header on `headers` (replacing any a handler set).
pub fn apply(headers: &mut HeaderMap, tls: bool) {
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static(PERMISSIONS_POLICY),
    );
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_is_sent_only_over_tls() {
        let mut plain = HeaderMap::new();
        apply(&mut plain, false);
        assert!(plain.get(header::STRICT_TRANSPORT_SECURITY).is_none());
        assert_eq!(plain[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let mut tls = HeaderMap::new();
        apply(&mut tls, true);
        assert_eq!(tls[header::STRICT_TRANSPORT_SECURITY], HSTS);
        assert!(tls[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
    }
}

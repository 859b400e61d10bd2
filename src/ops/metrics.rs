//! Prometheus metrics on their own listener (`[metrics] listen`, loopback by default, so they
//! are not on the public port), in the text exposition format written by hand: it is a few
//! `name value` lines. Labels never carry user names or addresses, only fixed words.
//!
//! Also `/readyz` for the public router: 200 while serving, 503 once shutdown has begun, so a
//! load balancer or uptime check stops sending people here before connections close.

use std::fmt::Write;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use super::stats::{Snapshot, Sources};

/// `GET /metrics` over `sources`.
pub fn router(sources: Arc<Sources>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let sources = Arc::clone(&sources);
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render(&sources.snapshot()),
                )
            }
        }),
    )
}

/// `GET /readyz`: "ok", or 503 "shutting down".
pub fn readyz_router(shutdown: CancellationToken) -> Router {
    Router::new().route(
        "/readyz",
        get(move || {
            let stopping = shutdown.is_cancelled();
            async move {
                match stopping {
                    true => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
                    false => "ok\n".into_response(),
                }
            }
        }),
    )
}

/// One metric family: HELP and TYPE lines, then its samples (`labels`, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        match labels.is_empty() {
            true => {
                let _ = writeln!(out, "{name} {value}");
            }
            false => {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    }
}

/// A counter family with one label whose values come from a fixed vocabulary.
fn labelled(out: &mut String, (name, label): (&str, &str), help: &str, counts: &[(&str, u64)]) {
    let labels: Vec<String> = counts
        .iter()
        .map(|(value, _)| format!("{label}=\"{value}\""))
        .collect();
    let samples: Vec<(&str, u64)> = labels
        .iter()
        .zip(counts)
        .map(|(l, (_, n))| (l.as_str(), *n))
        .collect();
    family(out, name, "counter", help, &samples);
}

/// The text format for one snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, v: usize| {
        family(out, name, "gauge", help, &[("", v as u64)])
    };
    let version = concat!("version=\"", env!("CARGO_PKG_VERSION"), "\"");
    family(
        &mut out,
        "callbox_build_info",
        "gauge",
        "The running version.",
        &[(version, 1)],
    );
    gauge(
        &mut out,
        "callbox_websocket_connections",
        "Open signaling WebSockets.",
        s.hub.connections,
    );
    gauge(
        &mut out,
        "callbox_users_logged_in",
        "Users logged in, all rooms.",
        s.hub.users,
    );
    gauge(
        &mut out,
        "callbox_rooms",
        "Rooms with at least one user.",
        s.hub.rooms,
    );
    gauge(
        &mut out,
        "callbox_calls",
        "Calls in progress (pairs of users).",
        s.hub.calls,
    );
    let t = &s.tallies;
    labelled(
        &mut out,
        ("callbox_signaling_messages_total", "type"),
        "Client messages understood, by type.",
        &t.messages,
    );
    labelled(
        &mut out,
        ("callbox_signaling_errors_total", "code"),
        "Error frames sent to clients, by code.",
        &t.errors,
    );
    labelled(
        &mut out,
        ("callbox_signaling_refusals_total", "reason"),
        "WebSockets refused (foreign Origin, per-address cap), closed for flooding, and logins \
         refused during access-code back-off.",
        &t.refused,
    );
    if let Some(turn) = &s.turn {
        gauge(
            &mut out,
            "callbox_turn_allocations",
            "TURN allocations.",
            turn.allocations,
        );
        gauge(
            &mut out,
            "callbox_turn_clients",
            "TURN client transports served.",
            turn.clients,
        );
        let [bytes_out, packets_out, bytes_in, packets_in] = s.relayed;
        let each_way = |to: u64, from: u64| {
            [
                ("direction=\"to_peer\"", to),
                ("direction=\"from_peer\"", from),
            ]
        };
        family(
            &mut out,
            "callbox_turn_relayed_bytes_total",
            "counter",
            "Bytes relayed, by direction.",
            &each_way(bytes_out, bytes_in),
        );
        family(
            &mut out,
            "callbox_turn_relayed_packets_total",
            "counter",
            "Datagrams relayed, by direction.",
            &each_way(packets_out, packets_in),
        );
        family(
            &mut out,
            "callbox_turn_refusals_total",
            "counter",
            "TURN requests refused: 401 credentials, 403 peer policy, 440 address family, \
             486 per-user quota, 508 server quota.",
            &[
                ("code=\"401\"", turn.refused_401),
                ("code=\"403\"", turn.refused_403),
                ("code=\"440\"", turn.refused_440),
                ("code=\"486\"", turn.refused_486),
                ("code=\"508\"", turn.refused_508),
            ],
        );
        gauge(
            &mut out,
            "callbox_turn_permissions",
            "TURN permissions held, all allocations.",
            t.permissions as usize,
        );
        gauge(
            &mut out,
            "callbox_turn_channels",
            "TURN channel bindings held, all allocations.",
            t.channels as usize,
        );
        labelled(
            &mut out,
            ("callbox_turn_peer_refusals_total", "reason"),
            "403 answers to CreatePermission/ChannelBind, by peer-policy reason.",
            &t.peer_refusals,
        );
        labelled(
            &mut out,
            ("callbox_turn_quota_refusals_total", "quota"),
            "486/508 answers, by the quota or per-allocation cap reached.",
            &t.quota_refusals,
        );
        family(
            &mut out,
            "callbox_turn_clients_refused_total",
            "counter",
            "TURN client transports refused at turn.max_clients.",
            &[("", turn.clients_refused)],
        );
        family(
            &mut out,
            "callbox_turn_unauthenticated_dropped_total",
            "counter",
            "Unauthenticated TURN requests dropped by the rate limiter.",
            &[("", turn.unauth_dropped)],
        );
    }
    if let Some(not_after) = s.cert_not_after {
        family(
            &mut out,
            "callbox_tls_certificate_expiry_timestamp_seconds",
            "gauge",
            "When the certificate in use expires (unix time).",
            &[("", not_after.max(0) as u64)],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn readyz_answers_503_once_shutdown_began() {
        let shutdown = CancellationToken::new();
        let request = || axum::http::Request::get("/readyz").body(axum::body::Body::empty());
        let router = readyz_router(shutdown.clone());
        let ok = router.clone().oneshot(request().expect("request")).await;
        assert_eq!(ok.expect("response").status(), StatusCode::OK);
        shutdown.cancel();
        let stopping = router.oneshot(request().expect("request")).await;
        assert_eq!(
            stopping.expect("response").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn every_relayed_type_and_error_code_has_its_own_label() {
        use crate::counters::SIGNALING;
        use crate::signaling::protocol::{relayed_types, ErrorCode};
        let types = &SIGNALING.received.names;
        for kind in relayed_types().chain(["login", "message"]) {
            assert!(types.contains(&kind), "{kind} would count as other");
        }
        let codes = [
            ErrorCode::InvalidJson,
            ErrorCode::NotAnObject,
            ErrorCode::MissingType,
            ErrorCode::UnknownType,
            ErrorCode::MissingTarget,
            ErrorCode::NotLoggedIn,
            ErrorCode::UnknownTarget,
            ErrorCode::ForbiddenType,
            ErrorCode::TooLong,
            ErrorCode::RateLimited,
            ErrorCode::Replaced,
        ];
        for code in codes {
            assert!(SIGNALING.errors.names.contains(&code.as_str()), "{code:?}");
        }
    }

    #[test]
    fn every_sample_line_is_name_labels_value() {
        let text = render(&Snapshot {
            turn: Some(Default::default()),
            cert_not_after: Some(1_900_000_000),
            ..Snapshot::default()
        });
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("name and value");
            assert!(value.parse::<u64>().is_ok(), "{line}");
            assert!(name.starts_with("callbox_"), "{line}");
        }
        assert!(text.contains("callbox_tls_certificate_expiry_timestamp_seconds 1900000000\n"));
        assert!(text.contains("callbox_turn_refusals_total{code=\"403\"} 0\n"));
    }
}

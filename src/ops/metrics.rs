//! Prometheus metrics on their own listener (`[metrics] listen`, loopback by default, so they
//! are not on the public port), in the text exposition format written by hand: it is a few
//! `name value` lines. Labels never carry user names or addresses, only fixed words.
//!
//! Also `/readyz` for the public router: 200 while serving, 503 once shutdown has begun, so a
//! load balancer or uptime check stops sending people here before connections close.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::stats::{Snapshot, Sources};
use crate::config::{ConfigError, MetricsConfig};

/// Binds `[metrics] listen` and serves `/metrics` there until `shutdown`. A port that cannot be
/// bound is logged and skipped: the figures must never be the reason calls do not start.
pub async fn listen(
    config: &MetricsConfig,
    sources: &Arc<Sources>,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(addr) = config.listen_addr()? else {
        return Ok(None);
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("metrics.listen {addr}: cannot bind ({err}); metrics are off");
            return Ok(None);
        }
    };
    let bound = listener.local_addr().ok();
    let router = router(Arc::clone(sources));
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(err) = served {
            tracing::warn!("metrics listener stopped: {err}");
        }
    });
    tracing::info!(addr = ?bound, "metrics at /metrics");
    Ok(bound)
}

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

/// A gauge: one unlabelled sample.
fn gauge(out: &mut String, name: &str, help: &str, v: usize) {
    family(out, name, "gauge", help, &[("", v as u64)]);
}

/// The text format for one snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    build_and_presence(&mut out, s);
    signaling(&mut out, s);
    if s.turn.is_some() {
        turn_use(&mut out, s);
        turn_refusals(&mut out, s);
    }
    certificate(&mut out, s);
    out
}

/// The version, and who is connected, logged in and in a call.
fn build_and_presence(out: &mut String, s: &Snapshot) {
    let version = concat!("version=\"", env!("CARGO_PKG_VERSION"), "\"");
    family(
        out,
        "callbox_build_info",
        "gauge",
        "The running version.",
        &[(version, 1)],
    );
    gauge(
        out,
        "callbox_websocket_connections",
        "Open signaling WebSockets.",
        s.hub.connections,
    );
    gauge(
        out,
        "callbox_users_logged_in",
        "Users logged in, all rooms.",
        s.hub.users,
    );
    gauge(
        out,
        "callbox_rooms",
        "Rooms with at least one user.",
        s.hub.rooms,
    );
    gauge(
        out,
        "callbox_calls",
        "Calls in progress (pairs of users).",
        s.hub.calls,
    );
}

/// Client messages, error frames and refusals on the signaling side.
fn signaling(out: &mut String, s: &Snapshot) {
    let t = &s.tallies;
    labelled(
        out,
        ("callbox_signaling_messages_total", "type"),
        "Client messages understood, by type.",
        &t.messages,
    );
    labelled(
        out,
        ("callbox_signaling_errors_total", "code"),
        "Error frames sent to clients, by code.",
        &t.errors,
    );
    labelled(
        out,
        ("callbox_signaling_refusals_total", "reason"),
        "WebSockets refused (foreign Origin, per-address cap), closed for flooding, and logins \
         refused during access-code back-off.",
        &t.refused,
    );
}

/// What TURN holds and has relayed (with TURN on).
fn turn_use(out: &mut String, s: &Snapshot) {
    let Some(turn) = &s.turn else { return };
    gauge(
        out,
        "callbox_turn_allocations",
        "TURN allocations.",
        turn.allocations,
    );
    gauge(
        out,
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
        out,
        "callbox_turn_relayed_bytes_total",
        "counter",
        "Bytes relayed, by direction.",
        &each_way(bytes_out, bytes_in),
    );
    family(
        out,
        "callbox_turn_relayed_packets_total",
        "counter",
        "Datagrams relayed, by direction.",
        &each_way(packets_out, packets_in),
    );
    gauge(
        out,
        "callbox_turn_permissions",
        "TURN permissions held, all allocations.",
        s.tallies.permissions as usize,
    );
    gauge(
        out,
        "callbox_turn_channels",
        "TURN channel bindings held, all allocations.",
        s.tallies.channels as usize,
    );
}

/// What TURN refused, by answer code and reason (with TURN on).
fn turn_refusals(out: &mut String, s: &Snapshot) {
    let Some(turn) = &s.turn else { return };
    let t = &s.tallies;
    family(
        out,
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
    labelled(
        out,
        ("callbox_turn_peer_refusals_total", "reason"),
        "403 answers to CreatePermission/ChannelBind, by peer-policy reason.",
        &t.peer_refusals,
    );
    labelled(
        out,
        ("callbox_turn_quota_refusals_total", "quota"),
        "486/508 answers, by the quota or per-allocation cap reached.",
        &t.quota_refusals,
    );
    family(
        out,
        "callbox_turn_clients_refused_total",
        "counter",
        "TURN client transports refused at turn.max_clients.",
        &[("", turn.clients_refused)],
    );
    family(
        out,
        "callbox_turn_unauthenticated_dropped_total",
        "counter",
        "Unauthenticated TURN requests dropped by the rate limiter.",
        &[("", turn.unauth_dropped)],
    );
}

/// When the certificate in use expires (with TLS on).
fn certificate(out: &mut String, s: &Snapshot) {
    if let Some(not_after) = s.cert_not_after {
        family(
            out,
            "callbox_tls_certificate_expiry_timestamp_seconds",
            "gauge",
            "When the certificate in use expires (unix time).",
            &[("", not_after.max(0) as u64)],
        );
    }
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

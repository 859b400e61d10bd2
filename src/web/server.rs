//! The public listener: accepts TCP, does the TLS handshake off the accept loop, and hands each
//! connection to hyper (page and `/ws`) or, when its first byte after the handshake looks like
//! STUN (0x00-0x3F; HTTP starts with a letter), to the TURN server. One open port (443) then
//! serves networks that allow nothing else.
//!
//! It must stay up when one host misbehaves, so every connection holds a slot of
//! `max_connections` and a share of its address's cap from accept until it closes (WebSocket
//! and TURN streams included), and every phase before useful work has a deadline
//! ([`super::limits`]). HTTP is HTTP/1.1 only: the ALPN list offers no "h2", and HTTP/2 by
//! prior knowledge would bring streams and pings that none of these limits count.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::io::{Holding, Prefixed, ReadBurst, WriteDeadline};
use super::limits::{Backoff, ConnectionSlot, Settings, MAX_HTTP_BUFFER};
use super::per_address::{OverCap, PerAddress, REPORT_EVERY};

/// A byte stream of any kind (TCP, TLS), boxed so the TURN server can take it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type BoxedIo = Box<dyn Io>;

/// Takes a stream whose first byte says it is STUN/TURN, with that byte still unread, with the
/// client's address and the local address it connected to.
pub type Divert = Arc<dyn Fn(BoxedIo, SocketAddr, SocketAddr) + Send + Sync>;

/// Accepts until `shutdown`, within the limits in `settings`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    divert: Option<Divert>,
    settings: Settings,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let mut gate = Gate {
        limit: Arc::new(Semaphore::new(settings.max_connections.max(1))),
        backoff: Backoff::default(),
        full_reported: None,
    };
    let per_address = PerAddress::new(settings.max_connections_per_address);
    let acceptor = tls.map(TlsAcceptor::from);
    while let Some((permit, tcp, peer)) = gate.admit(&listener, &shutdown).await {
        let address = match per_address.acquire(peer.ip(), Instant::now()) {
            Ok(address) => address,
            Err(over) => {
                log_refusal(peer, &over);
                // Closing at once: the client sees its connection accepted and then closed.
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            router: router.clone(),
            acceptor: acceptor.clone(),
            divert: divert.clone(),
            settings: settings.clone(),
            shutdown: shutdown.clone(),
            peer,
        };
        let slot = ConnectionSlot::new(permit, address);
        tasks.spawn(connection.run(tcp, slot));
    }
    tracing::debug!("HTTP listener stopped accepting");
}

/// The accept side: one slot of `max_connections` per accepted socket.
struct Gate {
    limit: Arc<Semaphore>,
    backoff: Backoff,
    full_reported: Option<Instant>,
}

impl Gate {
    /// The next client with its slot, or None on shutdown. A full listener leaves new clients
    /// in the kernel's accept queue until a slot frees; accept errors back off.
    async fn admit(
        &mut self,
        listener: &TcpListener,
        shutdown: &CancellationToken,
    ) -> Option<(OwnedSemaphorePermit, TcpStream, SocketAddr)> {
        if self.limit.available_permits() == 0 && due(&mut self.full_reported) {
            tracing::warn!("web listener: all connections in use; new clients wait");
        }
        let permit = tokio::select! {
            permit = Arc::clone(&self.limit).acquire_owned() => permit.ok()?,
            _ = shutdown.cancelled() => return None,
        };
        let (tcp, peer) =
            crate::net::accept(listener, &mut self.backoff, "web listener", shutdown).await?;
        Some((permit, tcp, peer))
    }
}

fn log_refusal(peer: SocketAddr, over: &OverCap) {
    match over.report {
        Some(count) => tracing::warn!(
            %peer,
            "web listener: refused {count} connection(s) over \
             server.max_connections_per_address = {} (latest from {})",
            over.cap,
            over.key
        ),
        None => tracing::debug!(%peer, "web listener: refused, address over its cap"),
    }
}

struct Connection {
    router: Router,
    acceptor: Option<TlsAcceptor>,
    divert: Option<Divert>,
    settings: Settings,
    shutdown: CancellationToken,
    peer: SocketAddr,
}

impl Connection {
    async fn run(self, tcp: TcpStream, slot: ConnectionSlot) {
        // Without its local address the socket is already broken; nothing to serve.
        let Ok(local) = tcp.local_addr() else { return };
        let Some(acceptor) = self.acceptor.clone() else {
            let deadline = Instant::now() + self.settings.request_header_timeout;
            return self.serve_http(tcp, slot, deadline).await;
        };
        let peer = self.peer;
        let handshake = self.settings.handshake_timeout;
        let mut tls = match self.within(handshake, acceptor.accept(tcp)).await {
            Some(Ok(tls)) => tls,
            Some(Err(err)) => return tracing::debug!(%peer, "TLS handshake failed: {err}"),
            None => return tracing::debug!(%peer, "TLS handshake not done within {handshake:?}"),
        };
        let deadline = Instant::now() + self.settings.request_header_timeout;
        let mut first = [0u8; 1];
        match self
            .within(self.settings.request_header_timeout, tls.read(&mut first))
            .await
        {
            Some(Ok(1)) => {}
            Some(_) => return,
            None => return tracing::debug!(%peer, "no first byte within the header deadline"),
        }
        let stream = Prefixed::new(first[0], tls);
        match (&self.divert, first[0]) {
            (Some(divert), 0x00..=0x3f) => {
                divert(Box::new(Holding::new(stream, slot)), peer, local)
            }
            _ => self.serve_http(stream, slot, deadline).await,
        }
    }

    /// `future`, unless `limit` passes or the server shuts down first.
    async fn within<F: Future>(&self, limit: Duration, future: F) -> Option<F::Output> {
        tokio::select! {
            output = tokio::time::timeout(limit, future) => output.ok(),
            _ = self.shutdown.cancelled() => None,
        }
    }

    /// HTTP/1.1 with upgrades. The first complete request header must arrive by
    /// `first_request_by`; later ones within `keep_alive_idle` of the previous response
    /// (hyper's header read timeout, which restarts whenever the connection goes idle); and a
    /// response the client does not read for `keep_alive_idle` ends the connection. An
    /// upgraded WebSocket keeps that write deadline (the relay's pong timeout and bounded
    /// outbound queue usually end a stuck client first).
    async fn serve_http<S: Io + 'static>(
        self,
        stream: S,
        slot: ConnectionSlot,
        first_request_by: Instant,
    ) {
        let peer = self.peer;
        let router = self.router;
        let tls = self.acceptor.is_some();
        let seen = Arc::new(AtomicBool::new(false));
        let seen_by_service = Arc::clone(&seen);
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            seen_by_service.store(true, Ordering::Relaxed);
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(slot.clone());
            let router = router.clone();
            async move {
                let Ok(mut response) = router.oneshot(req).await;
                super::headers::apply(response.headers_mut(), tls);
                Ok::<_, Infallible>(response)
            }
        });
        let idle = self.settings.keep_alive_idle;
        // An upgraded WebSocket reads through ReadBurst: no read buffer held while idle.
        let io = TokioIo::new(ReadBurst::new(WriteDeadline::new(stream, idle)));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(idle)
            .max_buf_size(MAX_HTTP_BUFFER)
            .serve_connection(io, service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, "HTTP connection ended: {err}");
                }
            }
            _ = first_request_missed(&seen, first_request_by) => {
                tracing::debug!(%peer, "no complete request header in time; closing");
            }
            _ = self.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(self.settings.shutdown_drain, conn).await;
            }
        }
    }
}

/// True at most once per [`REPORT_EVERY`], so a full listener is logged, not flooded.
fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    match last {
        Some(at) if now.saturating_duration_since(*at) < REPORT_EVERY => false,
        _ => {
            *last = Some(now);
            true
        }
    }
}

/// Resolves at `deadline` if no request has reached the service by then; never otherwise.
async fn first_request_missed(seen: &AtomicBool, deadline: Instant) {
    tokio::time::sleep_until(deadline.into()).await;
    if seen.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
}

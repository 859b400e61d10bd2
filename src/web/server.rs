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
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::io::{Holding, Prefixed, WriteDeadline};
use super::limits::{Backoff, ConnectionSlot, Settings, MAX_HTTP_BUFFER};
use super::per_address::PerAddress;

/// A byte stream of any kind (TCP, TLS), boxed so the TURN server can take it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type BoxedIo = Box<dyn Io>;

/// Takes a stream whose first byte says it is STUN/TURN, with that byte still unread, with the
/// client's address and the local address it connected to.
pub type Divert = Arc<dyn Fn(BoxedIo, SocketAddr, SocketAddr) + Send + Sync>;

/// How long in-flight HTTP requests get to finish on shutdown.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(2);

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
    let limit = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let per_address = PerAddress::new(settings.max_connections_per_address);
    let acceptor = tls.map(TlsAcceptor::from);
    let mut backoff = Backoff::default();
    loop {
        // A full listener leaves new clients in the kernel's accept queue until a slot frees.
        let permit = tokio::select! {
            permit = Arc::clone(&limit).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    let delay = backoff.next_delay();
                    tracing::warn!("web listener: accept failed ({err}); retrying in {delay:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue,
                        _ = shutdown.cancelled() => break,
                    }
                }
            },
            _ = shutdown.cancelled() => break,
        };
        backoff.reset();
        let address = match per_address.acquire(peer.ip(), Instant::now()) {
            Ok(address) => address,
            Err(over) => {
                if let Some(count) = over.report {
                    tracing::warn!(
                        %peer,
                        "web listener: refused {count} connection(s) over \
                         server.max_connections_per_address = {} (latest from {})",
                        over.cap,
                        over.key
                    );
                }
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
    /// upgraded WebSocket keeps that write deadline (the relay's own limits are shorter).
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
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(idle)
            .max_buf_size(MAX_HTTP_BUFFER)
            .serve_connection(TokioIo::new(WriteDeadline::new(stream, idle)), service)
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
                let _ = tokio::time::timeout(SHUTDOWN_DRAIN, conn).await;
            }
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

//! The public listener: accepts TCP, does the TLS handshake off the accept loop, and hands each
//! connection to hyper (page and `/ws`) or, when its first byte after the handshake looks like
//! STUN (0x00-0x3F; HTTP starts with a letter), to the TURN server. One open port (443) then
//! serves networks that allow nothing else.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Slow or silent clients must not hold a connection slot for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// A byte stream of any kind (TCP, TLS), boxed so the TURN server can take it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type BoxedIo = Box<dyn Io>;

/// Takes a stream whose first byte says it is STUN/TURN, with that byte still unread, with the
/// client's address and the local address it connected to.
pub type Divert = Arc<dyn Fn(BoxedIo, SocketAddr, SocketAddr) + Send + Sync>;

/// Accepts until `shutdown`, holding at most `max_connections` at once.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    divert: Option<Divert>,
    max_connections: usize,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let limit = Arc::new(Semaphore::new(max_connections.max(1)));
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
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
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            router: router.clone(),
            acceptor: acceptor.clone(),
            divert: divert.clone(),
            shutdown: shutdown.clone(),
            peer,
        };
        tasks.spawn(async move {
            connection.run(tcp).await;
            drop(permit);
        });
    }
    tracing::debug!("HTTP listener stopped accepting");
}

struct Connection {
    router: Router,
    acceptor: Option<TlsAcceptor>,
    divert: Option<Divert>,
    shutdown: CancellationToken,
    peer: SocketAddr,
}

impl Connection {
    async fn run(self, tcp: TcpStream) {
        // Without its local address the socket is already broken; nothing to serve.
        let Ok(local) = tcp.local_addr() else { return };
        let Some(acceptor) = self.acceptor.clone() else {
            return self.serve_http(tcp).await;
        };
        let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(err)) => {
                return tracing::debug!(peer = %self.peer, "TLS handshake failed: {err}")
            }
            Err(_) => return tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        };
        let mut first = [0u8; 1];
        match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.read(&mut first)).await {
            Ok(Ok(1)) => {}
            _ => return,
        }
        let stream = Prefixed {
            first: Some(first[0]),
            inner: tls,
        };
        match (&self.divert, first[0]) {
            (Some(divert), 0x00..=0x3f) => divert(Box::new(stream), self.peer, local),
            _ => self.serve_http(stream).await,
        }
    }

    async fn serve_http<S: Io + 'static>(self, stream: S) {
        let peer = self.peer;
        let router = self.router;
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, "HTTP connection ended: {err}");
                }
            }
            _ = self.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
            }
        }
    }
}

/// A stream with one already-read byte put back in front.
struct Prefixed<S> {
    first: Option<u8>,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(byte) = self.first {
            if buf.remaining() > 0 {
                buf.put_slice(&[byte]);
                self.first = None;
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

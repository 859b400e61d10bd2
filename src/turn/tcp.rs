//! TURN over TCP and TLS (RFC 8656 §12.5 framing: a STUN message is 20 + its length field; a
//! ChannelData message is 4 + its length, padded to a multiple of 4). Each connection is one
//! session, so its allocations end when it closes. A connection takes its address's share of
//! the client slots at accept, before any TLS handshake; the handshake and the first complete
//! TURN message each have a deadline, so a silent or slow connection cannot hold its slot. A
//! client that stops reading is cut off after a write timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, WriteHalf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::admission::{Kind, Ticket};
use super::quota::Counters;
use super::session::{self, SessionEnv, Transport, MAX_MESSAGE};

const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Read buffer per connection: a few frames' worth, bounded, reused.
const READ_BUFFER: usize = 4096;

/// How many bytes the frame starting with `header` occupies on the stream, or `None` if the
/// bytes are neither STUN nor ChannelData (the connection is then closed).
pub fn frame_len(header: [u8; 4]) -> Option<usize> {
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    match header[0] {
        0x00..=0x3f if len.is_multiple_of(4) => Some(20 + len),
        // RFC 8656 narrowed channels to 0x4000-0x4FFF, but RFC 5766 clients (coturn's own
        // tools among them) still use up to 0x7FFF, and the crate accepts them.
        0x40..=0x7f => Some(4 + len.div_ceil(4) * 4),
        _ => None,
    }
}

/// Accepts TCP (or, with `tls`, TLS) connections until shutdown.
pub async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, env: SessionEnv) {
    let mut backoff = crate::net::Backoff::default();
    let what = "TURN TCP listener";
    while let Some((tcp, peer)) =
        crate::net::accept(&listener, &mut backoff, what, &env.shutdown).await
    {
        let ticket = match env
            .admission
            .admit(Kind::Stream, session::unmapped(peer).ip())
        {
            Ok(ticket) => ticket,
            Err(why) => {
                // Dropping the stream closes it: the client sees the connection end at once.
                Counters::bump(&env.shared.counters.clients_refused);
                env.admission.note_refusal(Kind::Stream, peer, why);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().unwrap_or(peer);
        let env2 = env.clone();
        let tls = tls.clone();
        let handshake = env.shared.budgets.limits.tls_handshake;
        env.tasks.spawn(async move {
            match tls {
                None => run(tcp, peer, local, env2, ticket).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => run(stream, peer, local, env2, ticket).await,
                        _ => tracing::debug!(%peer, "TURN TLS handshake failed or timed out"),
                    }
                }
            }
        });
    }
}

struct StreamTransport<S> {
    /// An async mutex on purpose: replies (from the guard) and relayed data (from the crate's
    /// tasks) share one stream, and each frame must go out whole, so the lock is held across
    /// `write_all(..).await`, which a std mutex must never be. [`WRITE_TIMEOUT`] bounds how long
    /// one holder keeps it. A writer task fed by a channel would do the same with a task and a
    /// queue more per connection.
    writer: tokio::sync::Mutex<WriteHalf<S>>,
    local: SocketAddr,
}

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Send + 'static> Transport for StreamTransport<S> {
    async fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        let write = async {
            let mut w = self.writer.lock().await;
            w.write_all(bytes).await?;
            w.flush().await
        };
        tokio::pin!(write);
        // The timer only for a write that has to wait: arming one per relayed packet cost
        // more than the write.
        let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        if let Poll::Ready(r) = first {
            return r;
        }
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Serves one accepted stream (TCP, TLS, or TLS diverted from the HTTPS port) until it closes.
pub async fn run<S>(stream: S, peer: SocketAddr, local: SocketAddr, env: SessionEnv, ticket: Ticket)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let transport = Arc::new(StreamTransport {
        writer: tokio::sync::Mutex::new(writer),
        local,
    });
    let handle = match session::start(&env, peer, transport, ticket).await {
        Ok(handle) => handle,
        Err(err) => return tracing::warn!("cannot start a TURN session: {err}"),
    };
    // Several frames per read syscall when the client sends faster than we are woken.
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let mut frame = Vec::with_capacity(MAX_MESSAGE);
    // The first complete TURN message must arrive by this deadline; later ones may take as
    // long as the session lives (its own lifetime and idle rules end it).
    let first = tokio::time::sleep(env.shared.budgets.limits.first_message);
    let mut waiting_first = true;
    // Made once, not per frame: each would register a waiter.
    let ended = handle.ended.cancelled();
    tokio::pin!(first, ended);
    loop {
        let next = tokio::select! {
            r = read_frame(&mut reader, &mut frame) => r,
            _ = &mut ended => break,
            _ = &mut first, if waiting_first => break,
        };
        match next {
            Ok(true) => {
                waiting_first = false;
                if handle.fast.relay_from_client(&frame, Instant::now()).await {
                    continue;
                }
                if handle.inbound.send(frame.clone()).await.is_err() {
                    break;
                }
            }
            Ok(false) => {} // oversized, skipped
            Err(_) => break,
        }
    }
    handle.ended.cancel();
}

/// Reads one frame into `frame`. `Ok(false)` when the frame was too large for the crate and
/// was skipped; `Err` on EOF, I/O error or bytes that are not TURN.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    frame: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let mut header = [0u8; 4];
    reader.read_exact(&mut header).await?;
    let total = frame_len(header).ok_or(std::io::ErrorKind::InvalidData)?;
    if total > MAX_MESSAGE {
        let mut rest = (&mut *reader).take((total - 4) as u64);
        tokio::io::copy(&mut rest, &mut tokio::io::sink()).await?;
        return Ok(false);
    }
    frame.clear();
    frame.extend_from_slice(&header);
    frame.resize(total, 0);
    reader.read_exact(&mut frame[4..]).await?;
    if header[0] >> 6 == 0b01 {
        // The crate wants the unpadded message.
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        frame.truncate(4 + len);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_frames_are_header_plus_length() {
        assert_eq!(frame_len([0x00, 0x03, 0x00, 0x08]), Some(28));
    }

    #[test]
    fn channel_data_frames_are_padded_to_four() {
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x05]), Some(12));
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x08]), Some(12));
        assert_eq!(frame_len([0x7f, 0xff, 0x00, 0x00]), Some(4));
    }

    #[test]
    fn other_bytes_are_not_turn() {
        assert_eq!(frame_len([0xc0, 0, 0, 0]), None);
        assert_eq!(frame_len([0x00, 0x01, 0x00, 0x05]), None);
        assert_eq!(frame_len([0x80, 0, 0, 0]), None);
    }

    #[tokio::test]
    async fn frames_are_split_and_oversized_ones_skipped() {
        let mut bytes = vec![0x40, 0x00, 0x00, 0x03, 1, 2, 3, 0];
        bytes.extend_from_slice(&[0x40, 0x01, 0x07, 0xd0]);
        bytes.extend(std::iter::repeat_n(9u8, 2000));
        bytes.extend_from_slice(&[0x00, 0x01, 0x00, 0x00]);
        bytes.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        bytes.extend_from_slice(&[7u8; 12]);
        let mut r = &bytes[..];
        let mut f = Vec::new();
        assert!(read_frame(&mut r, &mut f).await.unwrap());
        assert_eq!(f, vec![0x40, 0, 0, 3, 1, 2, 3]);
        assert!(!read_frame(&mut r, &mut f).await.unwrap());
        assert!(read_frame(&mut r, &mut f).await.unwrap());
        assert_eq!(f.len(), 20);
        assert!(read_frame(&mut r, &mut f).await.is_err());
    }
}

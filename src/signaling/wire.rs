//! Server-to-client WebSocket frames, written by callbox itself. tungstenite's writer keeps a
//! per-connection buffer at the size of the largest frame it ever wrote (a login list, a
//! presence delta during a mass login) and never shrinks it: heaptrack showed 2.6-4.3 KB of
//! every idle connection there. [`FrameWriter`] encodes a batch of frames (unmasked, as a
//! server sends them) into one buffer, writes it with one write call, and frees the buffer
//! once the connection has nothing more queued; an idle connection holds no write buffer.
//!
//! tungstenite still reads the client's frames, on the read half ([`ReadSide`]). The replies
//! the reading side owes (a pong for each ping, the echo of a close) are not written by
//! tungstenite: [`ReadSide`] swallows its writes, and the reader hands them to the writer
//! through a [`ReplyPipe`], so that every byte that goes to the client goes through one
//! writer, in order, and never into the middle of a frame.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;

const FIN: u8 = 0x80;
const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
/// Control frames carry at most this many payload bytes (RFC 6455, 5.5).
const MAX_CONTROL: usize = 125;

/// Frames for one connection's client, buffered only while a batch is being written.
pub struct FrameWriter<W> {
    io: W,
    /// Encoded frames not yet written; `Vec::new()` (no allocation) while idle.
    buf: Vec<u8>,
    /// How much of `buf` has been written: a write cancelled half-way (shutdown, a client cut
    /// off) resumes here, so a close frame after it never lands inside another frame.
    at: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(io: W) -> FrameWriter<W> {
        FrameWriter {
            io,
            buf: Vec::new(),
            at: 0,
        }
    }

    /// Queues a text frame.
    pub fn text(&mut self, text: &str) {
        header(&mut self.buf, TEXT, text.len());
        self.buf.extend_from_slice(text.as_bytes());
    }

    /// Queues a text frame whose payload `write` appends to the buffer (serialising straight
    /// into it saves a copy per message). If `write` fails, nothing of the frame stays.
    pub fn text_with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        // Room for the 2+2-byte header most signaling frames (126..65535 bytes) take; the
        // payload is moved once it is known to need another.
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        if let Err(err) = write(&mut self.buf) {
            self.buf.truncate(start);
            return Err(err);
        }
        let len = self.buf.len() - start - 4;
        let mut head = Vec::with_capacity(10);
        header(&mut head, TEXT, len);
        match head.len() {
            4 => {}
            2 => {
                self.buf.copy_within(start + 4.., start + 2);
                self.buf.truncate(start + 2 + len);
            }
            _ => {
                let extra = head.len() - 4;
                self.buf.splice(start..start, std::iter::repeat_n(0, extra));
            }
        }
        self.buf[start..start + head.len()].copy_from_slice(&head);
        Ok(())
    }

    /// Queues a ping with no payload (the shared wheel's keep-alive).
    pub fn ping(&mut self) {
        header(&mut self.buf, PING, 0);
    }

    /// Queues the pong a client's ping is owed.
    pub fn pong(&mut self, payload: &[u8]) {
        let payload = &payload[..payload.len().min(MAX_CONTROL)];
        header(&mut self.buf, PONG, payload.len());
        self.buf.extend_from_slice(payload);
    }

    /// Queues a close frame: with a code and reason, or empty (the echo of a client's close
    /// that carried no code). The reason is cut to fit a control frame, at a char boundary.
    pub fn close(&mut self, code: Option<(u16, &str)>) {
        let Some((code, reason)) = code else {
            header(&mut self.buf, CLOSE, 0);
            return;
        };
        let mut end = reason.len().min(MAX_CONTROL - 2);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        header(&mut self.buf, CLOSE, 2 + end);
        self.buf.extend_from_slice(&code.to_be_bytes());
        self.buf.extend_from_slice(&reason.as_bytes()[..end]);
    }

    /// Nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.at == self.buf.len()
    }

    /// Writes what is queued (one write call when the socket takes it all) and flushes.
    /// Cancel-safe: dropped half-way, the next call goes on from where this one stopped.
    pub async fn flush(&mut self) -> io::Result<()> {
        while self.at < self.buf.len() {
            let n = self.io.write(&self.buf[self.at..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.at += n;
        }
        self.buf.clear();
        self.at = 0;
        self.io.flush().await
    }

    /// Gives the buffer back to the allocator if everything in it was written: called when the
    /// connection goes idle, so only a busy connection holds one.
    pub fn release(&mut self) {
        if self.is_empty() {
            self.buf = Vec::new();
            self.at = 0;
        }
    }

    #[cfg(test)]
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.at..]
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// A frame header: FIN, `opcode`, no mask (server to client), and the payload length.
fn header(buf: &mut Vec<u8>, opcode: u8, len: usize) {
    buf.push(FIN | opcode);
    if len < 126 {
        buf.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        buf.push(126);
        buf.extend_from_slice(&len.to_be_bytes());
    } else {
        buf.push(127);
        buf.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// The read half as tungstenite sees it: reads pass through; writes (the pongs and close
/// echoes tungstenite queues by itself) are swallowed, as the [`ReplyPipe`] carries those.
pub struct ReadSide<R>(pub R);

impl<R: AsyncRead + Unpin> AsyncRead for ReadSide<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for ReadSide<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What the reading side owes the client, for the writer to send.
#[derive(Default)]
pub struct ReplyPipe {
    /// The payload of the latest ping not yet answered (RFC 6455 allows answering only the
    /// most recent one).
    pong: Mutex<Option<tungstenite::Bytes>>,
    ready: Notify,
}

impl ReplyPipe {
    /// A ping arrived: the writer sends its pong next.
    pub fn ping(&self, payload: tungstenite::Bytes) {
        *crate::lock::lock(&self.pong, "reply pipe") = Some(payload);
        self.ready.notify_one();
    }

    /// Waits for a pong to send and takes it.
    pub async fn pong(&self) -> tungstenite::Bytes {
        loop {
            if let Some(payload) = self.take_pong() {
                return payload;
            }
            self.ready.notified().await;
        }
    }

    /// The pong waiting to be sent, if any.
    pub fn take_pong(&self) -> Option<tungstenite::Bytes> {
        crate::lock::lock(&self.pong, "reply pipe").take()
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;

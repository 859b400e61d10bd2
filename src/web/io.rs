//! Stream adapters for the listener: one that puts the already-read first byte back in front
//! (the byte that told TURN from HTTP); one that carries a connection's [`ConnectionSlot`]
//! along with the stream, so a stream handed to the TURN server keeps counting against the
//! listener's limits for as long as it is open; one that fails writes a client has stopped
//! reading, so a slow reader cannot hold its slot with a response that never drains; and one
//! that reads in bursts without holding a read buffer while a connection is idle.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::task::ready;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::limits::ConnectionSlot;

/// A stream with one already-read byte put back in front.
pub struct Prefixed<S> {
    first: Option<u8>,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(first: u8, inner: S) -> Prefixed<S> {
        Prefixed {
            first: Some(first),
            inner,
        }
    }
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

/// Writes go straight to `inner`: both wrappers below change only how a stream reads or lives.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<S: AsyncWrite + Unpin> AsyncWrite for $wrapper<S> {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<std::io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write(cx, buf)
            }
            fn poll_flush(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.inner).poll_flush(cx)
            }
            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}

write_through!(Prefixed);

/// A stream that holds its connection's slot until it is dropped.
pub struct Holding<S> {
    inner: S,
    _slot: ConnectionSlot,
}

impl<S> Holding<S> {
    pub fn new(inner: S, slot: ConnectionSlot) -> Holding<S> {
        Holding { inner, _slot: slot }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Holding<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

write_through!(Holding);

/// A stream whose writes fail with `TimedOut` once they have made no progress for `limit`.
pub struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Running while writes are blocked; cleared by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, limit: Duration) -> WriteDeadline<S> {
        WriteDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Passes a ready result through (progress), or checks the stall timer while pending.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, poll)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, poll)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard(cx, poll)
    }
}

/// Bytes one read takes from the socket for a caller with a small buffer.
const BURST: usize = 8 * 1024;

/// A reader for callers with small buffers (the WebSocket codec keeps 512 bytes per
/// connection): their reads go through a [`BURST`]-byte buffer on the stack, and what they
/// could not take waits on the heap only until they read it. An idle connection holds no read
/// buffer here, and a burst of frames still comes in with one syscall.
pub struct ReadBurst<S> {
    inner: S,
    spill: Vec<u8>,
    at: usize,
}

impl<S> ReadBurst<S> {
    pub fn new(inner: S) -> ReadBurst<S> {
        ReadBurst {
            inner,
            spill: Vec::new(),
            at: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadBurst<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.at < this.spill.len() {
            let n = buf.remaining().min(this.spill.len() - this.at);
            buf.put_slice(&this.spill[this.at..this.at + n]);
            this.at += n;
            if this.at == this.spill.len() {
                // Drained: give the memory back rather than keep it for an idle connection.
                this.spill = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= BURST {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let mut stack = [0u8; BURST];
        let mut burst = ReadBuf::new(&mut stack);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut burst))?;
        let got = burst.filled();
        let n = buf.remaining().min(got.len());
        buf.put_slice(&got[..n]);
        if n < got.len() {
            this.spill = got[n..].to_vec();
            this.at = 0;
        }
        Poll::Ready(Ok(()))
    }
}

write_through!(ReadBurst);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Serves `data` in reads of up to whatever the caller asks, counting them.
    struct Counted {
        data: Vec<u8>,
        at: usize,
        reads: usize,
    }

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.reads += 1;
            let n = buf.remaining().min(self.data.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn small_reads_share_one_socket_read_and_keep_nothing_once_drained() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let inner = Counted {
            data: data.clone(),
            at: 0,
            reads: 0,
        };
        let mut reader = ReadBurst::new(inner);
        let mut got = Vec::new();
        let mut small = [0u8; 512];
        loop {
            let n = reader.read(&mut small).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
            if got.len() == BURST {
                assert!(reader.spill.capacity() == 0, "nothing held between bursts");
            }
        }
        assert_eq!(got, data, "every byte, in order");
        // 8 KiB, then the last 1808 bytes, then end of stream: three reads for 20 callers.
        assert_eq!(reader.inner.reads, 3);
        assert_eq!(reader.spill.capacity(), 0);
    }

    #[tokio::test]
    async fn a_big_buffer_reads_straight_through() {
        let inner = Counted {
            data: vec![7; 20_000],
            at: 0,
            reads: 0,
        };
        let mut reader = ReadBurst::new(inner);
        let mut big = vec![0u8; 16 * 1024];
        assert_eq!(reader.read(&mut big).await.unwrap(), 16 * 1024);
        assert_eq!(reader.spill.capacity(), 0);
    }
}

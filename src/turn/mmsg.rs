//! Batched datagram I/O for the TURN sockets: recvmmsg(2) and sendmmsg(2) on tokio UDP
//! sockets, so a wakeup that finds several datagrams costs one system call rather than one per
//! datagram, and a short batch also stands for the "would block" read that otherwise ends every
//! drain (a paced row's wakeup was recvfrom + recvfrom(EAGAIN) + sendto).
//!
//! Readiness: the calls run inside [`UdpSocket::try_io`], and a batch that came back shorter
//! than asked for is reported to tokio as `WouldBlock` (the count travels outside the closure),
//! so tokio clears the socket's readiness and the next `readable()` waits for a new edge
//! instead of returning at once (a spin) or a loop stalling on a stale "ready". A short batch
//! means the queue is empty: the TURN sockets are unconnected, and Linux reports no ICMP
//! errors on unconnected UDP sockets without IP_RECVERR, so no pending error cut it short.
//!
//! Buffers are allocated once per socket loop ([`RecvBatch::new`]); the message headers live
//! on the stack of the (synchronous) call, so nothing is allocated per packet and the batch
//! holds no raw pointer across an `.await` (it stays `Send`). Other systems fall back to one
//! `recv_from` / `send_to` per datagram behind the same interface.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Most datagrams one call moves (the stack arrays of a call are sized by it).
pub const MAX_BATCH: usize = 32;

/// Receive slots of one socket loop: slot `i` is `stride` bytes, datagram `i` lands at `offset`
/// in it, at most `len` bytes (longer ones are cut, as a plain `recv_from` would).
pub struct RecvBatch {
    buf: Box<[u8]>,
    slots: usize,
    stride: usize,
    offset: usize,
    len: usize,
    got: [(usize, SocketAddr); MAX_BATCH],
    count: usize,
}

impl RecvBatch {
    pub fn new(slots: usize, stride: usize, offset: usize, len: usize) -> Self {
        let slots = slots.clamp(1, MAX_BATCH);
        assert!(
            offset + len <= stride,
            "a slot holds its headroom and payload"
        );
        RecvBatch {
            buf: vec![0u8; slots * stride].into_boxed_slice(),
            slots,
            stride,
            offset,
            len,
            got: [(0, SocketAddr::from(([0, 0, 0, 0], 0))); MAX_BATCH],
            count: 0,
        }
    }

    /// Datagrams the last [`RecvBatch::recv`] returned.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Datagram `i` of the last read and its source.
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        let (n, from) = self.got[i];
        let at = i * self.stride + self.offset;
        (&self.buf[at..at + n], from)
    }

    /// Slot `i` whole (headroom, payload and the rest of the stride), and datagram `i`'s length
    /// and source.
    pub fn slot_mut(&mut self, i: usize) -> (&mut [u8], usize, SocketAddr) {
        let (n, from) = self.got[i];
        (
            &mut self.buf[i * self.stride..(i + 1) * self.stride],
            n,
            from,
        )
    }

    /// All slots, for sending frames built in place ([`send_batch`] takes ranges of this).
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Where slot `i` starts in [`RecvBatch::bytes`].
    pub fn slot_start(&self, i: usize) -> usize {
        i * self.stride
    }

    /// Reads what the socket holds, up to the batch's slots, without waiting. `Ok(0)` when
    /// there was nothing (or readiness was stale); readiness is cleared whenever the socket
    /// was left empty.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.count = 0;
        let mut got = 0;
        let r = socket.try_io(Interest::READABLE, || {
            got = sys::recv(socket, self)?;
            if got < self.slots {
                // Drained: let tokio clear the readiness (see the module doc).
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(())
        });
        self.count = got;
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(got),
            Err(e) if got == 0 => Err(e),
            _ => Ok(got),
        }
    }
}

/// Sends the frames `base[range]` to `to` without waiting; returns how many went out (a full
/// socket buffer stops the batch there, as a non-blocking send would drop the datagram).
pub fn send_batch(
    socket: &UdpSocket,
    base: &[u8],
    frames: &[Range<usize>],
    to: SocketAddr,
) -> io::Result<usize> {
    let mut sent = 0;
    while sent < frames.len() {
        let end = frames.len().min(sent + MAX_BATCH);
        match socket.try_io(Interest::WRITABLE, || {
            sys::send(socket, base, &frames[sent..end], to)
        }) {
            Ok(0) => return Ok(sent),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(sent),
            Err(e) if sent == 0 => return Err(e),
            Err(_) => return Ok(sent),
        }
    }
    Ok(sent)
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::ops::Range;
    use std::os::fd::AsRawFd;

    use tokio::net::UdpSocket;

    use super::{RecvBatch, MAX_BATCH};

    pub fn recv(socket: &UdpSocket, b: &mut RecvBatch) -> io::Result<usize> {
        // SAFETY: plain C structs, all-zero is a valid value for each.
        let mut addrs: [libc::sockaddr_storage; MAX_BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        let base = b.buf.as_mut_ptr();
        for i in 0..b.slots {
            // SAFETY: slot i's payload range is inside `buf` (checked in `new`).
            iovs[i].iov_base = unsafe { base.add(i * b.stride + b.offset) }.cast();
            iovs[i].iov_len = b.len;
            hdrs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at live, writable memory of the sizes given.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                b.slots as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for i in 0..n {
            let from = to_socket_addr(&addrs[i]).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            b.got[i] = (hdrs[i].msg_len as usize, from);
        }
        Ok(n)
    }

    pub fn send(
        socket: &UdpSocket,
        base: &[u8],
        frames: &[Range<usize>],
        to: SocketAddr,
    ) -> io::Result<usize> {
        let (addr, addr_len) = from_socket_addr(to);
        // SAFETY: plain C structs, all-zero is a valid value for each.
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        let count = frames.len().min(MAX_BATCH);
        for (i, r) in frames.iter().take(count).enumerate() {
            let bytes = &base[r.clone()];
            iovs[i].iov_base = bytes.as_ptr() as *mut libc::c_void;
            iovs[i].iov_len = bytes.len();
            hdrs[i].msg_hdr.msg_name = (&addr as *const libc::sockaddr_storage) as *mut _;
            hdrs[i].msg_hdr.msg_namelen = addr_len;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the headers point at `base` and `addr`, alive for the call; sendmmsg only
        // reads them.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn to_socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(s.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let a: &libc::sockaddr_in = unsafe { &*(s as *const _ as *const _) };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let a: &libc::sockaddr_in6 = unsafe { &*(s as *const _ as *const _) };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                let port = u16::from_be(a.sin6_port);
                Some(SocketAddrV6::new(ip, port, a.sin6_flowinfo, a.sin6_scope_id).into())
            }
            _ => None,
        }
    }

    fn from_socket_addr(to: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut s: libc::sockaddr_storage = unsafe { zeroed() };
        let len = match to {
            SocketAddr::V4(v4) => {
                // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
                let a: &mut libc::sockaddr_in = unsafe { &mut *(&mut s as *mut _ as *mut _) };
                a.sin_family = libc::AF_INET as libc::sa_family_t;
                a.sin_port = v4.port().to_be();
                a.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(v6) => {
                // SAFETY: as above.
                let a: &mut libc::sockaddr_in6 = unsafe { &mut *(&mut s as *mut _ as *mut _) };
                a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                a.sin6_port = v6.port().to_be();
                a.sin6_addr.s6_addr = v6.ip().octets();
                a.sin6_flowinfo = v6.flowinfo();
                a.sin6_scope_id = v6.scope_id();
                size_of::<libc::sockaddr_in6>()
            }
        };
        (s, len as libc::socklen_t)
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::io;
    use std::net::SocketAddr;
    use std::ops::Range;

    use tokio::net::UdpSocket;

    use super::RecvBatch;

    /// One datagram per call: a short batch, so the caller's readiness logic still holds.
    pub fn recv(socket: &UdpSocket, b: &mut RecvBatch) -> io::Result<usize> {
        let at = b.offset;
        let (n, from) = socket.try_recv_from(&mut b.buf[at..at + b.len])?;
        b.got[0] = (n, from);
        Ok(1)
    }

    pub fn send(
        socket: &UdpSocket,
        base: &[u8],
        frames: &[Range<usize>],
        to: SocketAddr,
    ) -> io::Result<usize> {
        let Some(r) = frames.first() else {
            return Ok(0);
        };
        socket.try_send_to(&base[r.clone()], to).map(|_| 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_reads_what_is_queued_and_a_short_one_clears_readiness() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = b.local_addr().unwrap();
        for i in 0..5u8 {
            a.send_to(&[i; 3], to).await.unwrap();
        }
        let mut batch = RecvBatch::new(4, 16, 8, 8);
        b.readable().await.unwrap();
        // Loopback delivers synchronously: all five are queued.
        assert_eq!(batch.recv(&b).unwrap(), 4);
        assert_eq!(batch.get(3), (&[3u8; 3][..], a.local_addr().unwrap()));
        assert_eq!(batch.recv(&b).unwrap(), 1);
        assert_eq!(batch.get(0).0, &[4u8; 3]);
        // Readiness was cleared by the short batch: readable() now waits for a new datagram.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), b.readable());
        assert!(waited.await.is_err());
        a.send_to(&[9; 20], to).await.unwrap();
        b.readable().await.unwrap();
        assert_eq!(batch.recv(&b).unwrap(), 1);
        assert_eq!(batch.get(0).0, &[9u8; 8], "cut at the slot's length");
    }

    #[tokio::test]
    async fn frames_in_place_go_out_in_one_batch() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let base = b"xxhelloyyworld".to_vec();
        // As with try_send_to, the reactor must have seen the socket writable once.
        a.writable().await.unwrap();
        let sent = send_batch(&a, &base, &[2..7, 9..14], b.local_addr().unwrap()).unwrap();
        assert_eq!(sent, 2);
        let mut buf = [0u8; 16];
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"world");
    }
}

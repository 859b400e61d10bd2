//! A UDP listener: answers STUN Binding requests statelessly and hands everything else to the
//! session of its source address, starting one for a new source only when the message is a
//! request (anything else from an unknown source is noise). Binding answers come out of a
//! per-source budget; a new source gets a session only within its address's share of the
//! client slots. ChannelData and Send indications go to the session's data path
//! (`fastpath/`) without a queue or a decode.
//!
//! The read loop drains the socket (up to [`BATCH`] datagrams) each time it is woken, rather
//! than going back through `select!` and the reactor per datagram, reading them
//! [`mmsg::MAX_BATCH`] at a time with recvmmsg (`mmsg.rs`) into buffers made once, and takes
//! the time once per batch; the socket's receive buffer is sized like coturn's so a burst from
//! many clients waits in the kernel instead of being dropped there while the loop is not
//! scheduled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use stun::message::{Message, CLASS_REQUEST, METHOD_BINDING};
use tokio::net::UdpSocket;

use super::admission::Kind;
use super::fastpath::frame;
use super::mmsg::{self, RecvBatch};
use super::quota::Counters;
use super::session::{self, SessionEnv, SessionHandle, Transport, MAX_MESSAGE};
use super::wire;

/// Datagrams read per wakeup before the loop looks at its sweep timer and shutdown again.
pub const BATCH: usize = 64;
/// Receive buffer asked for on a listening socket (the kernel doubles it, capped by
/// `net.core.rmem_max`): coturn asks as much for its listeners.
pub const LISTEN_RCVBUF: usize = 2 << 20;

struct UdpTransport {
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    local: SocketAddr,
}

#[async_trait]
impl Transport for UdpTransport {
    async fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        // A full socket buffer drops the datagram, as UDP would anyway.
        match self.socket.try_send_to(bytes, self.peer) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn is_datagram(&self) -> bool {
        true
    }

    /// One sendmmsg for a relay read's frames; those that find the buffer full are dropped.
    async fn send_frames(
        &self,
        base: &[u8],
        frames: &[Range<usize>],
        _scratch: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        mmsg::send_batch(&self.socket, base, frames, self.peer).map(|_| ())
    }
}

/// One listening socket and the sessions of its sources.
struct Listener {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    env: SessionEnv,
    sessions: HashMap<SocketAddr, SessionHandle>,
}

/// Serves one bound UDP socket until shutdown.
pub async fn serve(socket: UdpSocket, env: SessionEnv) {
    let Ok(local) = socket.local_addr() else {
        return;
    };
    // Best effort: a smaller buffer (rmem_max) still works, it only drops sooner.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(LISTEN_RCVBUF);
    let shutdown = env.shutdown.clone();
    let mut listener = Listener {
        socket: Arc::new(socket),
        local,
        env,
        sessions: HashMap::new(),
    };
    // One byte more than a message may have, so an oversized datagram shows as such.
    let mut batch = RecvBatch::new(mmsg::MAX_BATCH, MAX_MESSAGE + 1, 0, MAX_MESSAGE + 1);
    let mut sweep = tokio::time::interval(Duration::from_secs(5));
    // Made once: a fresh `cancelled()` per wakeup would register a waiter each time.
    let stop = shutdown.cancelled();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            // An error here is an ICMP error on some systems; it says nothing about us.
            r = listener.socket.readable() => if r.is_ok() { listener.drain(&mut batch).await },
            _ = sweep.tick() => listener.sweep(),
            _ = &mut stop => break,
        }
    }
    for s in listener.sessions.values() {
        s.ended.cancel();
    }
}

impl Listener {
    /// Handles what the socket holds, up to [`BATCH`] datagrams, until it would block.
    async fn drain(&mut self, batch: &mut RecvBatch) {
        let mut read = 0;
        while read < BATCH {
            let got = match batch.recv(&self.socket) {
                Ok(0) => return, // drained, readiness cleared
                Ok(got) => got,
                Err(_) => {
                    read += 1; // ICMP errors again (a bounded retry, as before)
                    continue;
                }
            };
            read += got;
            let now = Instant::now();
            for i in 0..got {
                let (bytes, from) = batch.get(i);
                if bytes.len() <= MAX_MESSAGE {
                    self.datagram(bytes, from, now).await;
                }
            }
            if got < mmsg::MAX_BATCH {
                return; // a short batch: the socket is empty and tokio knows it
            }
        }
    }

    fn sweep(&mut self) {
        self.sessions.retain(|_, s| !s.ended.is_cancelled());
        super::admission::shrink_if_sparse(&mut self.sessions);
    }

    async fn datagram(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        if frame::is_channel_data(bytes) || frame::is_send_indication(bytes) {
            // Relayed data: straight to the relay socket, never decoded as a whole message.
            if let Some(s) = self.sessions.get(&from).filter(|s| !s.ended.is_cancelled()) {
                s.fast.relay_from_client(bytes, now).await;
            }
            return;
        }
        let message = wire::parse(bytes);
        if let Some(m) = message.as_ref().filter(|m| is_binding_request(m)) {
            return self.answer_binding(m, from, now);
        }
        if let Some(s) = self.sessions.get(&from) {
            if !s.ended.is_cancelled() {
                // A full queue means the client outpaces us: drop, as the network would.
                let _ = s.inbound.try_send(bytes.to_vec());
                return;
            }
            self.sessions.remove(&from);
        }
        if message.is_some_and(|m| m.typ.class == CLASS_REQUEST) {
            self.start_session(bytes, from).await;
        }
    }

    /// Binding answers need no session, only the source's budget.
    fn answer_binding(&self, m: &Message, from: SocketAddr, now: Instant) {
        let from_ip = session::unmapped(from).ip();
        if !self.env.shared.budgets.binding(from_ip, now) {
            return;
        }
        if let Some(reply) = wire::binding_response(m, session::unmapped(from)) {
            let _ = self.socket.try_send_to(&reply, from);
        }
    }

    /// A request from a new source: a session, if the source's address has a slot left.
    async fn start_session(&mut self, first: &[u8], from: SocketAddr) {
        let env = &self.env;
        let ticket = match env.admission.admit(Kind::Udp, session::unmapped(from).ip()) {
            Ok(ticket) => ticket,
            Err(why) => {
                Counters::bump(&env.shared.counters.clients_refused);
                env.admission.note_refusal(Kind::Udp, from, why);
                return;
            }
        };
        let transport = Arc::new(UdpTransport {
            socket: Arc::clone(&self.socket),
            peer: from,
            local: self.local,
        });
        match session::start(env, from, transport, ticket).await {
            Ok(handle) => {
                let _ = handle.inbound.try_send(first.to_vec());
                self.sessions.insert(from, handle);
            }
            Err(err) => tracing::warn!("cannot start a TURN session: {err}"),
        }
    }
}

fn is_binding_request(m: &Message) -> bool {
    m.typ.class == CLASS_REQUEST && m.typ.method == METHOD_BINDING
}

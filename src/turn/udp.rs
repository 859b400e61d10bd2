//! A UDP listener: answers STUN Binding requests statelessly and hands everything else to the
//! session of its source address, starting one for a new source only when the message is a
//! request (anything else from an unknown source is noise). Binding answers come out of a
//! per-source budget; a new source gets a session only within its address's share of the
//! client slots. ChannelData and Send indications go to the session's data path
//! (`fastpath/`) without a queue or a decode.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use stun::message::{CLASS_REQUEST, METHOD_BINDING};
use tokio::net::UdpSocket;

use super::admission::Kind;
use super::fastpath::frame;
use super::quota::Counters;
use super::session::{self, SessionEnv, SessionHandle, Transport, MAX_MESSAGE};
use super::wire;

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

    fn send_now(&self, bytes: &[u8]) -> Option<std::io::Result<()>> {
        Some(match self.socket.try_send_to(bytes, self.peer) {
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        })
    }
}

/// Serves one bound UDP socket until shutdown.
pub async fn serve(socket: UdpSocket, env: SessionEnv) {
    let socket = Arc::new(socket);
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let mut sessions: HashMap<SocketAddr, SessionHandle> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    let mut sweep = tokio::time::interval(Duration::from_secs(5));
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                // ICMP errors surface here on some systems; they say nothing about us.
                Err(_) => continue,
            },
            _ = sweep.tick() => {
                sessions.retain(|_, s| !s.ended.is_cancelled());
                super::admission::shrink_if_sparse(&mut sessions);
                continue;
            }
            _ = env.shutdown.cancelled() => break,
        };
        if n > MAX_MESSAGE {
            continue;
        }
        let bytes = &buf[..n];
        if frame::is_channel_data(bytes) || frame::is_send_indication(bytes) {
            // Relayed data: straight to the relay socket, never decoded as a whole message.
            if let Some(s) = sessions.get(&from).filter(|s| !s.ended.is_cancelled()) {
                s.fast.relay_from_client(bytes).await;
            }
            continue;
        }
        let message = wire::parse(bytes);
        if let Some(m) = &message {
            if m.typ.class == CLASS_REQUEST && m.typ.method == METHOD_BINDING {
                let from_ip = session::unmapped(from).ip();
                if !env.shared.budgets.binding(from_ip, Instant::now()) {
                    continue;
                }
                if let Some(reply) = wire::binding_response(m, session::unmapped(from)) {
                    let _ = socket.try_send_to(&reply, from);
                }
                continue;
            }
        }
        if let Some(s) = sessions.get(&from) {
            if !s.ended.is_cancelled() {
                // A full queue means the client outpaces us: drop, as the network would.
                let _ = s.inbound.try_send(bytes.to_vec());
                continue;
            }
            sessions.remove(&from);
        }
        if !message.is_some_and(|m| m.typ.class == CLASS_REQUEST) {
            continue;
        }
        let ticket = match env.admission.admit(Kind::Udp, session::unmapped(from).ip()) {
            Ok(ticket) => ticket,
            Err(why) => {
                Counters::bump(&env.shared.counters.clients_refused);
                env.admission.note_refusal(Kind::Udp, from, why);
                continue;
            }
        };
        let transport = Arc::new(UdpTransport {
            socket: Arc::clone(&socket),
            peer: from,
            local,
        });
        match session::start(&env, from, transport, ticket).await {
            Ok(handle) => {
                let _ = handle.inbound.try_send(bytes.to_vec());
                sessions.insert(from, handle);
            }
            Err(err) => tracing::warn!("cannot start a TURN session: {err}"),
        }
    }
    for s in sessions.values() {
        s.ended.cancel();
    }
}

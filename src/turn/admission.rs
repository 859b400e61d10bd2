//! Who gets a client slot: `turn.max_clients` in total, and a per-address cap per transport
//! kind, so one address (IPv6: one /64) cannot hold every slot and lock everyone else out.
//!
//! The per-address cap is checked first: a client over it is refused without taking (or
//! even looking at) a global slot, so it cannot push anyone else out. A [`Ticket`] holds
//! both and gives them back when dropped, however the session ends.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::limiter::key_of;
use crate::lock::lock;

/// Transport kinds counted separately: a UDP session and a TCP/TLS connection cost different
/// things, and a browser may hold both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Udp,
    /// TCP and TLS connections (counted at accept, before any TLS handshake).
    Stream,
}

/// Why a client got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many TURN sessions from this address")]
    PerAddress,
    #[error("turn.max_clients reached")]
    Full,
}

/// The slot table of one server.
#[derive(Debug)]
pub struct Admission {
    clients: Arc<Semaphore>,
    max_clients: usize,
    udp_cap: usize,
    stream_cap: usize,
    held: Mutex<HashMap<(Kind, IpAddr), usize>>,
    /// When refusals were last logged, and how many since: one line a minute at most, since
    /// a remote sender controls how often this happens.
    warned: Mutex<(Option<Instant>, u64)>,
}

/// How often refused clients may produce a log line.
const WARN_EVERY: Duration = Duration::from_secs(60);

impl Admission {
    pub fn new(max_clients: usize, udp_cap: usize, stream_cap: usize) -> Arc<Self> {
        Arc::new(Admission {
            clients: Arc::new(Semaphore::new(max_clients)),
            max_clients,
            udp_cap: udp_cap.max(1),
            stream_cap: stream_cap.max(1),
            held: Mutex::new(HashMap::new()),
            warned: Mutex::new((None, 0)),
        })
    }

    /// Client slots in use.
    pub fn in_use(&self) -> usize {
        self.max_clients - self.clients.available_permits()
    }

    /// A slot for one more transport of `kind` from `ip`, or why not.
    pub fn admit(self: &Arc<Self>, kind: Kind, ip: IpAddr) -> Result<Ticket, Refused> {
        let key = (kind, key_of(ip));
        let cap = match kind {
            Kind::Udp => self.udp_cap,
            Kind::Stream => self.stream_cap,
        };
        let mut held = lock(&self.held, "TURN admission");
        let count = held.get(&key).copied().unwrap_or(0);
        if count >= cap {
            return Err(Refused::PerAddress);
        }
        let permit = Arc::clone(&self.clients)
            .try_acquire_owned()
            .map_err(|_| Refused::Full)?;
        held.insert(key, count + 1);
        Ok(Ticket {
            admission: Arc::clone(self),
            key,
            _permit: permit,
        })
    }

    /// Logs a refusal, at most once per [`WARN_EVERY`] (with the count since the last line).
    pub fn note_refusal(&self, kind: Kind, from: SocketAddr, why: Refused) {
        let mut warned = lock(&self.warned, "TURN refusal log");
        warned.1 += 1;
        let due = warned.0.is_none_or(|at| at.elapsed() >= WARN_EVERY);
        if due {
            tracing::warn!(
                ?kind, client = %from, reason = %why, refused_since_last_line = warned.1,
                "TURN client refused (per-address cap or turn.max_clients)"
            );
            *warned = (Some(Instant::now()), 0);
        }
    }

    fn give_back(&self, key: (Kind, IpAddr)) {
        let mut held = lock(&self.held, "TURN admission");
        if let Some(count) = held.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&key);
                shrink_if_sparse(&mut held);
            }
        }
    }
}

/// Gives back a per-source map's spare room once it is mostly empty: a HashMap keeps the
/// capacity of its largest moment, so after a flood from many sources the table would stay
/// at the flood's size for good. A quarter full is the threshold, so a map that breathes
/// around one size does not rehash at every change.
pub fn shrink_if_sparse<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() * 4 < map.capacity() {
        map.shrink_to_fit();
    }
}

/// One client slot; dropping it frees the slot and the address's share.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    key: (Kind, IpAddr),
    _permit: OwnedSemaphorePermit,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.give_back(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_is_capped_without_taking_others_slots() {
        let a = Admission::new(4, 2, 1);
        let t1 = a.admit(Kind::Udp, ip("192.0.2.1")).unwrap();
        let _t2 = a.admit(Kind::Udp, ip("192.0.2.1")).unwrap();
        assert_eq!(
            a.admit(Kind::Udp, ip("192.0.2.1")).unwrap_err(),
            Refused::PerAddress
        );
        assert_eq!(a.in_use(), 2);
        // Kinds are counted apart; other addresses still get in.
        let _s = a.admit(Kind::Stream, ip("192.0.2.1")).unwrap();
        let _o = a.admit(Kind::Udp, ip("192.0.2.2")).unwrap();
        assert_eq!(
            a.admit(Kind::Udp, ip("192.0.2.3")).unwrap_err(),
            Refused::Full
        );
        drop(t1);
        assert!(a.admit(Kind::Udp, ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn an_ipv6_slash_64_is_one_address() {
        let a = Admission::new(10, 1, 1);
        let _t = a.admit(Kind::Udp, ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            a.admit(Kind::Udp, ip("2001:db8:1:2::ffff")).unwrap_err(),
            Refused::PerAddress
        );
        let _u = a.admit(Kind::Udp, ip("2001:db8:1:3::1")).unwrap();
        assert_eq!(a.held.lock().unwrap().len(), 2);
    }

    #[test]
    fn the_table_gives_its_room_back_after_many_sources_leave() {
        let a = Admission::new(10_000, 1, 1);
        let tickets: Vec<Ticket> = (0..5000u32)
            .map(|i| a.admit(Kind::Udp, IpAddr::from((0x0a00_0000 + i).to_be_bytes())))
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(a.held.lock().unwrap().capacity() >= 5000);
        drop(tickets);
        let held = a.held.lock().unwrap();
        assert_eq!(held.len(), 0);
        assert!(held.capacity() <= 64, "capacity {}", held.capacity());
    }
}

//! The two refusals `callbox selftest` checks on the TURN UDP listener, each of which an open
//! relay would fail: an Allocate without credentials must get 401, and with the login's
//! credentials a permission for a private peer (the cloud metadata address) must get 403.
//! Raw STUN over one UDP socket, so whatever answers on the port is judged by what it says,
//! callbox or not.

use std::net::SocketAddr;

use stun::agent::TransactionId;
use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::error_code::ErrorCodeAttribute;
use stun::integrity::MessageIntegrity;
use stun::message::{
    Getter, Message, MessageType, Method, Setter, CLASS_ERROR_RESPONSE, CLASS_REQUEST,
    CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE, METHOD_CREATE_PERMISSION, METHOD_REFRESH,
};
use stun::textattrs::{Nonce, Realm, TextAttribute, Username};
use tokio::net::UdpSocket;
use turn::proto::lifetime::Lifetime;
use turn::proto::peeraddr::PeerAddress;
use turn::proto::reqtrans::RequestedTransport;

use super::selftest::STEP;

/// The private peer asked for: link-local cloud metadata, what an open relay exposes first.
pub const PRIVATE_PEER: &str = "169.254.169.254:80";

/// One answer: 0 for success, the error code otherwise.
struct Answer {
    code: u16,
}

struct Probe {
    socket: UdpSocket,
    server: SocketAddr,
    user: String,
    pass: String,
    realm: String,
    nonce: String,
}

impl Probe {
    fn build(
        &self,
        method: Method,
        mut extra: Vec<Box<dyn Setter>>,
    ) -> Result<(Vec<u8>, [u8; 12]), String> {
        let txn = TransactionId::new();
        let id = txn.0;
        let mut attrs: Vec<Box<dyn Setter>> = vec![
            Box::new(txn),
            Box::new(MessageType::new(method, CLASS_REQUEST)),
        ];
        attrs.append(&mut extra);
        if !self.nonce.is_empty() {
            attrs.push(Box::new(Username::new(ATTR_USERNAME, self.user.clone())));
            attrs.push(Box::new(Realm::new(ATTR_REALM, self.realm.clone())));
            attrs.push(Box::new(Nonce::new(ATTR_NONCE, self.nonce.clone())));
            attrs.push(Box::new(MessageIntegrity::new_long_term_integrity(
                self.user.clone(),
                self.realm.clone(),
                self.pass.clone(),
            )));
        }
        let mut m = Message::new();
        m.build(&attrs).map_err(|err| err.to_string())?;
        Ok((m.raw, id))
    }

    /// Sends one request (signed once a 401 taught us realm and nonce), three tries.
    async fn request(
        &mut self,
        method: Method,
        extra: Vec<Box<dyn Setter>>,
    ) -> Result<Answer, String> {
        let (raw, txn) = self.build(method, extra)?;
        let mut buf = vec![0u8; 2048];
        for _ in 0..3 {
            self.socket
                .send_to(&raw, self.server)
                .await
                .map_err(|e| e.to_string())?;
            let deadline = tokio::time::Instant::now() + STEP / 3;
            while let Ok(Ok((n, _))) =
                tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await
            {
                let mut m = Message::new();
                m.raw = buf[..n].to_vec();
                if m.decode().is_err() || m.transaction_id.0 != txn {
                    continue;
                }
                return Ok(self.learn(m));
            }
        }
        Err(format!(
            "{}: no answer (UDP blocked by a firewall?)",
            self.server
        ))
    }

    fn learn(&mut self, msg: Message) -> Answer {
        if let Ok(n) = TextAttribute::get_from_as(&msg, ATTR_NONCE) {
            self.nonce = n.text;
        }
        if let Ok(r) = TextAttribute::get_from_as(&msg, ATTR_REALM) {
            self.realm = r.text;
        }
        let code = match msg.typ.class {
            CLASS_SUCCESS_RESPONSE => 0,
            CLASS_ERROR_RESPONSE => {
                let mut code = ErrorCodeAttribute::default();
                code.get_from(&msg).map(|_| code.code.0).unwrap_or(1)
            }
            _ => 1,
        };
        Answer { code }
    }
}

fn udp_allocate() -> Vec<Box<dyn Setter>> {
    vec![Box::new(RequestedTransport {
        protocol: turn::proto::PROTO_UDP,
    })]
}

/// (unauthenticated Allocate refused?, private peer refused?) on `server`.
pub async fn refusals(
    server: SocketAddr,
    user: &str,
    pass: &str,
) -> (Result<String, String>, Result<String, String>) {
    let any = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = match UdpSocket::bind(any).await {
        Ok(socket) => socket,
        Err(err) => return (Err(err.to_string()), Err(err.to_string())),
    };
    let mut probe = Probe {
        socket,
        server,
        user: user.into(),
        pass: pass.into(),
        realm: String::new(),
        nonce: String::new(),
    };
    let unauth = match probe.request(METHOD_ALLOCATE, udp_allocate()).await {
        Ok(a) if a.code == 401 && !probe.nonce.is_empty() => Ok("refused with 401".to_string()),
        Ok(a) if a.code == 0 => {
            Err("an Allocate without credentials was ACCEPTED: this is an open relay".into())
        }
        Ok(a) => Err(format!("answered {} instead of 401", a.code)),
        Err(err) => Err(err),
    };
    if unauth.is_err() && probe.nonce.is_empty() {
        // No realm/nonce to sign with; still ask, as an open relay needs no signature.
        let private = private_peer(&mut probe).await;
        return (unauth, private);
    }
    let private = match probe.request(METHOD_ALLOCATE, udp_allocate()).await {
        Ok(a) if a.code == 0 => private_peer(&mut probe).await,
        Ok(a) => Err(format!(
            "allocation for the peer check refused with {}",
            a.code
        )),
        Err(err) => Err(err),
    };
    // Free the allocation at once rather than in 10 minutes.
    let _ = probe
        .request(
            METHOD_REFRESH,
            vec![Box::new(Lifetime(std::time::Duration::ZERO))],
        )
        .await;
    (unauth, private)
}

async fn private_peer(probe: &mut Probe) -> Result<String, String> {
    let peer: SocketAddr = PRIVATE_PEER.parse().map_err(|_| "address")?;
    let attrs: Vec<Box<dyn Setter>> = vec![Box::new(PeerAddress {
        ip: peer.ip(),
        port: peer.port(),
    })];
    match probe.request(METHOD_CREATE_PERMISSION, attrs).await? {
        a if a.code == 403 => Ok(format!("{PRIVATE_PEER} refused with 403")),
        a if a.code == 0 => Err(format!(
            "a permission for {PRIVATE_PEER} was GRANTED: relays reach private addresses"
        )),
        a => Err(format!(
            "{PRIVATE_PEER}: answered {} instead of 403",
            a.code
        )),
    }
}

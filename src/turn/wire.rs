//! STUN bits the guard needs that the `stun` crate does not offer directly: reading every
//! XOR-PEER-ADDRESS (the crate's getter only returns the first), and building the error and
//! Binding responses the guard sends itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use stun::agent::TransactionId;
use stun::attributes::{AttrType, ATTR_XOR_PEER_ADDRESS};
use stun::error_code::{ErrorCode, ErrorCodeAttribute};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{Message, MessageType, Method, Setter, BINDING_SUCCESS, CLASS_ERROR_RESPONSE};
use stun::textattrs::{Nonce, Realm, TextAttribute};
use stun::xoraddr::XorMappedAddress;

const MAGIC_COOKIE: u32 = 0x2112_a442;

/// REQUESTED-ADDRESS-FAMILY (RFC 6156).
pub const ATTR_REQUESTED_ADDRESS_FAMILY: AttrType = AttrType(0x0017);

/// Parses a STUN message; `None` for anything else (ChannelData, garbage).
pub fn parse(bytes: &[u8]) -> Option<Message> {
    if !stun::message::is_message(bytes) {
        return None;
    }
    let mut m = Message::new();
    m.raw = bytes.to_vec();
    m.decode().ok()?;
    Some(m)
}

/// True for a ChannelData frame (first two bits 01, RFC 8656 §12.4).
pub fn is_channel_data(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| b & 0xc0 == 0x40)
}

/// An XOR-PEER-ADDRESS that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed XOR-PEER-ADDRESS")]
pub struct MalformedPeer;

/// Every XOR-PEER-ADDRESS in `m`; `Err` if any is malformed (the request is then refused).
pub fn peer_addresses(m: &Message) -> Result<Vec<SocketAddr>, MalformedPeer> {
    m.attributes
        .0
        .iter()
        .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
        .map(|a| decode_xor_address(&a.value, &m.transaction_id.0).ok_or(MalformedPeer))
        .collect()
}

fn decode_xor_address(v: &[u8], txid: &[u8; 12]) -> Option<SocketAddr> {
    let family = u16::from_be_bytes([*v.first()?, *v.get(1)?]);
    let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    key[4..].copy_from_slice(txid);
    let ip = match (family, v.len()) {
        (0x01, 8) => {
            let b: [u8; 4] = std::array::from_fn(|i| v[4 + i] ^ key[i]);
            IpAddr::V4(Ipv4Addr::from(b))
        }
        (0x02, 20) => {
            let b: [u8; 16] = std::array::from_fn(|i| v[4 + i] ^ key[i]);
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The address family an Allocate asks for: `Some(true)` IPv4 (also the default),
/// `Some(false)` IPv6, `None` for a value we do not know.
pub fn requested_ipv4(m: &Message) -> Option<bool> {
    match m.get(ATTR_REQUESTED_ADDRESS_FAMILY) {
        Err(_) => Some(true),
        Ok(v) => match v.first() {
            Some(0x01) => Some(true),
            Some(0x02) => Some(false),
            _ => None,
        },
    }
}

/// CHANNEL-NUMBER of a ChannelBind, if present and well-formed.
pub fn channel_number(m: &Message) -> Option<u16> {
    let v = m.get(stun::attributes::ATTR_CHANNEL_NUMBER).ok()?;
    Some(u16::from_be_bytes([*v.first()?, *v.get(1)?]))
}

pub fn text_attr(m: &Message, t: AttrType) -> Option<String> {
    TextAttribute::get_from_as(m, t).ok().map(|a| a.text)
}

/// An error response; signed with `key` when the request was authenticated (RFC 8656 §4).
pub fn error_response(
    request: &Message,
    method: Method,
    code: u16,
    reason: &str,
    key: Option<&[u8]>,
) -> Option<Vec<u8>> {
    let mut attrs: Vec<Box<dyn Setter>> = vec![
        Box::new(TransactionId(request.transaction_id.0)),
        Box::new(MessageType::new(method, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute {
            code: ErrorCode(code),
            reason: reason.as_bytes().to_vec(),
        }),
    ];
    if let Some(key) = key {
        attrs.push(Box::new(MessageIntegrity(key.to_vec())));
    }
    attrs.push(Box::new(FINGERPRINT));
    build(&attrs)
}

/// 401 with our realm and a nonce the client may retry with.
pub fn unauthorized(request: &Message, realm: &str, nonce: &str) -> Option<Vec<u8>> {
    build(&[
        Box::new(TransactionId(request.transaction_id.0)),
        Box::new(MessageType::new(request.typ.method, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute {
            code: ErrorCode(401),
            reason: b"Unauthorized".to_vec(),
        }),
        Box::new(Realm::new(stun::attributes::ATTR_REALM, realm.to_string())),
        Box::new(Nonce::new(stun::attributes::ATTR_NONCE, nonce.to_string())),
        Box::new(FINGERPRINT),
    ])
}

/// Binding success: the client's address as we see it (its server-reflexive candidate).
pub fn binding_response(request: &Message, from: SocketAddr) -> Option<Vec<u8>> {
    build(&[
        Box::new(TransactionId(request.transaction_id.0)),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: from.ip(),
            port: from.port(),
        }),
        Box::new(FINGERPRINT),
    ])
}

fn build(attrs: &[Box<dyn Setter>]) -> Option<Vec<u8>> {
    let mut m = Message::new();
    m.build(attrs).ok()?;
    Some(m.raw)
}

/// The error code of an error response, if any.
pub fn error_code(m: &Message) -> Option<u16> {
    let mut code = ErrorCodeAttribute::default();
    use stun::message::Getter;
    code.get_from(m).ok()?;
    Some(code.code.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::message::{BINDING_REQUEST, CLASS_REQUEST};
    use turn::proto::peeraddr::PeerAddress;

    #[test]
    fn every_xor_peer_address_is_read() {
        let mut m = Message::new();
        m.build(&[
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(
                stun::message::METHOD_CREATE_PERMISSION,
                CLASS_REQUEST,
            )),
            Box::new(PeerAddress {
                ip: "8.8.8.8".parse().unwrap(),
                port: 1000,
            }),
            Box::new(PeerAddress {
                ip: "::ffff:127.0.0.1".parse().unwrap(),
                port: 2000,
            }),
        ])
        .unwrap();
        let parsed = parse(&m.raw).unwrap();
        assert_eq!(
            peer_addresses(&parsed).unwrap(),
            vec![
                "8.8.8.8:1000".parse::<SocketAddr>().unwrap(),
                "[::ffff:127.0.0.1]:2000".parse().unwrap()
            ]
        );
    }

    #[test]
    fn binding_response_carries_the_reflexive_address() {
        let mut req = Message::new();
        req.build(&[Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)])
            .unwrap();
        let from: SocketAddr = "192.0.2.1:32853".parse().unwrap();
        let resp = parse(&binding_response(&req, from).unwrap()).unwrap();
        let mut xor = XorMappedAddress::default();
        use stun::message::Getter;
        xor.get_from(&resp).unwrap();
        assert_eq!(SocketAddr::new(xor.ip, xor.port), from);
        assert_eq!(resp.transaction_id, req.transaction_id);
    }

    #[test]
    fn channel_data_is_told_apart_from_stun() {
        assert!(is_channel_data(&[0x40, 0x00, 0x00, 0x00]));
        assert!(!is_channel_data(&[0x00, 0x01, 0x00, 0x00]));
        assert!(parse(&[0x40, 0, 0, 0]).is_none());
    }
}

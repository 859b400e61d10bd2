//! The wire formats of relayed data, read and written in place: ChannelData (RFC 8656 §12.4),
//! Send and Data indications (§11). Reading borrows the payload from the received bytes;
//! writing puts the header in the headroom just before a payload that was received straight
//! into the frame buffer, so relaying copies nothing and allocates nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const SEND_INDICATION: [u8; 2] = [0x00, 0x16];
const DATA_INDICATION: [u8; 2] = [0x00, 0x17];
const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;
const ATTR_DATA: u16 = 0x0013;

/// Largest payload relayed from a peer (the crate's read buffer); longer datagrams are cut.
pub const MAX_PAYLOAD: usize = 1500;
/// Room for the longest header before the payload: a Data indication for an IPv6 peer.
pub const HEADROOM: usize = 20 + 4 + 20 + 4;
/// A frame buffer: headroom, payload, padding.
pub const FRAME: usize = HEADROOM + MAX_PAYLOAD + 4;

/// True for a ChannelData frame (first two bits 01).
pub fn is_channel_data(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| b & 0xc0 == 0x40)
}

/// True for a Send indication (it may still be malformed).
pub fn is_send_indication(bytes: &[u8]) -> bool {
    bytes.get(..2) == Some(&SEND_INDICATION[..])
}

/// Channel number and payload of a ChannelData frame (trailing padding ignored).
pub fn channel_data(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let number = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
    let len = usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]));
    Some((number, bytes.get(4..4 + len)?))
}

/// The first XOR-PEER-ADDRESS and the DATA of a Send indication, as the crate reads them.
pub fn send_indication(bytes: &[u8]) -> Option<(SocketAddr, &[u8])> {
    if !is_send_indication(bytes) || bytes.get(4..8)? != MAGIC_COOKIE {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let body = bytes.get(20..20 + len)?;
    let txid = bytes.get(8..20)?;
    let (mut peer, mut data) = (None, None);
    let mut at = 0;
    while at + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[at], body[at + 1]]);
        let alen = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + alen)?;
        match typ {
            ATTR_XOR_PEER_ADDRESS if peer.is_none() => peer = Some(xor_address(value, txid)?),
            ATTR_DATA if data.is_none() => data = Some(value),
            _ => {}
        }
        at += 4 + alen.div_ceil(4) * 4;
    }
    Some((peer?, data?))
}

fn xor_address(v: &[u8], txid: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]) ^ 0x2112;
    let key = |i: usize| match i {
        0..=3 => MAGIC_COOKIE[i],
        _ => txid[i - 4],
    };
    let ip = match (v.get(1)?, v.len()) {
        (0x01, 8) => IpAddr::V4(Ipv4Addr::from(std::array::from_fn::<u8, 4, _>(|i| {
            v[4 + i] ^ key(i)
        }))),
        (0x02, 20) => IpAddr::V6(Ipv6Addr::from(std::array::from_fn::<u8, 16, _>(|i| {
            v[4 + i] ^ key(i)
        }))),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Writes a ChannelData header before the `n` payload bytes at `frame[HEADROOM..]`, padded to
/// a multiple of 4 over a stream (RFC 8656 §12.5), and returns the whole frame.
pub fn channel_frame(frame: &mut [u8; FRAME], n: usize, number: u16, stream: bool) -> &[u8] {
    let start = HEADROOM - 4;
    frame[start..start + 2].copy_from_slice(&number.to_be_bytes());
    frame[start + 2..HEADROOM].copy_from_slice(&(n as u16).to_be_bytes());
    let mut end = HEADROOM + n;
    if stream {
        let padded = HEADROOM + n.div_ceil(4) * 4;
        frame[end..padded].fill(0);
        end = padded;
    }
    &frame[start..end]
}

/// Writes a Data indication from `peer` around the `n` payload bytes at `frame[HEADROOM..]`.
pub fn data_frame(frame: &mut [u8; FRAME], n: usize, peer: SocketAddr, txid: [u8; 12]) -> &[u8] {
    let addr_len = if peer.is_ipv4() { 8 } else { 20 };
    let start = HEADROOM - (20 + 4 + addr_len + 4);
    let padded = n.div_ceil(4) * 4;
    let body_len = 4 + addr_len + 4 + padded;
    let h = &mut frame[start..HEADROOM];
    h[0..2].copy_from_slice(&DATA_INDICATION);
    h[2..4].copy_from_slice(&(body_len as u16).to_be_bytes());
    h[4..8].copy_from_slice(&MAGIC_COOKIE);
    h[8..20].copy_from_slice(&txid);
    h[20..22].copy_from_slice(&ATTR_XOR_PEER_ADDRESS.to_be_bytes());
    h[22..24].copy_from_slice(&(addr_len as u16).to_be_bytes());
    h[24] = 0;
    h[26..28].copy_from_slice(&(peer.port() ^ 0x2112).to_be_bytes());
    let key = |i: usize| if i < 4 { MAGIC_COOKIE[i] } else { txid[i - 4] };
    match peer.ip() {
        IpAddr::V4(ip) => {
            h[25] = 0x01;
            for (i, b) in ip.octets().iter().enumerate() {
                h[28 + i] = b ^ key(i);
            }
        }
        IpAddr::V6(ip) => {
            h[25] = 0x02;
            for (i, b) in ip.octets().iter().enumerate() {
                h[28 + i] = b ^ key(i);
            }
        }
    }
    let d = 24 + addr_len;
    h[d..d + 2].copy_from_slice(&ATTR_DATA.to_be_bytes());
    h[d + 2..d + 4].copy_from_slice(&(n as u16).to_be_bytes());
    frame[HEADROOM + n..HEADROOM + padded].fill(0);
    &frame[start..HEADROOM + padded]
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::message::{Getter, Message};
    use turn::proto::data::Data;
    use turn::proto::peeraddr::PeerAddress;

    fn with_payload(payload: &[u8]) -> Box<[u8; FRAME]> {
        let mut frame = Box::new([0u8; FRAME]);
        frame[HEADROOM..HEADROOM + payload.len()].copy_from_slice(payload);
        frame
    }

    #[test]
    fn data_indications_decode_with_the_stun_crate() {
        for peer in ["198.51.7.1:5000", "[2001:db8::7]:6000"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let mut frame = with_payload(b"hello");
            let bytes = data_frame(&mut frame, 5, peer, [3; 12]).to_vec();
            let mut m = Message::new();
            m.raw = bytes;
            m.decode().unwrap();
            let mut addr = PeerAddress::default();
            addr.get_from(&m).unwrap();
            assert_eq!(SocketAddr::new(addr.ip, addr.port), peer);
            let mut data = Data::default();
            data.get_from(&m).unwrap();
            assert_eq!(data.0, b"hello");
        }
    }

    #[test]
    fn send_indications_built_by_the_stun_crate_are_read() {
        use stun::message::{MessageType, Setter, CLASS_INDICATION, METHOD_SEND};
        let peer: SocketAddr = "[2001:db8::7]:6000".parse().unwrap();
        let mut m = Message::new();
        let attrs: Vec<Box<dyn Setter>> = vec![
            Box::new(stun::agent::TransactionId::new()),
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
            Box::new(PeerAddress {
                ip: peer.ip(),
                port: peer.port(),
            }),
            Box::new(Data(b"abc".to_vec())),
            Box::new(stun::fingerprint::FINGERPRINT),
        ];
        m.build(&attrs).unwrap();
        assert_eq!(send_indication(&m.raw), Some((peer, &b"abc"[..])));
        assert_eq!(send_indication(&m.raw[..m.raw.len() - 9]), None);
    }

    #[test]
    fn channel_frames_are_padded_over_streams_only() {
        let mut frame = with_payload(b"hello");
        assert_eq!(
            channel_frame(&mut frame, 5, 0x4001, false),
            &[0x40, 0x01, 0, 5, b'h', b'e', b'l', b'l', b'o']
        );
        assert_eq!(channel_frame(&mut frame, 5, 0x4001, true).len(), 12);
        assert_eq!(
            channel_data(&[0x40, 0x01, 0, 2, 7, 8, 0, 0]),
            Some((0x4001, &[7u8, 8][..]))
        );
        assert_eq!(channel_data(&[0x40, 0x01, 0, 9, 7]), None);
    }
}

//! [`FrameWriter`]'s frames are read back by tungstenite itself (as a client would), so the
//! encoding is checked against an independent decoder, not against our own idea of it.

use super::*;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Everything in `bytes`, decoded by a tungstenite client. The other end stays open (the
/// client answers a ping) until the client has read nothing new for a while.
async fn decode(bytes: Vec<u8>) -> Vec<Message> {
    let (mut near, far) = tokio::io::duplex(1 << 20);
    near.write_all(&bytes).await.expect("write");
    let mut client = WebSocketStream::from_raw_socket(far, Role::Client, None).await;
    let mut out = Vec::new();
    let quiet = Duration::from_millis(300);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(quiet, client.next()).await {
        out.push(msg);
    }
    drop(near);
    out
}

#[tokio::test]
async fn frames_of_every_length_class_decode_as_written() {
    let mut w = FrameWriter::new(Vec::new());
    let sizes = [0, 1, 125, 126, 300, 65535, 65536, 200_000];
    for &n in &sizes {
        w.text(&"a".repeat(n));
    }
    for &n in &sizes {
        let body = "b".repeat(n);
        w.text_with(|buf| {
            buf.extend_from_slice(body.as_bytes());
            Ok::<(), ()>(())
        })
        .expect("written");
    }
    w.ping();
    w.pong(b"hello");
    w.flush().await.expect("flush");
    let got = decode(std::mem::take(&mut w.io)).await;
    let mut want: Vec<Message> = sizes
        .iter()
        .map(|&n| Message::Text("a".repeat(n).into()))
        .collect();
    want.extend(sizes.iter().map(|&n| Message::Text("b".repeat(n).into())));
    want.push(Message::Ping(Default::default()));
    want.push(Message::Pong(tungstenite::Bytes::from_static(b"hello")));
    assert_eq!(got.len(), want.len(), "frame count");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g == w, "frame {i}: {} bytes, want {}", g.len(), w.len());
    }
}

#[tokio::test]
async fn a_failed_payload_leaves_no_trace_and_close_frames_fit_a_control_frame() {
    let mut w = FrameWriter::new(Vec::new());
    w.text("one");
    let failed = w.text_with(|buf| {
        buf.extend_from_slice(b"half");
        Err("no")
    });
    assert_eq!(failed, Err("no"));
    w.close(Some((1000, &"é".repeat(100))));
    w.flush().await.expect("flush");
    let got = decode(std::mem::take(&mut w.io)).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], Message::Text("one".into()));
    let Message::Close(Some(CloseFrame { code, reason })) = &got[1] else {
        panic!("a close frame: {got:?}");
    };
    assert_eq!(u16::from(*code), 1000);
    assert_eq!(
        reason.as_str(),
        "é".repeat(61),
        "123 bytes at most, whole chars"
    );
}

#[tokio::test]
async fn an_empty_close_echoes_a_close_without_code() {
    let mut w = FrameWriter::new(Vec::new());
    w.close(None);
    w.flush().await.expect("flush");
    assert_eq!(w.io, vec![0x88, 0]);
}

#[tokio::test]
async fn the_buffer_is_freed_on_release_and_a_cut_write_resumes() {
    let (near, mut far) = tokio::io::duplex(64);
    let mut w = FrameWriter::new(near);
    assert_eq!(w.capacity(), 0);
    w.text(&"x".repeat(200));
    // The pipe takes 64 bytes: the flush stalls, and is given up (as on shutdown).
    let cut = tokio::time::timeout(Duration::from_millis(50), w.flush()).await;
    assert!(cut.is_err(), "stalled");
    assert_eq!(w.buffered().len(), 204 - 64, "the unwritten rest is kept");
    w.release();
    assert!(w.capacity() > 0, "not freed while something is unwritten");
    w.close(Some((1001, "going away")));
    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = far.read_to_end(&mut all).await;
        all
    });
    w.flush().await.expect("flush");
    w.release();
    assert_eq!(w.capacity(), 0, "freed once written");
    drop(w);
    let got = decode(reader.await.expect("reader")).await;
    assert_eq!(
        got.len(),
        2,
        "the close follows the whole text frame: {got:?}"
    );
}

#[tokio::test]
async fn the_pipe_hands_the_latest_ping_to_the_writer() {
    let pipe = ReplyPipe::default();
    assert_eq!(pipe.take_pong(), None);
    pipe.ping(tungstenite::Bytes::from_static(b"1"));
    pipe.ping(tungstenite::Bytes::from_static(b"2"));
    let got = tokio::time::timeout(Duration::from_secs(5), pipe.pong()).await;
    assert_eq!(got.ok().as_deref(), Some(&b"2"[..]));
    assert_eq!(pipe.take_pong(), None);
}

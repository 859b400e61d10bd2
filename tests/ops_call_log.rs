//! The call-end log line, read from the log of a real `callbox` process: one line per call
//! with the room, the duration, the path the page reported and how the call ended, and
//! nothing of what the call carried (SDP, candidates, chat text, tokens, names).

mod common;

use std::net::SocketAddr;
use std::process::Command;

use serde_json::json;

#[tokio::test]
async fn each_call_end_is_one_line_with_room_duration_path_and_cause_and_nothing_it_carried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    let port = common::free_port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[metrics]\nlisten = \"\"\n\
         [turn]\nenabled = false\n"
    );
    std::fs::write(&path, config).expect("write config");
    let (running, mut lines) = common::spawn_callbox(&path);
    lines.wait("callbox is running");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (mut ann, mut bob) = common::ann_and_bob(addr).await;

    // A call as the page makes it: ring, accept, offer/answer/candidates, media state with
    // the path in use, some chat, then a hang-up.
    ann.send(json!({"type": "call-request", "target": "bob"}))
        .await;
    bob.recv_type("call-request").await;
    bob.send(json!({"type": "call-accept", "target": "ann"}))
        .await;
    ann.recv_type("call-accept").await;
    let sdp = json!({"type": "offer", "sdp": "v=0 SECRET-SDP"});
    ann.send(json!({"type": "video-offer", "target": "bob", "sdp": sdp}))
        .await;
    bob.recv_type("video-offer").await;
    let candidate = json!({"candidate": "candidate:1 1 udp 1 192.0.2.9 9 typ relay SECRET-CAND"});
    bob.send(json!({"type": "new-ice-candidate", "target": "ann", "candidate": candidate}))
        .await;
    ann.recv_type("new-ice-candidate").await;
    ann.send(json!({"type": "message", "text": "SECRET-CHAT"}))
        .await;
    bob.recv_type("message").await;
    let media = json!({"type": "call-media", "target": "bob", "audio": true, "video": true,
                       "screen": false, "path": "relay"});
    ann.send(media).await;
    bob.recv_type("call-media").await;
    bob.send(json!({"type": "hang-up", "target": "ann"})).await;
    ann.recv_type("hang-up").await;
    let first = lines.wait("call ended");
    for field in [
        "room=",
        "duration_s=",
        "path=\"relay\"",
        "ended=\"hang-up\"",
    ] {
        assert!(first.contains(field), "{field} missing: {first}");
    }

    // A second call that ends because one side goes away; no page reported its path.
    let mut cat = common::connect(addr, "/ws").await;
    cat.login("cat").await;
    cat.send(json!({"type": "video-offer", "target": "ann", "sdp": {}}))
        .await;
    ann.recv_type("video-offer").await;
    ann.send(json!({"type": "video-answer", "target": "cat", "sdp": {}}))
        .await;
    cat.recv_type("video-answer").await;
    drop(cat);
    let second = lines.wait("call ended");
    assert!(second.contains("ended=\"disconnected\""), "{second}");
    assert!(second.contains("path=\"unknown\""), "{second}");

    drop((ann, bob));
    let _ = Command::new("kill")
        .args(["-TERM", &running.0.id().to_string()])
        .status();
    lines.wait("SIGTERM: shutting down");
    let calls = lines
        .seen()
        .iter()
        .filter(|l| l.contains("call ended"))
        .count();
    assert_eq!(calls, 2, "one line per call:\n{}", lines.seen().join("\n"));
    for line in lines.seen().iter().filter(|l| l.contains("call ended")) {
        for secret in ["SECRET", "ann", "bob", "cat", "token", "sdp", "candidate"] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
    }
    let all = lines.seen().join("\n");
    for secret in ["SECRET-SDP", "SECRET-CAND", "SECRET-CHAT"] {
        assert!(!all.contains(secret), "{secret} logged:\n{all}");
    }
}

//! SIGHUP on the real binary: new access codes apply to the next login while people stay
//! logged in, listener and other restart-only changes are named in the log, and a broken file
//! keeps the running settings.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_callbox");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Reads log lines until one contains `needle` (bounded by time).
fn wait_log(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    panic!("no log line containing {needle:?}");
}

fn config(port: u16, code: &str, grace: u64) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace_secs = {grace}\n\
         [metrics]\nlisten = \"\"\n[turn]\nenabled = false\n\
         [signaling]\naccess_code = \"{code}\"\n"
    )
}

async fn login_result(addr: SocketAddr, name: &str, code: &str) -> (common::Client, bool) {
    let mut client = common::connect(addr, "/ws").await;
    client
        .send(json!({"type": "login", "name": name, "access_code": code}))
        .await;
    let reply = client.recv_type("login").await;
    (client, reply["success"] == true)
}

#[tokio::test]
async fn sighup_applies_access_codes_names_restart_keys_and_survives_a_bad_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    std::fs::write(&path, config(port, "old-code", 4)).expect("write config");
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .env("CALLBOX_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start callbox");
    let stderr = child.stderr.take().expect("stderr");
    let running = Running(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    wait_log(&lines, "callbox is running");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (mut ann, ok) = login_result(addr, "ann", "old-code").await;
    assert!(ok, "the starting code works");

    std::fs::write(&path, config(port + 1, "new-code", 9)).expect("rewrite config");
    signal(&running.0, "-HUP");
    wait_log(&lines, "SIGHUP: applied signaling.access_code");
    wait_log(&lines, "listeners changed, restart to apply: server.listen");
    wait_log(
        &lines,
        "changed, restart to apply: server.shutdown_grace_secs",
    );
    assert!(
        !login_result(addr, "bob", "old-code").await.1,
        "old code refused"
    );
    let (_bob, ok) = login_result(addr, "bob", "new-code").await;
    assert!(ok, "new code accepted");
    ann.wait_user_list(&["ann", "bob"]).await;

    std::fs::write(&path, "[server]\nlisten = 5\n").expect("break config");
    signal(&running.0, "-HUP");
    let line = wait_log(&lines, "SIGHUP: keeping the running settings");
    assert!(line.contains("config.toml"), "{line}");
    let (_carol, ok) = login_result(addr, "carol", "new-code").await;
    assert!(ok, "the applied code still works after a bad file");

    signal(&running.0, "-TERM");
    wait_log(&lines, "SIGTERM: shutting down");
}

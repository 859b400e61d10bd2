//! `callbox selftest` against the real binary serving HTTPS and TURN on loopback: every check
//! passes while it runs (DNS, HTTPS certificate and /healthz, STUN on UDP/TCP/TLS and on the
//! HTTPS port, a TURN allocation, metrics), and the checks fail once it has stopped.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, Running};

const BIN: &str = env!("CARGO_BIN_EXE_callbox");

fn selftest(config: &std::path::Path) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("selftest")
        .output()
        .expect("run selftest");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn selftest_passes_against_a_running_server_and_fails_once_it_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert, key) = (
        dir.path().join("fullchain.pem"),
        dir.path().join("privkey.pem"),
    );
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key");
    let (web, udp, tcp, tls, metrics) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\npublic_host = \"localhost\"\nlisten = \"127.0.0.1:{web}\"\n\
             [tls]\nenabled = true\ncert = {cert:?}\nkey = {key:?}\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\
             [turn]\nlisten_udp = [\"127.0.0.1:{udp}\"]\nlisten_tcp = [\"127.0.0.1:{tcp}\"]\n\
             listen_tls = [\"127.0.0.1:{tls}\"]\nrelay_port_min = 20000\nrelay_port_max = 20100\n\
             secrets = [\"selftest-secret-0123456789abcdef\"]\n"
        ),
    )
    .expect("write config");
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start callbox");
    let stdout = child.stdout.take().expect("stdout");
    let server = Running(child);
    let mut banner = String::new();
    BufReader::new(stdout)
        .read_line(&mut banner)
        .expect("banner");
    assert!(banner.contains("callbox is running"), "{banner}");

    let (ok, report) = selftest(&config);
    assert!(ok, "{report}");
    for line in [
        "ok   dns ".to_string(),
        "ok   web ".to_string(),
        "ok   certificate        valid for ".to_string(),
        format!("ok   stun udp {udp}"),
        format!("ok   stun tcp {tcp}"),
        format!("ok   stun tls {tls}"),
        format!("ok   stun tls {web}"),
        "ok   login              TURN user ".to_string(),
        "ok   turn allocate udp  relayed address 127.0.0.1:".to_string(),
        "ok   turn unauthenticated refused with 401".to_string(),
        "ok   turn private peer  169.254.169.254:80 refused with 403".to_string(),
        "ok   metrics ".to_string(),
        "12 passed, 0 failed".to_string(),
    ] {
        assert!(report.contains(&line), "no {line:?} in:\n{report}");
    }

    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut server = server;
    while server.0.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "callbox still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, report) = selftest(&config);
    assert!(!ok, "{report}");
    assert!(report.contains("FAIL web "), "{report}");
}

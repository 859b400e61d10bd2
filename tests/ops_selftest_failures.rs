//! `callbox selftest` fails each check the way a broken install would, against a live callbox
//! on loopback: a certificate that is not the one the config names, an expired one, a TURN port nothing
//! answers on, and, where a real callbox cannot misbehave, a tiny real UDP server that
//! accepts every request (an open relay that also relays to private peers). Each failure
//! prints its fix line and makes the exit status non-zero.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{free_port, Running};

const BIN: &str = env!("CARGO_BIN_EXE_callbox");

fn write_cert(dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    write_pem(
        dir,
        tag,
        &certified.cert.pem(),
        &certified.key_pair.serialize_pem(),
    )
}

fn write_pem(dir: &Path, tag: &str, cert_pem: &str, key_pem: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{tag}-fullchain.pem")),
        dir.join(format!("{tag}-privkey.pem")),
    );
    std::fs::write(&cert, cert_pem).expect("write cert");
    std::fs::write(&key, key_pem).expect("write key");
    (cert, key)
}

/// A self-signed certificate for localhost whose validity ended in 2021: what a server keeps
/// serving when renewal has been failing.
fn write_expired_cert(dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    write_pem(dir, tag, &cert.pem(), &key.serialize_pem())
}

fn config(web: u16, udp: u16, cert: &Path, key: &Path) -> String {
    format!(
        "[server]\npublic_host = \"localhost\"\nlisten = \"127.0.0.1:{web}\"\n\
         [tls]\nenabled = true\ncert = {cert:?}\nkey = {key:?}\n[metrics]\nlisten = \"\"\n\
         [turn]\nlisten_udp = [\"127.0.0.1:{udp}\"]\nlisten_tcp = []\non_https_port = false\n\
         relay_port_min = 20200\nrelay_port_max = 20300\n\
         secrets = [\"selftest-secret-0123456789abcdef\"]\n"
    )
}

/// A live callbox (HTTPS on `web`, TURN UDP on `udp`) with a fresh certificate in `dir`.
fn start(dir: &Path, web: u16, udp: u16) -> (Running, PathBuf, PathBuf) {
    let (cert, key) = write_cert(dir, "served");
    start_with(dir, web, udp, cert, key)
}

fn start_with(
    dir: &Path,
    web: u16,
    udp: u16,
    cert: PathBuf,
    key: PathBuf,
) -> (Running, PathBuf, PathBuf) {
    let path = dir.join("server.toml");
    std::fs::write(&path, config(web, udp, &cert, &key)).expect("write config");
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
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
    (server, cert, key)
}

/// Runs selftest with `text` as its config: (exit status ok, printed report).
fn selftest(dir: &Path, text: &str) -> (bool, String) {
    let path = dir.join("selftest.toml");
    std::fs::write(&path, text).expect("write config");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("selftest")
        .output()
        .expect("run selftest");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The report has a FAIL line for `check` containing `detail`, followed by its fix line.
fn assert_fails(report: &str, check: &str, detail: &str, fix: &str) {
    let lines: Vec<&str> = report.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("FAIL {check}")) && l.contains(detail))
        .unwrap_or_else(|| panic!("no FAIL {check} ... {detail} in:\n{report}"));
    let next = lines.get(at + 1).copied().unwrap_or("");
    assert!(
        next.trim_start().starts_with("fix:") && next.contains(fix),
        "{next}\n{report}"
    );
}

#[test]
fn a_certificate_other_than_the_configured_one_fails_web_with_its_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (web, udp) = (free_port(), free_port());
    let (_server, _, _) = start(dir.path(), web, udp);
    // The copy of the config names another certificate: the served one does not chain to it.
    let (other_cert, other_key) = write_cert(dir.path(), "other");
    let (ok, report) = selftest(dir.path(), &config(web, udp, &other_cert, &other_key));
    assert!(!ok, "{report}");
    assert_fails(
        &report,
        "web",
        "TLS",
        "tls.cert must be the unexpired chain",
    );
    assert!(
        report.contains("ok   stun udp"),
        "TURN itself is fine:\n{report}"
    );
}

#[test]
fn an_expired_certificate_fails_the_certificate_check_with_the_renew_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (web, udp) = (free_port(), free_port());
    let (cert, key) = write_expired_cert(dir.path(), "expired");
    let (_server, cert, key) = start_with(dir.path(), web, udp, cert, key);
    // The config names the served certificate: only its dates are wrong.
    let (ok, report) = selftest(dir.path(), &config(web, udp, &cert, &key));
    assert!(!ok, "{report}");
    assert_fails(
        &report,
        "certificate",
        "certificate expired",
        "certbot renew",
    );
    assert!(
        report.contains("ok   stun udp"),
        "TURN itself is fine:\n{report}"
    );
}

#[test]
fn a_turn_port_nothing_answers_on_fails_stun_and_allocate_with_their_fixes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (web, udp) = (free_port(), free_port());
    let (_server, cert, key) = start(dir.path(), web, udp);
    let silent = free_port();
    let (ok, report) = selftest(dir.path(), &config(web, silent, &cert, &key));
    assert!(!ok, "{report}");
    assert_fails(
        &report,
        &format!("stun udp {silent}"),
        "no answer",
        "open this UDP port",
    );
    assert_fails(
        &report,
        "turn allocate udp",
        "",
        "open the relay port range",
    );
    assert_fails(&report, "turn unauthenticated", "no answer", "open relay");
    assert!(
        report.contains("ok   web "),
        "the web side is fine:\n{report}"
    );
}

/// A UDP "TURN server" that answers every STUN request with a bare success response: it
/// allocates for anyone and grants every permission. Runs until `stop` (at most 60 s).
fn open_relay(stop: Arc<AtomicBool>) -> (u16, std::thread::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = socket.local_addr().expect("addr").port();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(60);
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let is_request = n >= 20 && buf[4..8] == [0x21, 0x12, 0xa4, 0x42] && buf[0] & 0x01 == 0;
            if !is_request {
                continue;
            }
            // Same method, success class (0x0100), same transaction id, no attributes.
            let mut reply = vec![buf[0] | 0x01, buf[1], 0, 0];
            reply.extend_from_slice(&buf[4..20]);
            let _ = socket.send_to(&reply, from);
        }
    });
    (port, thread)
}

#[test]
fn an_open_relay_on_the_turn_port_fails_both_refusal_checks_with_their_fixes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (web, udp) = (free_port(), free_port());
    let (_server, cert, key) = start(dir.path(), web, udp);
    let stop = Arc::new(AtomicBool::new(false));
    let (relay, thread) = open_relay(Arc::clone(&stop));
    let (ok, report) = selftest(dir.path(), &config(web, relay, &cert, &key));
    stop.store(true, Ordering::Relaxed);
    let _ = thread.join();
    assert!(!ok, "{report}");
    assert_fails(
        &report,
        "turn unauthenticated",
        "ACCEPTED",
        "an open relay answers",
    );
    assert_fails(
        &report,
        "turn private peer",
        "GRANTED",
        "remove private ranges",
    );
}

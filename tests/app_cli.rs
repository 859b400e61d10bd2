//! The `callbox` binary as an operator meets it: check-config, start-up errors, SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_callbox");

fn repo_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// Writes a self-signed certificate and key as certbot would lay them out.
fn write_cert_files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["call.example.com".to_string()])
        .expect("generate certificate");
    let cert = dir.join("fullchain.pem");
    let key = dir.join("privkey.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key");
    (cert, key)
}

#[test]
fn shipped_config_passes_check_config_once_its_certificates_and_placeholders_are_replaced() {
    let shipped = std::fs::read_to_string(repo_file("config.toml")).expect("read config.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_cert_files(dir.path());
    let cert_line = "/etc/letsencrypt/live/call.example.com/fullchain.pem";
    let key_line = "/etc/letsencrypt/live/call.example.com/privkey.pem";
    assert!(shipped.contains(cert_line) && shipped.contains(key_line));
    let with_certs = shipped
        .replace(cert_line, &cert.display().to_string())
        .replace(key_line, &key.display().to_string());
    let secret_line = "replace-with-output-of: openssl rand -hex 32";
    let code_line = "replace-with-the-code-you-give-your-callers";
    assert!(with_certs.contains(secret_line) && with_certs.contains(code_line));
    let check = |text: &str| {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).expect("write config");
        Command::new(BIN)
            .arg("check-config")
            .arg(&path)
            .output()
            .expect("run callbox")
    };
    // The placeholders are refused, each naming its key.
    let good_secret = "9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
    let with_secret = with_certs.replace(secret_line, good_secret);
    let out = check(&with_certs.replace(code_line, "a-code-we-share"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("turn.secrets[0]"));
    let out = check(&with_secret.replace(code_line, "a-code-we-share"));
    assert!(
        out.status.success(),
        "check-config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check(&with_secret.replace(code_line, ""));
    assert!(
        out.status.success(),
        "an explicitly open server is accepted"
    );
    let out = check(&with_secret);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signaling.access_code"));
}

#[test]
fn shipped_config_without_certificates_names_the_missing_file() {
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(repo_file("config.toml"))
        .output()
        .expect("run callbox");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/etc/letsencrypt/live/call.example.com/fullchain.pem"),
        "{stderr}"
    );
}

fn check_config_error(text: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).expect("write config");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run callbox");
    assert!(!out.status.success(), "accepted: {text}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_key_wrong_type_and_port_clash_each_fail_naming_the_key() {
    assert!(check_config_error("[turn]\nrelay_prot_min = 1\n").contains("relay_prot_min"));
    assert!(
        check_config_error("[signaling]\nmax_frame_bytes = \"big\"\n").contains("max_frame_bytes")
    );
    assert!(check_config_error(
        "[server]\nlisten = \"127.0.0.1:3478\"\n[turn]\nlisten_tcp = [\"0.0.0.0:3478\"]\n"
    )
    .contains("turn.listen_tcp"));
}

#[test]
fn unreadable_config_file_is_named() {
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/callbox.toml"])
        .output()
        .expect("run callbox");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/callbox.toml"));
}

#[test]
fn sigterm_stops_the_server_with_exit_code_zero_within_five_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\n[turn]\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = [\"127.0.0.1:0\"]\n",
    )
    .expect("write config");
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start callbox");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read banner");
    assert!(line.contains("http://localhost:"), "banner: {line}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        if started.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("callbox still running 5 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit}");
}

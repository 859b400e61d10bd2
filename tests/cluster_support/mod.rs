//! For the cluster tests: a real `redis-server` on a free loopback port (its own process, no
//! files outside a temp dir) and callbox nodes as separate processes on their own loopback
//! addresses, so one can be SIGKILLed. Every wait is bounded.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_callbox");

/// A loopback port nothing listens on right now.
pub fn free_port(ip: &str) -> u16 {
    let listener = std::net::TcpListener::bind((ip, 0)).expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut redis = Redis {
            port: free_port("127.0.0.1"),
            dir,
            child: None,
        };
        redis.resume();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port, empty: persistence is off.
    pub fn resume(&mut self) {
        let child = Command::new("/usr/bin/redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL, its own PID): Redis is suddenly gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One callbox process.
pub struct Node {
    pub addr: SocketAddr,
    pub log: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts callbox on `ip` (e.g. "127.0.0.2") as cluster node `id`; `extra` is appended to
    /// its config (TURN is off unless `extra` has a `[turn]` section).
    pub fn start(ip: &str, id: &str, redis: &Redis, extra: &str) -> Node {
        let cluster = format!(
            "[cluster]\nredis = \"{}\"\nnode_id = \"{id}\"\nclaim_ttl_secs = 2\n",
            redis.url()
        );
        Node::spawn(ip, &cluster, extra)
    }

    /// One callbox without `[cluster]` (the single-node baseline).
    pub fn single(ip: &str, extra: &str) -> Node {
        Node::spawn(ip, "", extra)
    }

    fn spawn(ip: &str, cluster: &str, extra: &str) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.toml");
        let turn = match extra.contains("[turn]") {
            true => "",
            false => "[turn]\nenabled = false\n",
        };
        let text = format!(
            "[server]\nlisten = \"{ip}:0\"\n{turn}\n[metrics]\nlisten = \"\"\n\n{cluster}\n{extra}\n"
        );
        std::fs::write(&config, text).expect("write config");
        let log = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .env(
                "CALLBOX_LOG",
                "info,turn=off,webrtc_util=off,callbox::signaling::cluster=trace",
            )
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start callbox");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read banner");
        let port: u16 = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no port in banner: {line}"));
        Node {
            addr: SocketAddr::new(ip.parse().expect("ip"), port),
            log,
            child: Some(child),
            _dir: dir,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no logout, no goodbye to Redis.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Still running (it did not crash or exit)?
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

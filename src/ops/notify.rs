//! The systemd notification protocol (sd_notify(3)): one datagram of `KEY=VALUE` lines to the
//! socket named in `$NOTIFY_SOCKET`. It is small enough to write here (a path or an abstract
//! `@name`, one `send`), which spares a dependency and keeps the behaviour in view: with no
//! `$NOTIFY_SOCKET` (not under systemd, `Type=simple`) every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A connection to the service manager, or nothing when not run by one.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` (the watchdog applies to
    /// this process only if the PID is ours or unset).
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let addr = socket_addr(path.as_encoded_bytes())?;
            match UnixDatagram::unbound() {
                Ok(socket) => Some((socket, addr)),
                Err(err) => {
                    tracing::warn!("NOTIFY_SOCKET is set but no socket can be made: {err}");
                    None
                }
            }
        });
        let pid_ok = std::env::var("WATCHDOG_PID")
            .map(|pid| pid.trim() == std::process::id().to_string())
            .unwrap_or(true);
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && pid_ok)
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    /// The watchdog timeout systemd enforces (`WatchdogSec=`), if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.socket.as_ref().and(self.watchdog)
    }

    /// Sends one notification (e.g. "READY=1\nSTATUS=..."). Failures are logged, never fatal:
    /// the service manager being gone must not stop calls.
    pub fn send(&self, state: &str) {
        let Some((socket, addr)) = &self.socket else {
            return;
        };
        if let Err(err) = socket.send_to_addr(state.as_bytes(), addr) {
            tracing::debug!("sd_notify {state:?} failed: {err}");
        }
    }
}

/// A filesystem path, or `@name` for Linux's abstract namespace.
fn socket_addr(path: &[u8]) -> Option<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    let result = match path.split_first() {
        None => return None,
        Some((b'@', name)) => std::os::unix::net::SocketAddr::from_abstract_name(name),
        Some(_) => {
            use std::os::unix::ffi::OsStrExt;
            let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
            std::os::unix::net::SocketAddr::from_pathname(path)
        }
    };
    match result {
        Ok(addr) => Some(addr),
        Err(err) => {
            tracing::warn!("NOTIFY_SOCKET is not a usable address: {err}");
            None
        }
    }
}

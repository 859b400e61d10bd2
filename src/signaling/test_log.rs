//! Test support: what the code under test logs, as text, for asserting on log lines (one
//! burst logged once, a call's duration) without a process to read stderr from.

use std::sync::{Arc, Mutex};

/// Runs `body` with a plain-text subscriber of its own and returns what it logged.
pub fn logged_by(body: impl FnOnce()) -> String {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, body);
    let bytes = crate::lock::lock(&captured.0, "captured log").clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Log lines written while a test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::lock::lock(&self.0, "captured log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

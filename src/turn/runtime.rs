//! The TURN listeners' own runtime: one worker thread that runs every listener, session and
//! relay socket, so a relayed packet is read, looked up and sent on the thread that was woken
//! for it. On the process's multi-thread runtime the two workers handed packets to each other
//! (a futex wake per handoff, a parked worker per packet) and the I/O driver was shared with
//! signaling; measured in bench/turn.sh, that cost more than the second core gave.
//!
//! One runtime for the process (tests start many servers in one process): it is made on first
//! use and lives until the process exits, since a runtime cannot be dropped from async code.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();

/// Where TURN listeners are spawned: the TURN runtime, or the caller's if it could not start.
pub fn handle() -> Handle {
    let runtime = RUNTIME.get_or_init(|| {
        let built = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("turn")
            .enable_all()
            .build();
        built
            .map_err(|err| tracing::warn!("TURN runs on the main runtime: {err}"))
            .ok()
    });
    match runtime {
        Some(runtime) => runtime.handle().clone(),
        None => Handle::current(),
    }
}

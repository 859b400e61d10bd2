//! Gives the heap a flood left behind back to the system.
//!
//! After a burst (a flood of unauthenticated TURN sessions, a crowd of WebSockets) every
//! per-session object is freed, yet glibc's malloc keeps the freed pages: each worker thread
//! has its own arena and an arena only shrinks from its top, so a few live chunks pin the
//! rest and the resident size stays at the burst's peak for good (benches/turn_flood.rs
//! showed it staying at the first flood's peak). `malloc_trim(0)` releases the free pages of
//! every arena (MADV_DONTNEED), so a periodic trim brings the process back near its idle size.
//!
//! Chosen over switching allocators (jemalloc with background purge, mimalloc): those bring a
//! C build and change every allocation's behaviour to fix what one call a few times a minute
//! fixes; measured with the bench (60 s at 20 000 datagrams/s from 400 sockets: idle 8.2 MiB,
//! peak 16.9 MiB, 9.9 MiB once the sessions ended), the trim brings RSS back. It runs only when
//! glibc reports enough free-but-held bytes, on a blocking thread, so an idle server does
//! nothing and a busy one never stalls a runtime worker.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the free-but-held figure is looked at.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);
/// Free bytes held in the arenas above which a trim is worth its (sub-millisecond) cost.
const TRIM_ABOVE: usize = 4 << 20;

/// Trims every [`TRIM_EVERY`] while glibc holds more than [`TRIM_ABOVE`] freed bytes, until
/// `shutdown`.
pub async fn run(shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let heap = heap();
        tracing::debug!(in_use = ?heap.map(|h| h.0), free = ?heap.map(|h| h.1), "heap");
        if heap.is_some_and(|(_, free)| free > TRIM_ABOVE) {
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

/// Bytes malloc has handed out and not had back (`uordblks`), and bytes it holds that are
/// free (`fordblks`), where the allocator says.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap() -> Option<(usize, usize)> {
    // SAFETY: mallinfo2 takes no arguments and only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    Some((info.uordblks, info.fordblks))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap() -> Option<(usize, usize)> {
    None
}

/// Returns free heap pages of every arena to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    // SAFETY: malloc_trim only walks malloc's own arenas under their locks; 0 keeps no pad.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released = released == 1, "malloc_trim");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident KiB of this process.
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn trim_returns_the_pages_a_freed_burst_left_pinned() {
        // 64 MiB of small blocks, one in a thousand kept: free() alone can only shrink the
        // arena above the last kept block, so nearly all of it stays resident.
        let blocks: Vec<Vec<u8>> = (0..65_536).map(|i| vec![i as u8; 1024]).collect();
        let keep: Vec<Vec<u8>> = blocks.into_iter().step_by(1000).collect();
        assert!(heap().expect("glibc").1 > 32 << 20);
        let before = rss_kib();
        trim();
        let after = rss_kib();
        assert!(
            before.saturating_sub(after) > 32 * 1024,
            "rss {before} KiB -> {after} KiB"
        );
        drop(keep);
    }
}

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
//! glibc reports enough free-but-held bytes and the heap changed since the last trim, on a
//! blocking thread, so an idle server does nothing and a busy one never stalls a runtime
//! worker.
//!
//! The trim alone still left the process 0.7-0.8 MiB above its idle size after each flood
//! (pages pinned by chunks in per-thread caches and spread over several arenas), so
//! [`settle_allocator`] first restarts the process image with one arena and no per-thread
//! cache; then what a flood leaves comes back to within about 0.1 MiB.

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The malloc settings callbox runs under: one arena, so the freed chunks of every thread
/// coalesce in one place the trim below can return, and no per-thread cache, whose chunks
/// count as in use and pin the pages they sit on. Measured with benches/turn_flood.rs
/// (two 20 s floods of 20 000 datagrams/s, private memory above idle after each): glibc's
/// defaults +0.68 / +0.80 MiB, one arena alone +0.74 / +0.89, no cache alone +2.40 / +0.18,
/// both +0.04 / +0.09; jemalloc with a background purge thread +1.98 / +2.08.
const TUNABLES: &str = "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0";
/// Set (to anything) by an operator who wants glibc's defaults, or by callbox itself in the
/// process it re-executes, so it never re-executes twice.
pub const KEEP_DEFAULTS: &str = "CALLBOX_MALLOC_DEFAULTS";

/// Restarts this process image once with [`TUNABLES`] added to `GLIBC_TUNABLES` (glibc reads
/// tunables only at start, and `mallopt` cannot turn the per-thread cache off). Must be the
/// first thing `main` does, before any thread exists. The PID, arguments and the rest of the
/// environment stay; on failure callbox goes on with glibc's defaults, which only costs memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn settle_allocator() {
    use std::os::unix::process::CommandExt;
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave this process.
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    let current = std::env::var_os("GLIBC_TUNABLES");
    let kept = std::env::var_os(KEEP_DEFAULTS);
    let Some(tunables) = tunables_to_add(current.as_deref(), kept.is_some(), secure) else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "callbox".into());
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .env(KEEP_DEFAULTS, "settled")
        .exec();
    eprintln!("callbox: running with glibc's malloc defaults (re-exec failed: {err})");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn settle_allocator() {}

/// The `GLIBC_TUNABLES` value to re-execute with, or `None` to run as is: when the operator
/// (or a previous exec) asked for the defaults, when glibc would ignore tunables anyway
/// (a set-user-ID or capability-raising exec), or when the operator already chose either
/// malloc setting themselves.
fn tunables_to_add(current: Option<&OsStr>, keep_defaults: bool, secure: bool) -> Option<OsString> {
    if keep_defaults || secure {
        return None;
    }
    match current.map(|c| c.to_string_lossy()) {
        None => Some(TUNABLES.into()),
        Some(c) if c.trim().is_empty() => Some(TUNABLES.into()),
        Some(c) if c.contains("glibc.malloc.arena_max") || c.contains("glibc.malloc.tcache") => {
            None
        }
        Some(c) => Some(format!("{c}:{TUNABLES}").into()),
    }
}

/// How often the free-but-held figure is looked at.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);
/// Free bytes held in the arenas below which a trim is not worth a look.
const TRIM_ABOVE: usize = 1 << 20;

/// Whether the heap figures `now` (in use, free) call for a trim, given those of the last
/// trim. A trim returns free pages but leaves their chunks in malloc's bins, so the free
/// figure does not drop after it: a trim is due when enough is free and the heap has changed
/// since the last one (an idle server trims once, then never again until something happens).
/// A fixed threshold alone either missed a flood that left 3 MiB free, or trimmed forever.
fn trim_due(now: (usize, usize), last_trim: Option<(usize, usize)>) -> bool {
    now.1 > TRIM_ABOVE && last_trim != Some(now)
}

/// Trims every [`TRIM_EVERY`] when [`trim_due`] says so, until `shutdown`.
pub async fn run(shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    let mut last_trim = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let Some(now) = heap() else { return };
        tracing::debug!(in_use = now.0, free = now.1, "heap");
        if trim_due(now, last_trim) {
            let _ = tokio::task::spawn_blocking(trim).await;
            last_trim = heap();
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

    #[test]
    fn a_trim_is_due_once_per_change_of_a_heap_with_enough_free() {
        let mib = 1 << 20;
        assert!(!trim_due((5 * mib, mib / 2), None));
        assert!(trim_due((5 * mib, 3 * mib), None));
        assert!(!trim_due((5 * mib, 3 * mib), Some((5 * mib, 3 * mib))));
        assert!(trim_due((5 * mib, 3 * mib + 64), Some((5 * mib, 3 * mib))));
    }

    #[test]
    fn settle_adds_tunables_once_and_never_overrides_an_operator() {
        let add = |cur: Option<&str>, keep, secure| {
            tunables_to_add(cur.map(OsStr::new), keep, secure).map(|t| t.into_string().unwrap())
        };
        assert_eq!(add(None, false, false).as_deref(), Some(TUNABLES));
        assert_eq!(add(Some(""), false, false).as_deref(), Some(TUNABLES));
        assert_eq!(
            add(Some("glibc.rtld.optional_static_tls=1"), false, false),
            Some(format!("glibc.rtld.optional_static_tls=1:{TUNABLES}"))
        );
        // What the re-executed process sees: its own settings, so it does not go round again.
        assert_eq!(add(Some(TUNABLES), false, false), None);
        assert_eq!(add(Some("glibc.malloc.arena_max=4"), false, false), None);
        assert_eq!(add(Some("glibc.malloc.tcache_count=7"), false, false), None);
        assert_eq!(add(None, true, false), None);
        assert_eq!(add(None, false, true), None);
    }

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

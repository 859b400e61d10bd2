//! The one poison policy for std mutexes around plain state.
//!
//! A mutex is poisoned when a thread panicked while holding it. The state inside is plain data
//! whose every method leaves it consistent, so the right move is to log it and carry on with
//! the state as it is. Skipping the operation instead (the `if let Ok(..) = m.lock()` habit) is
//! worse: skipping a quota release leaks the slot for the life of the process.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`; if a panic poisoned it, logs that once per recovery and recovers the state.
pub fn lock<'a, T>(mutex: &'a Mutex<T>, what: &str) -> MutexGuard<'a, T> {
    mutex.lock().unwrap_or_else(|poisoned| {
        tracing::error!("{what}: a panic poisoned its lock; carrying on with the state as it is");
        mutex.clear_poison();
        poisoned.into_inner()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_state_and_unpoisoned() {
        let m = Mutex::new(1);
        let _ = std::panic::catch_unwind(|| {
            let mut g = m.lock().unwrap();
            *g = 2;
            panic!("poison it");
        });
        assert!(m.is_poisoned());
        *lock(&m, "test") += 1;
        assert_eq!(*lock(&m, "test"), 3);
        assert!(!m.is_poisoned());
    }
}

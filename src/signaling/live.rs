//! A setting SIGHUP can swap while connections run. Each reader takes a snapshot (`load`)
//! when it needs the value; a connection takes one when it starts and keeps it, so the limits
//! a socket was opened with (its frame size, queue, rate) never change under it, and the next
//! connection gets the reloaded ones.

use std::sync::{Arc, RwLock};

/// The current value, swapped whole.
#[derive(Debug, Default)]
pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    pub fn new(value: T) -> Live<T> {
        Live(RwLock::new(Arc::new(value)))
    }

    /// The value now; later swaps do not change this snapshot.
    pub fn load(&self) -> Arc<T> {
        // The lock only guards an Arc swap, which cannot panic halfway: a poisoned lock still
        // holds a whole value.
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Makes `value` what the next `load` returns.
    pub fn store(&self, value: T) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::Live;

    #[test]
    fn a_snapshot_keeps_its_value_after_a_swap() {
        let live = Live::new(1);
        let before = live.load();
        live.store(2);
        assert_eq!((*before, *live.load()), (1, 2));
    }
}

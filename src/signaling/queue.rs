//! A connection's outbound queue: bounded like a channel, but it holds no slots while idle.
//! tokio's bounded mpsc preallocates a block of 32 slots per channel and keeps the blocks a
//! burst (the login list) made it grow, which is most of what an idle WebSocket used to cost;
//! this one is a `VecDeque` that starts empty, grows under load, and is given back to the
//! allocator once a burst has drained.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use tokio::sync::Notify;

use super::hub::Outbound;

/// A drained queue keeps its storage only up to this many slots.
const KEEP_SLOTS: usize = 4;

struct State {
    items: VecDeque<Outbound>,
    /// The receiving task, while it waits for an item.
    waiting: Option<Waker>,
    senders: usize,
    receiver_gone: bool,
    /// Senders waiting in [`Sender::wait_for_room`]; a take wakes them only if there are any.
    want_room: usize,
}

struct Inner {
    state: Mutex<State>,
    capacity: usize,
    /// Woken when the receiver takes items (senders waiting for room).
    room: Notify,
}

impl Inner {
    fn locked(&self) -> MutexGuard<'_, State> {
        crate::lock::lock(&self.state, "outbound queue")
    }
}

/// A queue of at most `capacity` items (at least 1).
pub fn channel(capacity: usize) -> (Sender, Receiver) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            items: VecDeque::new(),
            waiting: None,
            senders: 1,
            receiver_gone: false,
            want_room: 0,
        }),
        capacity: capacity.max(1),
        room: Notify::new(),
    });
    (
        Sender {
            inner: Arc::clone(&inner),
        },
        Receiver { inner },
    )
}

/// Why an item was not queued; it is handed back.
#[derive(Debug)]
pub enum TrySendError {
    Full(Outbound),
    Closed(Outbound),
}

/// The receiver is gone.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

pub struct Sender {
    inner: Arc<Inner>,
}

impl Clone for Sender {
    fn clone(&self) -> Sender {
        self.inner.locked().senders += 1;
        Sender {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut state = self.inner.locked();
        state.senders -= 1;
        if state.senders == 0 {
            if let Some(waker) = state.waiting.take() {
                waker.wake();
            }
        }
    }
}

impl Sender {
    /// Queues `item` unless the queue is full or its receiver is gone; never waits.
    pub fn try_send(&self, item: Outbound) -> Result<(), TrySendError> {
        let mut state = self.inner.locked();
        if state.receiver_gone {
            return Err(TrySendError::Closed(item));
        }
        if state.items.len() >= self.inner.capacity {
            return Err(TrySendError::Full(item));
        }
        state.items.push_back(item);
        if let Some(waker) = state.waiting.take() {
            waker.wake();
        }
        Ok(())
    }

    /// Waits until at least `slots` (capped at the capacity) are free.
    pub async fn wait_for_room(&self, slots: usize) -> Result<(), Closed> {
        let slots = slots.min(self.inner.capacity);
        let has_room = |state: &State| self.inner.capacity - state.items.len() >= slots;
        loop {
            {
                let mut state = self.inner.locked();
                if state.receiver_gone {
                    return Err(Closed);
                }
                if has_room(&state) {
                    return Ok(());
                }
                state.want_room += 1;
            }
            let notified = self.inner.room.notified();
            tokio::pin!(notified);
            // Registered before looking again, so a take in between is not missed.
            notified.as_mut().enable();
            let ready = {
                let state = self.inner.locked();
                state.receiver_gone || has_room(&state)
            };
            if !ready {
                notified.await;
            }
            self.inner.locked().want_room -= 1;
        }
    }
}

pub struct Receiver {
    inner: Arc<Inner>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = self.inner.locked();
        state.receiver_gone = true;
        state.items = VecDeque::new();
        drop(state);
        self.inner.room.notify_waiters();
    }
}

impl Receiver {
    /// The next item; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Outbound> {
        poll_fn(|cx| {
            let mut state = self.inner.locked();
            if let Some(item) = self.take(&mut state) {
                return Poll::Ready(Some(item));
            }
            if state.senders == 0 {
                return Poll::Ready(None);
            }
            match &mut state.waiting {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                waiting => *waiting = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let mut state = self.inner.locked();
        self.take(&mut state)
    }

    fn take(&self, state: &mut State) -> Option<Outbound> {
        let item = state.items.pop_front()?;
        if state.items.is_empty() && state.items.capacity() > KEEP_SLOTS {
            // The burst is over: give its storage back instead of holding it while idle.
            state.items = VecDeque::new();
        }
        if state.want_room > 0 {
            self.inner.room.notify_waiters();
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn close(code: u16) -> Outbound {
        Outbound::Close { code, reason: "" }
    }

    #[test]
    fn a_full_queue_refuses_and_a_drained_one_gives_its_storage_back() {
        let (tx, mut rx) = channel(100);
        assert_eq!(
            rx.inner.locked().items.capacity(),
            0,
            "nothing held before use"
        );
        for code in 0..100 {
            assert!(tx.try_send(close(code)).is_ok());
        }
        assert!(matches!(
            tx.try_send(close(100)),
            Err(TrySendError::Full(_))
        ));
        for code in 0..100 {
            assert_eq!(rx.try_recv(), Some(close(code)), "in order");
        }
        assert_eq!(rx.try_recv(), None);
        assert!(rx.inner.locked().items.capacity() <= KEEP_SLOTS);
    }

    #[test]
    fn sending_to_a_dropped_receiver_fails() {
        let (tx, rx) = channel(4);
        drop(rx);
        assert!(matches!(
            tx.try_send(close(1)),
            Err(TrySendError::Closed(_))
        ));
    }

    #[tokio::test]
    async fn recv_waits_for_an_item_and_ends_when_the_senders_are_gone() {
        let (tx, mut rx) = channel(4);
        let tx2 = tx.clone();
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx2.try_send(close(7)).map_err(|_| ())
        });
        assert_eq!(rx.recv().await, Some(close(7)));
        assert_eq!(later.await.ok(), Some(Ok(())));
        drop(tx);
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_sender_waiting_for_room_wakes_when_the_receiver_takes() {
        let (tx, mut rx) = channel(2);
        assert!(tx.try_send(close(1)).is_ok());
        assert!(tx.try_send(close(2)).is_ok());
        let waiting = tokio::spawn(async move { tx.wait_for_room(1).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "no room yet");
        assert_eq!(rx.recv().await, Some(close(1)));
        let woke = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert_eq!(woke.ok().and_then(Result::ok), Some(Ok(())));
    }

    #[tokio::test]
    async fn waiting_for_room_fails_once_the_receiver_is_gone() {
        let (tx, rx) = channel(1);
        assert!(tx.try_send(close(1)).is_ok());
        let waiting = tokio::spawn(async move { tx.wait_for_room(1).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        let woke = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert_eq!(woke.ok().and_then(Result::ok), Some(Err(Closed)));
    }
}

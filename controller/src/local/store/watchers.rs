//! One watcher's pending events, coalesced per object, so a watcher that reads slowly (or not
//! at all) holds at most the latest state of each object rather than every change.
//!
//! Per object the pending events are one of `Added`, `Modified`, `Deleted`, or a `Deleted`
//! followed by the `Added`/`Modified` of a namesake created after it: a later change replaces
//! the pending one (an `Added` stays an `Added`, carrying the latest object), a deletion
//! replaces whatever preceded it. So memory is bounded by the number of objects, and a reader
//! always ends up with each object's latest state, in resourceVersion order per object.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
pub use tokio::sync::mpsc::error::TryRecvError;

use super::collection::WatchEvent;

type Key = (String, String);

struct Shared<K> {
    pending: Mutex<Pending<K>>,
    notify: Notify,
}

struct Pending<K> {
    /// Objects with pending events, oldest first.
    order: VecDeque<Key>,
    events: HashMap<Key, VecDeque<WatchEvent<K>>>,
    sender_gone: bool,
    receiver_gone: bool,
}

impl<K> Shared<K> {
    fn lock(&self) -> MutexGuard<'_, Pending<K>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The store's end of one watch.
pub(super) struct WatchSender<K> {
    shared: Arc<Shared<K>>,
}

/// The watcher's end: every change after the watch's initial list, coalesced per object.
pub struct WatchEvents<K> {
    shared: Arc<Shared<K>>,
}

impl<K> std::fmt::Debug for WatchEvents<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchEvents").field("pending", &self.pending()).finish()
    }
}

/// A new watch's two ends.
pub(super) fn channel<K>() -> (WatchSender<K>, WatchEvents<K>) {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            order: VecDeque::new(),
            events: HashMap::new(),
            sender_gone: false,
            receiver_gone: false,
        }),
        notify: Notify::new(),
    });
    (WatchSender { shared: shared.clone() }, WatchEvents { shared })
}

impl<K> WatchSender<K> {
    /// Queues `event` for the object `key`; `false` once the watcher has gone away.
    pub(super) fn send(&self, key: Key, event: WatchEvent<K>) -> bool {
        let mut pending = self.shared.lock();
        if pending.receiver_gone {
            return false;
        }
        match pending.events.get_mut(&key) {
            Some(queued) => merge(queued, event),
            None => {
                pending.order.push_back(key.clone());
                pending.events.insert(key, VecDeque::from([event]));
            }
        }
        drop(pending);
        self.shared.notify.notify_one();
        true
    }
}

impl<K> Drop for WatchSender<K> {
    fn drop(&mut self) {
        self.shared.lock().sender_gone = true;
        self.shared.notify.notify_one();
    }
}

/// Folds `event` into one object's pending events (at most two: see the module docs).
fn merge<K>(queued: &mut VecDeque<WatchEvent<K>>, event: WatchEvent<K>) {
    use WatchEvent::{Added, Deleted, Modified};
    match (queued.back_mut(), event) {
        (Some(last @ Added(_)), Modified(object)) => *last = Added(object),
        (Some(last @ Modified(_)), Modified(object)) => *last = Modified(object),
        (Some(Added(_) | Modified(_)), Deleted(object)) => {
            queued.clear();
            queued.push_back(Deleted(object));
        }
        (Some(Deleted(_)), event @ (Added(_) | Modified(_))) => queued.push_back(event),
        (Some(last), event) => *last = event,
        (None, event) => queued.push_back(event),
    }
}

impl<K> WatchEvents<K> {
    /// The next event; `None` once the store is gone and nothing is pending.
    pub async fn recv(&mut self) -> Option<WatchEvent<K>> {
        loop {
            match self.try_recv() {
                Ok(event) => return Some(event),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => self.shared.notify.notified().await,
            }
        }
    }

    /// The next event if one is pending.
    pub fn try_recv(&mut self) -> Result<WatchEvent<K>, TryRecvError> {
        let mut pending = self.shared.lock();
        let Pending { order, events, sender_gone, .. } = &mut *pending;
        while let Some(key) = order.front() {
            let Some(queued) = events.get_mut(key) else {
                order.pop_front();
                continue;
            };
            let Some(event) = queued.pop_front() else {
                events.remove(key);
                order.pop_front();
                continue;
            };
            if queued.is_empty() {
                events.remove(key);
                order.pop_front();
            }
            return Ok(event);
        }
        Err(if *sender_gone { TryRecvError::Disconnected } else { TryRecvError::Empty })
    }

    /// How many events are pending (at most two per object).
    pub fn pending(&self) -> usize {
        self.shared.lock().events.values().map(VecDeque::len).sum()
    }
}

impl<K> Drop for WatchEvents<K> {
    fn drop(&mut self) {
        let mut pending = self.shared.lock();
        pending.receiver_gone = true;
        pending.order.clear();
        pending.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn key(name: &str) -> Key {
        ("default".to_owned(), name.to_owned())
    }

    #[tokio::test]
    async fn a_watcher_that_never_reads_holds_one_event_per_object_and_then_gets_the_latest() {
        let (sender, mut events) = channel::<u32>();
        assert!(sender.send(key("a"), WatchEvent::Added(Arc::new(0))));
        for n in 1..=5000 {
            assert!(sender.send(key("a"), WatchEvent::Modified(Arc::new(n))));
            assert_eq!(events.pending(), 1);
        }
        sender.send(key("b"), WatchEvent::Modified(Arc::new(7)));
        assert_eq!(events.pending(), 2);
        assert_eq!(events.recv().await, Some(WatchEvent::Added(Arc::new(5000))));
        assert_eq!(events.recv().await, Some(WatchEvent::Modified(Arc::new(7))));
        assert!(matches!(events.try_recv(), Err(TryRecvError::Empty)));
        drop(sender);
        assert_eq!(events.recv().await, None);
    }

    #[test]
    fn deletions_replace_what_preceded_them_and_a_namesake_follows_its_deletion() {
        let (sender, mut events) = channel::<u32>();
        sender.send(key("a"), WatchEvent::Added(Arc::new(1)));
        sender.send(key("a"), WatchEvent::Deleted(Arc::new(2)));
        sender.send(key("a"), WatchEvent::Added(Arc::new(3)));
        for n in 4..100 {
            sender.send(key("a"), WatchEvent::Modified(Arc::new(n)));
        }
        assert_eq!(events.pending(), 2);
        assert_eq!(events.try_recv(), Ok(WatchEvent::Deleted(Arc::new(2))));
        assert_eq!(events.try_recv(), Ok(WatchEvent::Added(Arc::new(99))));
        sender.send(key("a"), WatchEvent::Modified(Arc::new(100)));
        sender.send(key("a"), WatchEvent::Deleted(Arc::new(101)));
        sender.send(key("a"), WatchEvent::Added(Arc::new(102)));
        sender.send(key("a"), WatchEvent::Deleted(Arc::new(103)));
        assert_eq!(events.pending(), 1);
        assert_eq!(events.try_recv(), Ok(WatchEvent::Deleted(Arc::new(103))));
    }

    #[test]
    fn a_dropped_watcher_is_forgotten() {
        let (sender, events) = channel::<u32>();
        drop(events);
        assert!(!sender.send(key("a"), WatchEvent::Added(Arc::new(1))));
    }
}

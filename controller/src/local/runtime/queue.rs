//! A controller's work queue: object keys to reconcile now, and keys to reconcile at a time.
//! A key queued many times is reconciled once, which is what turns an event storm (a thousand
//! servers starting) into a handful of reconciles.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use stadion_core::object_key;
use tokio::sync::watch;

use crate::executor::{ExecError, Outcome};
use crate::local::store::{DEFAULT_NAMESPACE, Store, StoreObject, WatchEvents};

/// Two timers of one key closer than this are one wake-up: a wall-clock deadline converted to
/// an `Instant` at different moments differs by a few microseconds.
const TIMER_SLACK: Duration = Duration::from_millis(10);

/// Keys due now plus timed keys.
#[derive(Debug, Default)]
pub(crate) struct WorkQueue {
    dirty: BTreeSet<String>,
    timers: BinaryHeap<Reverse<(Instant, String)>>,
    /// Pending timer times per key. Every reconcile of an Allocated or Reserved server asks for
    /// a wake-up at the same deadline; keeping it once stops a chatty server (labels, players)
    /// from growing the heap until the deadline.
    timed: HashMap<String, Vec<Instant>>,
}

impl WorkQueue {
    /// Queues `key` for the next round.
    pub(crate) fn add(&mut self, key: impl Into<String>) {
        self.dirty.insert(key.into());
    }

    /// Queues every key of `keys`.
    pub(crate) fn extend(&mut self, keys: impl IntoIterator<Item = String>) {
        self.dirty.extend(keys);
    }

    /// Queues `key` for `at` (or the next round, if that has passed).
    pub(crate) fn add_at(&mut self, key: impl Into<String>, at: Instant) {
        let key = key.into();
        let pending = self.timed.entry(key.clone()).or_default();
        let near = |t: &Instant| t.max(&at).saturating_duration_since(*t.min(&at)) <= TIMER_SLACK;
        if pending.iter().any(near) {
            return;
        }
        pending.push(at);
        self.timers.push(Reverse((at, key)));
    }

    /// Makes `at` the one pending wake-up of `key`, replacing any other: an owner controller's
    /// pass decides the next one, so wake-ups never pile up across passes.
    pub(crate) fn schedule(&mut self, key: &str, at: Instant) {
        self.timed.insert(key.to_owned(), vec![at]);
        self.timers.push(Reverse((at, key.to_owned())));
    }

    /// Drops every pending wake-up of `key` (it waits for a change, or is gone).
    pub(crate) fn cancel(&mut self, key: &str) {
        self.timed.remove(key);
    }

    /// Queues `key` after `delay`.
    pub(crate) fn add_after(&mut self, key: impl Into<String>, delay: Duration) {
        self.add_at(key, Instant::now() + delay);
    }

    /// Queues `key` at a wall-clock time from a plan.
    pub(crate) fn add_at_timestamp(&mut self, key: impl Into<String>, at: jiff::Timestamp) {
        let delay = at.duration_since(jiff::Timestamp::now());
        let delay = Duration::try_from(delay).unwrap_or(Duration::ZERO);
        self.add_after(key, delay);
    }

    /// Every key due now (dirty ones and expired timers), each once, in key order.
    pub(crate) fn take_due(&mut self) -> Vec<String> {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((at, key))) = self.timers.pop() {
                // A timer replaced or cancelled since it was pushed is no longer pending: skip it.
                let Some(pending) = self.timed.get_mut(&key) else { continue };
                let before = pending.len();
                pending.retain(|t| *t != at);
                if pending.len() == before {
                    continue;
                }
                if pending.is_empty() {
                    self.timed.remove(&key);
                }
                self.dirty.insert(key);
            }
        }
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    /// Whether keys are waiting for the next round.
    pub(crate) fn has_due(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// When the next timer fires, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Sleeps until the next timer (forever if none): one arm of a controller's `select!`.
    pub(crate) async fn next_timer(&self) {
        match self.next_deadline() {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    }
}

/// Events arriving within this window are folded into one pass: while a thousand servers start,
/// their owners are recomputed a few times a second instead of once per server change.
pub(crate) const COALESCE: Duration = Duration::from_millis(50);

/// When a controller of `Parent` objects whose children (`Child`) also concern it runs a pass:
/// every parent change queues that parent; bursts of child changes are coalesced into one pass
/// over their owners; each pass's result sets the parent's one next wake-up. A child belongs to
/// the parent its controller owner reference names (the executor's `list_owned` checks the
/// uid), never to one its labels name.
pub(crate) struct OwnerTriggers<Parent: StoreObject, Child: StoreObject> {
    store: Store,
    queue: WorkQueue,
    parents: WatchEvents<Parent>,
    children: WatchEvents<Child>,
    stop: watch::Receiver<bool>,
}

impl<Parent: StoreObject, Child: StoreObject> OwnerTriggers<Parent, Child> {
    /// Starts watching; every parent that exists is due at once.
    pub(crate) fn new(store: &Store, stop: watch::Receiver<bool>) -> Self {
        let parents = store.api::<Parent>().watch();
        let children = store.api::<Child>().watch();
        let mut queue = WorkQueue::default();
        queue.extend(parents.initial.iter().map(|p| key_of(p.metadata())));
        Self { store: store.clone(), queue, parents: parents.events, children: children.events, stop }
    }

    /// The next keys due, each once; `None` once the runtime stops.
    pub(crate) async fn next_due(&mut self) -> Option<Vec<String>> {
        loop {
            let due = self.queue.take_due();
            if !due.is_empty() {
                return Some(due);
            }
            if *self.stop.borrow() {
                return None;
            }
            tokio::select! {
                biased;
                _ = self.stop.changed() => return None,
                Some(event) = self.parents.recv() => self.queue.add(key_of(event.object().metadata())),
                Some(event) = self.children.recv() => {
                    self.queue.extend(owner_key::<Parent, Child>(event.object()));
                    tokio::time::sleep(COALESCE).await;
                    while let Ok(event) = self.children.try_recv() {
                        self.queue.extend(owner_key::<Parent, Child>(event.object()));
                    }
                }
                () = self.queue.next_timer() => {}
            }
        }
    }

    /// The parent `key` names as stored now; `None` (and no more wake-ups) when it is gone.
    pub(crate) fn parent(&mut self, key: &str) -> Option<Arc<Parent>> {
        let (namespace, name) = split_key(key);
        let parent = self.store.api::<Parent>().try_get(namespace, name);
        if parent.is_none() {
            self.queue.cancel(key);
        }
        parent
    }

    /// Sets `key`'s next wake-up from its pass: the executor's delay, nothing until a change, or
    /// the executor's back-off after an error (which the executor has already recorded).
    pub(crate) fn finished(&mut self, key: &str, result: &Result<Outcome, ExecError>) {
        schedule(&mut self.queue, key, result);
    }
}

/// The one mapping of a pass's result onto a local queue, for every local executor.
pub(crate) fn schedule(queue: &mut WorkQueue, key: &str, result: &Result<Outcome, ExecError>) {
    match result {
        Ok(Outcome::RequeueAfter(after)) => queue.schedule(key, Instant::now() + *after),
        Ok(Outcome::AwaitChange) => queue.cancel(key),
        Err(error) => queue.schedule(key, Instant::now() + error.backoff()),
    }
}

/// `namespace/name` of an object.
pub(crate) fn key_of(meta: &ObjectMeta) -> String {
    object_key(meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE), meta.name.as_deref().unwrap_or_default())
}

/// The key of the `Parent` that `child`'s controller owner reference names, if any.
fn owner_key<Parent: StoreObject, Child: StoreObject>(child: &Child) -> Option<String> {
    let meta = child.metadata();
    let owner = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == <Parent as k8s_openapi::Resource>::KIND)?;
    Some(object_key(meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE), &owner.name))
}

/// Splits a `namespace/name` key.
pub(crate) fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("default", key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_deduplicated_and_timers_fire_when_due() {
        let mut queue = WorkQueue::default();
        queue.add("default/b");
        queue.add("default/a");
        queue.add("default/b");
        queue.add_after("default/later", Duration::from_secs(60));
        queue.add_at("default/past", Instant::now() - Duration::from_millis(1));
        assert_eq!(queue.take_due(), ["default/a", "default/b", "default/past"]);
        assert!(queue.take_due().is_empty());
        assert!(queue.next_deadline().is_some_and(|d| d > Instant::now()));
        assert_eq!(split_key("ns/x"), ("ns", "x"));
    }

    #[test]
    fn the_same_wake_up_asked_for_again_is_kept_once() {
        let mut queue = WorkQueue::default();
        let at = Instant::now() + Duration::from_secs(60);
        for _ in 0..1000 {
            queue.add_at("default/gs", at);
        }
        queue.add_at("default/gs", at + Duration::from_millis(1));
        queue.add_at("default/other", at);
        queue.add_at("default/gs", at + Duration::from_secs(1));
        assert_eq!(queue.timers.len(), 3, "one per key and deadline");

        let mut queue = WorkQueue::default();
        let past = Instant::now() - Duration::from_millis(1);
        queue.add_at("default/gs", past);
        assert_eq!(queue.take_due(), ["default/gs"]);
        assert!(queue.timed.is_empty(), "fired timers are forgotten");
        queue.add_at("default/gs", past);
        assert_eq!(queue.take_due(), ["default/gs"], "and can be asked for again");
    }

    #[test]
    fn a_scheduled_wake_up_replaces_the_pending_ones_and_cancel_drops_them() {
        let mut queue = WorkQueue::default();
        let past = Instant::now() - Duration::from_millis(1);
        queue.add_at("default/set", past);
        queue.schedule("default/set", Instant::now() + Duration::from_secs(60));
        assert!(queue.take_due().is_empty(), "the earlier wake-up was replaced");
        queue.schedule("default/set", past);
        queue.schedule("default/set", past);
        assert_eq!(queue.take_due(), ["default/set"], "one wake-up, however often asked for");
        assert!(queue.take_due().is_empty());

        queue.schedule("default/gone", past);
        queue.cancel("default/gone");
        assert!(queue.take_due().is_empty(), "a cancelled wake-up never fires");
        assert!(queue.timed.is_empty());
    }
}

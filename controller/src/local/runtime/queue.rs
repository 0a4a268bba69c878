//! A controller's work queue: object keys to reconcile now, and keys to reconcile at a time.
//! A key queued many times is reconciled once, which is what turns an event storm (a thousand
//! servers starting) into a handful of reconciles.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

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
                if let Some(pending) = self.timed.get_mut(&key) {
                    pending.retain(|t| *t != at);
                    if pending.is_empty() {
                        self.timed.remove(&key);
                    }
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

/// What a pass over one parent gets: the parent (live, not being deleted), its children as
/// they are now, the parent's `namespace/name` key and the controller's name generator and queue.
pub(crate) struct OwnerPass<'a, Parent, Child> {
    /// The shared runtime state.
    pub shared: &'a super::Shared,
    /// `namespace/name` of the parent.
    pub key: &'a str,
    /// The parent.
    pub parent: std::sync::Arc<Parent>,
    /// Its children (labelled `owner_label = <parent name>` in its namespace).
    pub children: Vec<Child>,
    /// Name suffixes for new children.
    pub names: &'a mut stadion_core::names::SeededNames,
    /// Where to requeue.
    pub queue: &'a mut WorkQueue,
}

/// Drives a controller of `Parent` objects whose children (`Child`, labelled `owner_label =
/// <parent name>`) also concern it: every parent change queues that parent; bursts of child
/// changes are coalesced into one pass over their owners; timers requeue. A pass skips a parent
/// that is gone or being deleted (its children go by cascade). Runs until `stop`.
pub(crate) async fn run_owner_controller<Parent, Child>(
    shared: std::sync::Arc<super::Shared>,
    owner_label: &'static str,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut reconcile: impl FnMut(OwnerPass<'_, Parent, Child>),
) where
    Parent: crate::local::store::StoreObject,
    Child: crate::local::store::StoreObject,
{
    use stadion_core::object_key;
    let owner = |child: &Child| -> Option<String> {
        let meta = child.metadata();
        let parent = meta.labels.as_ref()?.get(owner_label)?;
        Some(object_key(meta.namespace.as_deref().unwrap_or("default"), parent))
    };
    let parents = shared.store.api::<Parent>().watch();
    let children = shared.store.api::<Child>().watch();
    let (mut parent_events, mut child_events) = (parents.events, children.events);
    let mut queue = WorkQueue::default();
    let key_of = |parent: &Parent| {
        let meta = parent.metadata();
        object_key(meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or_default())
    };
    for parent in &parents.initial {
        queue.add(key_of(parent));
    }
    let mut names = stadion_core::names::SeededNames::new(rand::random());
    loop {
        for key in queue.take_due() {
            let (namespace, name) = split_key(&key);
            let Some(parent) = shared.store.api::<Parent>().try_get(namespace, name) else { continue };
            if parent.metadata().deletion_timestamp.is_some() {
                continue;
            }
            let selector = crate::local::store::Selector::from_labels([(owner_label, name)]);
            let children =
                shared.store.api::<Child>().list(Some(namespace), &selector).iter().map(|c| (**c).clone()).collect();
            reconcile(OwnerPass { shared: &shared, key: &key, parent, children, names: &mut names, queue: &mut queue });
        }
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            Some(event) = parent_events.recv() => queue.add(key_of(event.object())),
            Some(event) = child_events.recv() => {
                queue.extend(owner(event.object()));
                tokio::time::sleep(COALESCE).await;
                while let Ok(event) = child_events.try_recv() {
                    queue.extend(owner(event.object()));
                }
            }
            () = queue.next_timer() => {}
        }
    }
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
}

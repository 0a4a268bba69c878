//! Trigger throttling for the controllers whose objects are woken by many others (a set by its
//! servers, a fleet by its sets).
//!
//! kube-runtime's debounce is trailing: every trigger inside the window pushes the reconcile
//! back. A set whose hundreds of servers change state every few milliseconds during a scale-up
//! therefore waited for a quiet gap before it could create its next batch, and a fleet of 1,000
//! took most of its start-up waiting. A throttle bounds the wait instead: a key's first trigger
//! passes at once, and whatever arrives for it during the next period passes as one trigger
//! (its latest) when the period ends, so a busy object is reconciled at most once per period
//! and never starved.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

/// The period of the set and fleet controllers' triggers.
pub const PERIOD: Duration = Duration::from_millis(250);

struct Throttle<T, K, F> {
    source: Option<BoxStream<'static, T>>,
    key: F,
    period: Duration,
    /// Keys inside their period, oldest first (each period ends `period` after it began).
    windows: VecDeque<(Instant, K)>,
    /// The keys in `windows`.
    open: HashSet<K>,
    /// The latest trigger of each key inside its period, passed on when the period ends.
    waiting: HashMap<K, T>,
    /// Triggers ready to pass on.
    ready: VecDeque<T>,
}

/// Passes on `source`'s items, at most one per key (`key`; `None` passes at once) per `period`:
/// the first at once, then the latest of those that came meanwhile when the period ends.
pub fn throttle<S, T, K, F>(source: S, period: Duration, key: F) -> impl Stream<Item = T> + Send + 'static
where
    S: Stream<Item = T> + Send + 'static,
    T: Send + 'static,
    K: Eq + Hash + Clone + Send + 'static,
    F: Fn(&T) -> Option<K> + Send + 'static,
{
    let state = Throttle {
        source: Some(source.boxed()),
        key,
        period,
        windows: VecDeque::new(),
        open: HashSet::new(),
        waiting: HashMap::new(),
        ready: VecDeque::new(),
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.ready.pop_front() {
                return Some((item, state));
            }
            let next_end = state.windows.front().map(|(end, _)| *end);
            let Some(source) = state.source.as_mut() else {
                // The source ended: what still waits passes now, then the stream ends.
                let (_, key) = state.windows.pop_front()?;
                state.open.remove(&key);
                if let Some(item) = state.waiting.remove(&key) {
                    state.ready.push_back(item);
                }
                continue;
            };
            tokio::select! {
                item = source.next() => match item {
                    Some(item) => state.admit(item),
                    None => state.source = None,
                },
                () = sleep_until(next_end), if next_end.is_some() => state.end_window(),
            }
        }
    })
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => futures::future::pending().await,
    }
}

impl<T, K: Eq + Hash + Clone, F: Fn(&T) -> Option<K>> Throttle<T, K, F> {
    fn admit(&mut self, item: T) {
        let Some(key) = (self.key)(&item) else {
            self.ready.push_back(item);
            return;
        };
        if self.open.contains(&key) {
            self.waiting.insert(key, item);
        } else {
            self.open.insert(key.clone());
            self.windows.push_back((Instant::now() + self.period, key));
            self.ready.push_back(item);
        }
    }

    /// The oldest period ended: its key's latest trigger passes and begins a new period.
    fn end_window(&mut self) {
        let Some((_, key)) = self.windows.pop_front() else { return };
        match self.waiting.remove(&key) {
            Some(item) => {
                self.windows.push_back((Instant::now() + self.period, key));
                self.ready.push_back(item);
            }
            None => {
                self.open.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::UnboundedReceiverStream;

    use super::throttle;

    const PERIOD: Duration = Duration::from_millis(250);

    /// What the throttle passed on within `within` of virtual time.
    async fn passed(
        out: &mut (impl futures::Stream<Item = (char, u32)> + Unpin),
        within: Duration,
    ) -> Vec<(char, u32)> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(Some(item)) = tokio::time::timeout_at(deadline, out.next()).await {
            seen.push(item);
        }
        seen
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_changing_nonstop_still_passes_once_per_period_with_its_latest() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut out = Box::pin(throttle(UnboundedReceiverStream::new(rx), PERIOD, |(k, _): &(char, u32)| Some(*k)));
        // A trigger every 10 ms for a second: a debounce of 250 ms would pass none of them.
        let feed = tokio::spawn(async move {
            for i in 0..100 {
                tx.send(('a', i)).unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let seen = passed(&mut out, Duration::from_millis(1100)).await;
        feed.await.unwrap();
        assert_eq!(seen.first(), Some(&('a', 0)), "the first passes at once");
        assert!((4..=6).contains(&seen.len()), "about one per 250 ms: {seen:?}");
        assert_eq!(seen.last(), Some(&('a', 99)), "the latest is never lost");
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_throttled_apart_and_a_quiet_key_passes_at_once() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut out = Box::pin(throttle(UnboundedReceiverStream::new(rx), PERIOD, |(k, _): &(char, u32)| Some(*k)));
        tx.send(('a', 1)).unwrap();
        tx.send(('a', 2)).unwrap();
        tx.send(('b', 1)).unwrap();
        let now = passed(&mut out, Duration::from_millis(1)).await;
        assert_eq!(now, [('a', 1), ('b', 1)], "each key's first at once; a's second waits");
        let later = passed(&mut out, PERIOD).await;
        assert_eq!(later, [('a', 2)]);
        // Long after its period: a new trigger is not held back.
        tokio::time::sleep(PERIOD * 3).await;
        tx.send(('a', 3)).unwrap();
        assert_eq!(passed(&mut out, Duration::from_millis(1)).await, [('a', 3)]);
    }

    #[tokio::test(start_paused = true)]
    async fn what_waits_when_the_source_ends_still_passes() {
        let (tx, rx) = mpsc::unbounded_channel();
        let out = throttle(UnboundedReceiverStream::new(rx), PERIOD, |(k, _): &(char, u32)| Some(*k));
        tx.send(('a', 1)).unwrap();
        tx.send(('a', 2)).unwrap();
        drop(tx);
        assert_eq!(out.collect::<Vec<_>>().await, [('a', 1), ('a', 2)]);
    }
}

//! The local runtime's [`Recorder`]: what the kube runtime sends to the Events API and
//! Prometheus, kept in this process. Every Event is one structured log line (Warnings at warn
//! level, so `stadion up` shows them) and joins a short ring per object that the admin API can
//! serve; every pass is counted per controller.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use stadion_core::store::{EventSubject, EventType, Recorder};

/// Events kept per object, newest last (what `kubectl describe` would show of recent history).
pub const EVENTS_PER_OBJECT: usize = 20;
/// Objects whose Events are kept; past this the one with the oldest latest Event is forgotten,
/// so a long run with many short-lived objects cannot grow without bound.
pub const OBJECTS_KEPT: usize = 1024;

/// One recorded Event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEvent {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// Agones' reason.
    pub reason: String,
    /// What happened.
    pub note: String,
    /// When (RFC 3339).
    pub time: String,
}

/// Passes of one controller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileCounts {
    /// Passes run.
    pub total: u64,
    /// Passes that failed.
    pub errors: u64,
}

#[derive(Default)]
struct Inner {
    /// Events by `Kind/namespace/name`, each ring with the sequence number of its latest Event.
    events: HashMap<String, (u64, VecDeque<RecordedEvent>)>,
    sequence: u64,
    reconciles: BTreeMap<&'static str, ReconcileCounts>,
    /// Failed passes by controller and error kind.
    errors: BTreeMap<(&'static str, &'static str), u64>,
}

/// The local [`Recorder`]: cheap to clone, shared by every controller of a runtime.
#[derive(Clone, Default)]
pub struct LocalRecorder {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for LocalRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRecorder").finish_non_exhaustive()
    }
}

fn subject_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

impl LocalRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Each critical section is one map update: a panic elsewhere cannot leave it half done.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The recent Events about `kind` `namespace/name`, oldest first.
    pub fn events_for(&self, kind: &str, namespace: &str, name: &str) -> Vec<RecordedEvent> {
        let inner = self.inner();
        inner
            .events
            .get(&subject_key(kind, namespace, name))
            .map(|(_, ring)| ring.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Passes of `controller` so far.
    pub fn reconciles(&self, controller: &str) -> ReconcileCounts {
        self.inner().reconciles.get(controller).copied().unwrap_or_default()
    }

    /// Failed passes of `controller` with error kind `kind`.
    pub fn errors(&self, controller: &str, kind: &str) -> u64 {
        self.inner().errors.iter().filter(|((c, k), _)| *c == controller && *k == kind).map(|(_, n)| *n).sum()
    }
}

#[async_trait]
impl Recorder for LocalRecorder {
    async fn event(&self, subject: &EventSubject, event_type: EventType, reason: &str, note: String) {
        let (kind, namespace, name) = (subject.kind, subject.namespace.as_str(), subject.name.as_str());
        match event_type {
            EventType::Warning => tracing::warn!(kind, namespace, name, reason, note = %note, "event"),
            EventType::Normal => tracing::info!(kind, namespace, name, reason, note = %note, "event"),
        }
        let event = RecordedEvent {
            type_: match event_type {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            },
            reason: reason.to_owned(),
            note,
            time: jiff::Timestamp::now().to_string(),
        };
        let mut inner = self.inner();
        inner.sequence += 1;
        let sequence = inner.sequence;
        let key = subject_key(kind, namespace, name);
        if !inner.events.contains_key(&key) && inner.events.len() >= OBJECTS_KEPT {
            let oldest = inner.events.iter().min_by_key(|(_, (seq, _))| *seq).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                inner.events.remove(&oldest);
            }
        }
        let (latest, ring) = inner.events.entry(key).or_default();
        *latest = sequence;
        if ring.len() == EVENTS_PER_OBJECT {
            ring.pop_front();
        }
        ring.push_back(event);
    }

    fn reconciled(&self, controller: &'static str, elapsed: Duration, error_kind: Option<&'static str>) {
        tracing::trace!(controller, elapsed_ms = elapsed.as_millis(), error_kind, "pass done");
        let mut inner = self.inner();
        let counts = inner.reconciles.entry(controller).or_default();
        counts.total += 1;
        if let Some(kind) = error_kind {
            counts.errors += 1;
            *inner.errors.entry((controller, kind)).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(name: &str) -> EventSubject {
        EventSubject { kind: "Fleet", namespace: "default".into(), name: name.into(), uid: None }
    }

    #[tokio::test]
    async fn keeps_the_last_events_per_object_and_counts_passes() {
        let recorder = LocalRecorder::new();
        for i in 0..(EVENTS_PER_OBJECT + 5) {
            recorder.event(&subject("f"), EventType::Normal, "ScalingGameServerSet", format!("n{i}")).await;
        }
        recorder.event(&subject("g"), EventType::Warning, "ValidationFailed", "bad".into()).await;
        let events = recorder.events_for("Fleet", "default", "f");
        assert_eq!(events.len(), EVENTS_PER_OBJECT);
        assert_eq!(events[0].note, "n5", "the oldest go first");
        assert_eq!(events.last().map(|e| e.note.as_str()), Some("n24"));
        let g = recorder.events_for("Fleet", "default", "g");
        assert_eq!((g[0].type_, g[0].reason.as_str()), ("Warning", "ValidationFailed"));
        assert!(recorder.events_for("Fleet", "other", "f").is_empty());

        recorder.reconciled("fleet", Duration::from_millis(1), None);
        recorder.reconciled("fleet", Duration::from_millis(1), Some("create_failed"));
        assert_eq!(recorder.reconciles("fleet"), ReconcileCounts { total: 2, errors: 1 });
        assert_eq!(recorder.errors("fleet", "create_failed"), 1);
        assert_eq!(recorder.reconciles("gameserverset"), ReconcileCounts::default());
    }

    #[tokio::test]
    async fn forgets_the_quietest_object_past_the_limit() {
        let recorder = LocalRecorder::new();
        for i in 0..=OBJECTS_KEPT {
            recorder.event(&subject(&format!("f{i}")), EventType::Normal, "R", String::new()).await;
        }
        assert!(recorder.events_for("Fleet", "default", "f0").is_empty(), "the oldest object is forgotten");
        assert_eq!(recorder.events_for("Fleet", "default", "f1").len(), 1);
        assert_eq!(recorder.inner().events.len(), OBJECTS_KEPT);
    }
}

//! Kubernetes Events with Agones' reasons, so `kubectl describe gs` reads the same as on Agones.
//!
//! Events are best effort and never on a reconcile's or an allocation's path, as with client-go's
//! broadcaster that Agones uses: publishing puts the Event in a bounded queue and returns; a
//! background task writes it to the Events API (a few at a time). When the API server is slower
//! than the controller produces Events, the queue fills and new Events are dropped (counted and
//! logged), rather than slowing the work they describe or growing without bound. An Event the
//! same object already got with the same type and reason within [`SERIES_WINDOW`] becomes a
//! series (one Event whose count grows, PATCHed) instead of a new object. A failure to record one
//! is logged and never fails anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as KubeEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Name the controller reports its Events under.
pub const REPORTER: &str = "stadion-controller";

/// Agones' Event reasons (a GameServer's reasons are its state names); they live in the core
/// beside the recorder seam, so every runtime reports with the same words.
pub use stadion_core::store::reason;

/// Events waiting to be written; past this, new ones are dropped (client-go's broadcaster
/// queues 1,000).
pub const QUEUE: usize = 1024;
/// Events written to the API server at once.
const WRITERS: usize = 8;
/// How long a repeated Event extends the first one's series rather than creating another
/// (kube-runtime's and the events API's 6 minutes).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// Series remembered at most; the oldest is forgotten first (its next repeat starts anew).
const SERIES_KEPT: usize = 1024;

/// Publishes Events about any object the controller manages.
#[derive(Clone)]
pub struct EventPublisher {
    sink: Arc<Sink>,
    /// `None`: each publish writes before it returns (the scripted unit tests, which check the
    /// order of every request).
    queue: Option<mpsc::Sender<Pending>>,
    dropped: Arc<AtomicU64>,
}

/// One Event to write.
struct Pending {
    reference: ObjectReference,
    type_: EventType,
    reason: String,
    note: String,
    at: Timestamp,
}

/// What identifies a series: the same object, type and reason.
#[derive(Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    namespace: String,
    name: String,
    uid: String,
    kind: String,
    warning: bool,
    reason: String,
}

struct Series {
    event: String,
    count: i32,
    last_seen: Instant,
}

/// Writes Events and remembers recent series.
struct Sink {
    client: kube::Client,
    instance: String,
    series: Mutex<HashMap<SeriesKey, Series>>,
}

impl EventPublisher {
    /// A publisher reporting as [`REPORTER`] from `instance` (the Pod name), writing from a
    /// background task on the current Tokio runtime.
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        let mut publisher = Self::inline(client, instance);
        let (sender, receiver) = mpsc::channel(QUEUE);
        let sink = publisher.sink.clone();
        let stream =
            futures::stream::unfold(receiver, |mut receiver| async move { Some((receiver.recv().await?, receiver)) });
        tokio::spawn(stream.for_each_concurrent(WRITERS, move |pending| {
            let sink = sink.clone();
            async move { sink.write(pending).await }
        }));
        publisher.queue = Some(sender);
        publisher
    }

    /// A publisher whose every publish writes the Event before it returns.
    pub fn inline(client: kube::Client, instance: Option<String>) -> Self {
        let instance = instance.unwrap_or_else(|| REPORTER.to_owned());
        let sink = Arc::new(Sink { client, instance, series: Mutex::new(HashMap::new()) });
        Self { sink, queue: None, dropped: Arc::new(AtomicU64::new(0)) }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A Normal event on `object`.
    pub async fn normal<K: Resource<DynamicType = ()>>(&self, object: &K, reason: &str, note: impl Into<String>) {
        self.publish_to(&object.object_ref(&()), EventType::Normal, reason, note.into()).await;
    }

    /// A Warning event on `object`.
    pub async fn warning<K: Resource<DynamicType = ()>>(&self, object: &K, reason: &str, note: impl Into<String>) {
        self.publish_to(&object.object_ref(&()), EventType::Warning, reason, note.into()).await;
    }

    /// An Event of `type_` on the object `reference` points at: queued (or, inline, written).
    pub async fn publish_to(&self, reference: &ObjectReference, type_: EventType, reason: &str, note: String) {
        let pending =
            Pending { reference: reference.clone(), type_, reason: reason.to_owned(), note, at: Timestamp::now() };
        let Some(queue) = &self.queue else {
            self.sink.write(pending).await;
            return;
        };
        if let Err(error) = queue.try_send(pending) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // The first drop and then one line per thousand, not one per Event.
            if dropped == 1 || dropped.is_multiple_of(1000) {
                let why = if matches!(error, mpsc::error::TrySendError::Full(_)) { "full" } else { "closed" };
                warn!(dropped, queue = QUEUE, why, reason, "the Event queue cannot take more: Events dropped");
            }
        }
    }
}

impl Sink {
    async fn write(&self, pending: Pending) {
        let namespace = pending.reference.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), &namespace);
        let key = SeriesKey {
            namespace,
            name: pending.reference.name.clone().unwrap_or_default(),
            uid: pending.reference.uid.clone().unwrap_or_default(),
            kind: pending.reference.kind.clone().unwrap_or_default(),
            warning: pending.type_ == EventType::Warning,
            reason: pending.reason.clone(),
        };
        if let Some((event, count)) = self.repeat(&key) {
            let series = EventSeries { count, last_observed_time: MicroTime(pending.at) };
            let patch = serde_json::json!({ "series": series });
            match api.patch(&event, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return,
                // Expired or not written yet (its create still in flight): a new one.
                Err(error) => debug!(%error, event = %event, "could not extend the Event's series; creating a new one"),
            }
        }
        let event = self.event(&pending);
        let name = event.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => self.remember(key, name),
            Err(error) => warn!(%error, reason = %pending.reason, "could not record an event"),
        }
    }

    /// The series `key` continues, if one was seen within the window: its Event and next count.
    fn repeat(&self, key: &SeriesKey) -> Option<(String, i32)> {
        let mut series = self.series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = series.get_mut(key).filter(|s| s.last_seen.elapsed() < SERIES_WINDOW)?;
        known.count += 1;
        known.last_seen = Instant::now();
        Some((known.event.clone(), known.count))
    }

    fn remember(&self, key: SeriesKey, event: String) {
        let mut series = self.series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if series.len() >= SERIES_KEPT && !series.contains_key(&key) {
            series.retain(|_, s| s.last_seen.elapsed() < SERIES_WINDOW);
            if series.len() >= SERIES_KEPT
                && let Some(oldest) = series.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| k.clone())
            {
                series.remove(&oldest);
            }
        }
        series.insert(key, Series { event, count: 1, last_seen: Instant::now() });
    }

    /// The events.k8s.io/v1 Event for `pending`, named after its object and the time.
    fn event(&self, pending: &Pending) -> KubeEvent {
        let object = pending.reference.name.clone().unwrap_or_else(|| REPORTER.to_owned());
        KubeEvent {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", pending.at.as_nanosecond())),
                namespace: pending.reference.namespace.clone(),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(pending.at)),
            type_: Some(if pending.type_ == EventType::Warning { "Warning" } else { "Normal" }.to_owned()),
            reason: Some(pending.reason.clone()),
            action: Some(pending.reason.clone()),
            note: Some(fit_note(&pending.note)),
            regarding: Some(pending.reference.clone()),
            reporting_controller: Some(REPORTER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            ..KubeEvent::default()
        }
    }
}

/// The API server refuses an Event whose note is over 1 KiB (events.k8s.io/v1), and a long list
/// of validation problems can be; such a note is cut at a character boundary and says so.
fn fit_note(note: &str) -> String {
    const MAX: usize = 1024;
    const MORE: &str = " …(truncated)";
    if note.len() <= MAX {
        return note.to_owned();
    }
    let mut end = MAX - MORE.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MORE}", &note[..end])
}

#[cfg(test)]
mod tests;

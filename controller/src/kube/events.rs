//! Kubernetes Events with Agones' reasons, so `kubectl describe gs` reads the same as on Agones.
//!
//! Events are best effort: a failure to record one is logged and never fails a reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

/// Name the controller reports its Events under.
pub const REPORTER: &str = "stadion-controller";

/// Agones' Event reasons (a GameServer's reasons are its state names); they live in the core
/// beside the recorder seam, so every runtime reports with the same words.
pub use stadion_core::store::reason;

/// Publishes Events about any object the controller manages.
#[derive(Clone)]
pub struct EventPublisher {
    recorder: Recorder,
}

impl EventPublisher {
    /// A publisher reporting as [`REPORTER`] from `instance` (the Pod name).
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        let reporter = Reporter { controller: REPORTER.to_owned(), instance };
        Self { recorder: Recorder::new(client, reporter) }
    }

    /// A Normal event on `object`.
    pub async fn normal<K: Resource<DynamicType = ()>>(&self, object: &K, reason: &str, note: impl Into<String>) {
        self.publish(object, EventType::Normal, reason, note.into()).await;
    }

    /// A Warning event on `object`.
    pub async fn warning<K: Resource<DynamicType = ()>>(&self, object: &K, reason: &str, note: impl Into<String>) {
        self.publish(object, EventType::Warning, reason, note.into()).await;
    }

    async fn publish<K: Resource<DynamicType = ()>>(&self, object: &K, type_: EventType, reason: &str, note: String) {
        self.publish_to(&object.object_ref(&()), type_, reason, note).await;
    }

    /// An Event of `type_` on the object `reference` points at.
    pub async fn publish_to(&self, reference: &ObjectReference, type_: EventType, reason: &str, note: String) {
        let note = Some(fit_note(note));
        let event = Event { type_, reason: reason.to_owned(), note, action: reason.to_owned(), secondary: None };
        if let Err(error) = self.recorder.publish(&event, reference).await {
            warn!(%error, reason, "could not record an event");
        }
    }
}

/// The API server refuses an Event whose note is over 1 KiB (events.k8s.io/v1), and a long list
/// of validation problems can be; such a note is cut at a character boundary and says so.
fn fit_note(note: String) -> String {
    const MAX: usize = 1024;
    const MORE: &str = " …(truncated)";
    if note.len() <= MAX {
        return note;
    }
    let mut end = MAX - MORE.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MORE}", &note[..end])
}

#[cfg(test)]
mod tests {
    use super::fit_note;

    #[test]
    fn notes_fit_the_api_servers_limit() {
        assert_eq!(fit_note("short".into()), "short");
        let exact = "x".repeat(1024);
        assert_eq!(fit_note(exact.clone()), exact);
        let long = "é".repeat(700); // 1400 bytes, two per character
        let cut = fit_note(long);
        assert!(cut.len() <= 1024, "{}", cut.len());
        assert!(cut.ends_with("(truncated)"));
    }
}

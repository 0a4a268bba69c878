//! The kube runtime's [`Recorder`]: Events go to the Events API with Agones' reasons (through
//! [`EventPublisher`]), passes to the Prometheus reconcile metrics.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::EventType as KubeEventType;
use stadion_core::store::{EventSubject, EventType, Recorder, StoredObject};
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};

use super::events::EventPublisher;
use super::metrics::{Metrics, ReconcileErrorLabels, ReconcileLabels};

/// Events and reconcile metrics of the executors, in the cluster.
#[derive(Clone)]
pub struct KubeRecorder {
    events: EventPublisher,
    metrics: Arc<Metrics>,
}

impl KubeRecorder {
    /// A recorder publishing through `events` and counting into `metrics`.
    pub fn new(events: EventPublisher, metrics: Arc<Metrics>) -> Self {
        Self { events, metrics }
    }
}

/// The reference an Event about `subject` points at: the kind's API group and version, so
/// `kubectl describe` finds it on the object.
fn object_reference(subject: &EventSubject) -> ObjectReference {
    let api_version = match subject.kind {
        k if k == <FleetAutoscaler as StoredObject>::KIND => FleetAutoscaler::API_VERSION,
        k if k == <Fleet as StoredObject>::KIND => Fleet::API_VERSION,
        k if k == <GameServerSet as StoredObject>::KIND => GameServerSet::API_VERSION,
        _ => GameServer::API_VERSION,
    };
    ObjectReference {
        api_version: Some(api_version.to_owned()),
        kind: Some(subject.kind.to_owned()),
        namespace: Some(subject.namespace.clone()),
        name: Some(subject.name.clone()),
        uid: subject.uid.clone(),
        ..ObjectReference::default()
    }
}

#[async_trait]
impl Recorder for KubeRecorder {
    async fn event(&self, subject: &EventSubject, event_type: EventType, reason: &str, note: String) {
        let type_ = match event_type {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        };
        if event_type == EventType::Warning {
            tracing::warn!(kind = subject.kind, namespace = %subject.namespace, name = %subject.name, reason, note = %note, "event");
        }
        self.events.publish_to(&object_reference(subject), type_, reason, note).await;
    }

    fn reconciled(&self, controller: &'static str, elapsed: Duration, error_kind: Option<&'static str>) {
        let labels = ReconcileLabels { controller: controller.to_owned() };
        self.metrics.reconciles.get_or_create(&labels).inc();
        self.metrics.reconcile_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
        if let Some(kind) = error_kind {
            let labels = ReconcileErrorLabels { controller: controller.to_owned(), error: kind.to_owned() };
            self.metrics.reconcile_errors.get_or_create(&labels).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_point_at_the_objects_api_group() {
        let subject = |kind| EventSubject { kind, namespace: "games".into(), name: "x".into(), uid: Some("u".into()) };
        let fas = object_reference(&subject("FleetAutoscaler"));
        assert_eq!(fas.api_version.as_deref(), Some("autoscaling.agones.dev/v1"));
        assert_eq!((fas.namespace.as_deref(), fas.uid.as_deref()), (Some("games"), Some("u")));
        assert_eq!(object_reference(&subject("Fleet")).api_version.as_deref(), Some("agones.dev/v1"));
    }

    #[tokio::test]
    async fn passes_and_failures_are_counted() {
        let (client, _server) = crate::kube::fixtures::ApiServer::start();
        let metrics = Arc::new(Metrics::controller());
        let recorder = KubeRecorder::new(EventPublisher::new(client, None), metrics.clone());
        recorder.reconciled("fleet", Duration::from_millis(2), None);
        recorder.reconciled("fleet", Duration::from_millis(2), Some("create_failed"));
        let text = metrics.encode();
        assert!(text.contains(r#"stadion_reconcile_total{controller="fleet"} 2"#), "{text}");
        assert!(
            text.contains(r#"stadion_reconcile_errors_total{controller="fleet",error="create_failed"} 1"#),
            "{text}"
        );
    }
}

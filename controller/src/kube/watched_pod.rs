//! A game-server Pod as the GameServer controller's watch cache holds it: the few fields a
//! reconcile reads, parsed straight from the API server's JSON.
//!
//! A `k8s_openapi` Pod is about 2 KiB before any of its strings, and each of its container
//! statuses another ~0.7 KiB, whatever the Pod carries; at a thousand servers the Pod cache was
//! the largest part of the controller's heap after the GameServers themselves. This type keeps
//! the owner and labels (the trigger), the Node, the deletion mark, the phase and each
//! container's identity and states. Everything else in the JSON (the spec's containers,
//! volumes and probes, conditions, IPs) is skipped while parsing, so it is never allocated.
//! The controller only reads and deletes Pods through it; it creates them as full Pods.

use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ContainerState;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Serialize};

/// The Pod fields the GameServer controller reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct WatchedPod {
    /// Name, namespace, labels, owners, deletion timestamp (annotations and managed fields are
    /// dropped by [`trim`] before caching).
    pub metadata: ObjectMeta,
    /// The Node it is bound to.
    #[serde(default)]
    pub spec: WatchedPodSpec,
    /// Its phase and containers.
    #[serde(default)]
    pub status: WatchedPodStatus,
}

/// `spec`: only where the scheduler put it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedPodSpec {
    /// `spec.nodeName`, empty until bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
}

/// `status`: the phase, its reason, and the containers.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedPodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why, when the kubelet gave a reason (`Evicted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// One per container, as the kubelet reports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<WatchedContainer>,
}

/// One container's identity and states.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedContainer {
    /// The container's name in the Pod spec.
    pub name: String,
    /// The runtime's id of the instance running now (`containerd://…`).
    #[serde(default, rename = "containerID", skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The instance running now: running, waiting or terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ContainerState>,
    /// The instance before it, after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state: Option<ContainerState>,
}

impl Resource for WatchedPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Drops what the API server keeps for itself and what no reconcile reads from the metadata:
/// `managedFields` and annotations (a Pod's are often its largest strings).
pub fn trim(pod: &mut WatchedPod) {
    super::caches::trim_meta(&mut pod.metadata);
    pod.metadata.annotations = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn full_pod() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "gs-1", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                "labels": {"agones.dev/role": "gameserver"},
                "annotations": {"big": "x".repeat(1000)},
                "deletionTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "agones.dev/v1", "kind": "GameServer", "name": "gs-1",
                                     "uid": "g1", "controller": true}],
                "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsType": "FieldsV1",
                                   "fieldsV1": {"f:status": {}}}]
            },
            "spec": {"nodeName": "node-1", "containers": [{"name": "game", "image": "game:1",
                     "env": [{"name": "A", "value": "b"}]}]},
            "status": {
                "phase": "Running", "reason": "Evicted", "podIP": "10.0.0.1",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{
                    "name": "game", "image": "game:1", "imageID": "sha", "containerID": "c://2",
                    "ready": true, "restartCount": 1, "started": true,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                    "lastState": {"terminated": {"exitCode": 3, "containerID": "c://1"}}
                }]
            }
        })
    }

    #[test]
    fn a_pod_keeps_what_the_gameserver_controller_reads() {
        let mut pod: WatchedPod = serde_json::from_value(full_pod()).unwrap();
        trim(&mut pod);
        let meta = &pod.metadata;
        assert!(meta.managed_fields.is_none() && meta.annotations.is_none());
        assert_eq!(meta.owner_references.as_ref().unwrap()[0].name, "gs-1");
        assert!(meta.deletion_timestamp.is_some());
        assert_eq!(meta.labels.as_ref().unwrap()["agones.dev/role"], "gameserver");
        assert_eq!(pod.spec.node_name.as_deref(), Some("node-1"));
        let status = &pod.status;
        assert_eq!((status.phase.as_deref(), status.reason.as_deref()), (Some("Running"), Some("Evicted")));
        let game = &status.container_statuses[0];
        assert_eq!((game.name.as_str(), game.container_id.as_deref()), ("game", Some("c://2")));
        assert!(game.state.as_ref().unwrap().running.is_some());
        assert_eq!(game.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 3);
        // What is read survives a round trip through the wire form (the fixtures' path).
        let again: WatchedPod = serde_json::from_value(serde_json::to_value(&pod).unwrap()).unwrap();
        assert_eq!(again, pod);
    }

    #[test]
    fn a_pod_without_spec_or_status_parses_as_unbound_and_unknown() {
        let pod: WatchedPod = serde_json::from_value(json!({"metadata": {"name": "gs-1"}})).unwrap();
        assert_eq!((pod.spec.node_name, pod.status.phase), (None, None));
        assert!(pod.status.container_statuses.is_empty());
    }

    #[test]
    fn it_is_smaller_than_the_full_pod_it_stands_for() {
        // The point of the type: a cached Pod without its strings costs under half the full
        // one, and each container status less than the full status.
        assert!(size_of::<WatchedPod>() * 2 < size_of::<Pod>(), "{} vs {}", size_of::<WatchedPod>(), size_of::<Pod>());
        assert!(
            size_of::<WatchedContainer>() < size_of::<k8s_openapi::api::core::v1::ContainerStatus>(),
            "{} vs {}",
            size_of::<WatchedContainer>(),
            size_of::<k8s_openapi::api::core::v1::ContainerStatus>()
        );
    }

    #[test]
    fn it_is_read_and_deleted_at_the_pods_path() {
        // The same URLs as the full Pod's, so the watch, GET and DELETE reach the Pods.
        assert_eq!(WatchedPod::url_path(&(), Some("games")), Pod::url_path(&(), Some("games")));
        assert_eq!(WatchedPod::url_path(&(), None), Pod::url_path(&(), None));
    }
}

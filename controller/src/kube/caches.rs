//! The watch caches the controllers read, each fed by one watch and trimmed to what is read.
//!
//! Each kind is watched once. A kind that also triggers another controller (Pods trigger the
//! GameServer controller, GameServers the GameServerSet controller, GameServerSets the Fleet
//! controller) hands that controller its cache's change stream instead of a second watch, which
//! would deserialise every object again and hold its own copy while listing.
//!
//! Before an object enters a cache it loses what no reconcile reads: `managedFields` on every
//! kind (often the larger part of an object), and for Nodes everything but the few fields the
//! controllers look at. Pods are cached as [`super::watched_pod::WatchedPod`], which parses
//! only what the GameServer controller reads. Kinds the controllers write back (GameServers,
//! sets, fleets, autoscalers) keep everything else: a replace carries the whole object, and an
//! absent `managedFields` is the one omission the API server fills in from what it stores.

use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{self, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::warn;

/// How many changes a cache's subscribers may trail its watch by before the watch waits for
/// them: a bounded queue, so a stalled controller slows its watch instead of growing memory.
const SUBSCRIBER_BUFFER: usize = 256;

/// Forgets what the API server keeps for itself: `managedFields`, which no reconcile reads and
/// a replace need not carry (the API server keeps its own when a write omits them).
pub fn trim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
}

/// A written or watched object of a kind the controllers write back, as it is cached.
pub fn trim_object<K: Resource>(object: &mut K) {
    trim_meta(object.meta_mut());
}

/// A Node as the controllers read it: name and labels, taints (system nodes are left out of
/// the node metrics) and addresses (they become the GameServer's). On real clusters the
/// dropped `status.images` alone is often most of a Node.
pub fn trim_node(node: &mut Node) {
    trim_meta(&mut node.metadata);
    node.metadata.annotations = None;
    let taints = node.spec.as_mut().and_then(|spec| spec.taints.take());
    node.spec = taints.map(|taints| NodeSpec { taints: Some(taints), ..NodeSpec::default() });
    let addresses = node.status.as_mut().and_then(|status| status.addresses.take());
    node.status = Some(NodeStatus { addresses, ..NodeStatus::default() });
}

/// One subscriber's changes: every object the cache stored or replaced, and every one it lost.
pub type Changes<K> = futures::stream::Select<ReflectHandle<K>, ReceiverStream<Arc<K>>>;

/// A cache fed by its own watch, each object passed through `trim` first, and one change
/// stream per subscriber (`SUBSCRIBERS` of them). The returned task feeds it until `stopped`
/// resolves; nothing is dispatched before it runs.
///
/// A shared cache tells its subscribers about stored objects only; deletions are sent beside
/// them, as kube-runtime's `owns` watches saw them (a GameServer whose finalizer was just
/// released must wake its set, a Pod removed at once its GameServer). A subscriber that only
/// reconciles the kind itself finds a deleted object gone and does nothing.
pub fn watched<K, const SUBSCRIBERS: usize>(
    api: Api<K>,
    config: watcher::Config,
    trim: fn(&mut K),
    stopped: impl Future<Output = ()> + Send + 'static,
) -> (Store<K>, [Changes<K>; SUBSCRIBERS], impl Future<Output = ()> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store_shared(SUBSCRIBER_BUFFER);
    let mut deletions = Vec::with_capacity(SUBSCRIBERS);
    let subscribers = std::array::from_fn(|_| {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        deletions.push(tx);
        let stored = writer.subscribe().expect("a shared store always hands out subscriptions");
        futures::stream::select(stored, ReceiverStream::new(rx))
    });
    let events = watcher(api, config).default_backoff().modify(trim).and_then(move |event| {
        let deletions = deletions.clone();
        async move {
            if let watcher::Event::Delete(gone) = &event {
                let gone = Arc::new(gone.clone());
                for subscriber in &deletions {
                    // A subscriber that stopped listening is shutting down: nothing to tell.
                    let _ = subscriber.send(Arc::clone(&gone)).await;
                }
            }
            Ok(event)
        }
    });
    let stream = reflector::reflector(writer, events).take_until(stopped).for_each(|event| {
        if let Err(error) = event {
            warn!(%error, kind = K::kind(&()).as_ref(), "watch failed; retrying");
        }
        future::ready(())
    });
    (reader, subscribers, stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_node_keeps_name_labels_taints_and_addresses() {
        let mut node: Node = serde_json::from_value(json!({
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"},
                         "managedFields": [{"manager": "kubelet"}]},
            "spec": {"podCIDR": "10.0.0.0/24", "taints": [{"key": "agones.dev/system", "effect": "NoSchedule"}]},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "10.1.0.1"}],
                "images": [{"names": ["a:1"], "sizeBytes": 1}],
                "capacity": {"pods": "250"}
            }
        }))
        .unwrap();
        trim_node(&mut node);
        assert_eq!(node.metadata.name.as_deref(), Some("node-1"));
        assert!(node.metadata.managed_fields.is_none());
        assert_eq!(node.metadata.labels.as_ref().unwrap()["kubernetes.io/hostname"], "node-1");
        let spec = node.spec.as_ref().unwrap();
        assert_eq!(spec.taints.as_ref().unwrap()[0].key, "agones.dev/system");
        assert!(spec.pod_cidr.is_none());
        let status = node.status.as_ref().unwrap();
        assert_eq!(status.addresses.as_ref().unwrap()[0].address, "10.1.0.1");
        assert!(status.images.is_none() && status.capacity.is_none());
    }

    #[test]
    fn a_written_back_kind_only_loses_managed_fields() {
        let mut gs = crate::kube::fixtures::gameserver("gs-1");
        gs.metadata.annotations = Some([("a".to_owned(), "b".to_owned())].into());
        gs.metadata.managed_fields = Some(vec![Default::default()]);
        let before = gs.spec.clone();
        trim_object(&mut gs);
        assert!(gs.metadata.managed_fields.is_none());
        assert_eq!(gs.metadata.annotations.as_ref().unwrap()["a"], "b");
        assert_eq!(serde_json::to_value(&gs.spec).unwrap(), serde_json::to_value(before).unwrap());
    }
}

//! Setting up and cleaning up the API server side: CRDs, a namespace, the Node the harness plays
//! kubelet for, and (on a real cluster) removing everything a scenario left.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};

use super::NODE_LABEL;

const MANAGER: &str = "stadion-contract";

/// Server-side applies the CRDs `stadion crds` renders and waits until they are served.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (file, yaml) in stadion_crds::crd::render_all().expect("the CRDs render") {
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{file}: {e}"));
        let name = crd.metadata.name.clone().expect("a CRD has a name");
        crds.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&crd)).await.expect("apply a CRD");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while stadion_controller::kube::discovery::ensure_crds_installed(client).await.is_err() {
        assert!(Instant::now() < deadline, "the CRDs were not served within 60 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Creates namespace `name`.
pub async fn create_namespace(client: &Client, name: &str) {
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("a Namespace");
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await.expect("create namespace");
}

/// A Ready Node nobody runs, tainted so that only the harness's Pods go there.
pub async fn create_node(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {NODE_LABEL: name}},
        "spec": {"taints": [{"key": NODE_LABEL, "value": name, "effect": "NoSchedule"}]}
    }))
    .expect("a Node");
    nodes.create(&PostParams::default(), &node).await.expect("create the Node");
    let status = json!({"status": {
        "addresses": [
            {"type": "InternalIP", "address": "10.250.0.7"},
            {"type": "ExternalIP", "address": "203.0.113.77"},
            {"type": "Hostname", "address": name}
        ],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "played by the contract harness"}]
    }});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("Node status");
}

/// Deletes every autoscaler, fleet, set and server of `namespace` while the controllers still
/// run (they release the servers' finalizers), then strips any finalizer left.
pub async fn delete_everything(client: &Client, namespace: &str) {
    let params = DeleteParams::default();
    let all = ListParams::default();
    let autoscalers: Api<FleetAutoscaler> = Api::namespaced(client.clone(), namespace);
    let fleets: Api<Fleet> = Api::namespaced(client.clone(), namespace);
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), namespace);
    let gameservers: Api<GameServer> = Api::namespaced(client.clone(), namespace);
    let _ = autoscalers.delete_collection(&params, &all).await;
    let _ = fleets.delete_collection(&params, &all).await;
    let _ = sets.delete_collection(&params, &all).await;
    let _ = gameservers.delete_collection(&params, &all).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = gameservers.list(&all).await.map(|l| l.items).unwrap_or_default();
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            for gs in left {
                let patch = json!({"metadata": {"finalizers": null}});
                let _ = gameservers.patch(gs.name(), &PatchParams::default(), &Patch::Merge(&patch)).await;
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes the harness's Node and namespace.
pub async fn delete_node_and_namespace(client: &Client, node: &str, namespace: &str) {
    let _ = Api::<Node>::all(client.clone()).delete(node, &DeleteParams::default()).await;
    let _ = Api::<Namespace>::all(client.clone()).delete(namespace, &DeleteParams::default()).await;
}

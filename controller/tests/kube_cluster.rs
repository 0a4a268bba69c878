//! End to end against a real API server (`KUBECONFIG`):
//!
//! ```text
//! KUBECONFIG=~/.kube/config cargo test -p stadion-controller --test kube_cluster -- --ignored --nocapture
//! ```
//!
//! Installs the CRDs, runs the controller in-process (scoped to a fresh namespace), applies a
//! Fleet of 3, plays kubelet for its Pods (a Node object of our own; Pods bound to it, marked
//! Running, and removed once deleted, since no kubelet runs them), drives each server to Ready
//! through the SDK served over the sidecar's kube backend, allocates one through the kube
//! allocator, scales the fleet up and down through its scale subresource, and deletes the Fleet,
//! checking nothing is left behind. Works on any cluster, kind or k3s included; needs no image.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use stadion_controller::kube::allocator::KubeAllocator;
use stadion_controller::kube::run::{ControllerConfig, run};
use stadion_controller::kube::sidecar::KubeBackend;
use stadion_core::allocator::{Allocator, admit_allocation};
use stadion_core::ports::PortRanges;
use stadion_crds::allocation::{GameServerAllocationSpec, GameServerAllocationState, GameServerSelector};
use stadion_crds::{Fleet, GameServer, GameServerAllocation, GameServerSet, GameServerState};
use stadion_sdk::server::{self, SdkServerHandle, ServeOptions};
use tokio::sync::oneshot;

mod kube_support;

use kube_support::{MANAGER, create_node, eventually, install_crds, play_kubelet};

fn test_fleet(namespace: &str, node: &str) -> Fleet {
    serde_json::from_value(json!({
        "apiVersion": "agones.dev/v1", "kind": "Fleet",
        "metadata": {"name": "simple", "namespace": namespace},
        "spec": {
            "replicas": 3,
            "template": {"spec": {
                "ports": [{"name": "default", "containerPort": 7654}],
                "health": {"disabled": true},
                "template": {"spec": {
                    "nodeSelector": {"stadion.dev/test-node": node},
                    "tolerations": [{"key": "stadion.dev/test-node", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{"name": "game", "image": "registry.invalid/never-pulled:1"}]
                }}
            }}
        }
    }))
    .unwrap()
}

async fn servers(api: &Api<GameServer>) -> Vec<GameServer> {
    api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default()
}

/// Serves the SDK for each Scheduled server over its kube backend and calls Ready on it.
async fn ready_every_scheduled(
    client: &Client,
    api: &Api<GameServer>,
    namespace: &str,
    sidecars: &mut HashMap<String, (KubeBackend, SdkServerHandle)>,
) {
    let http = reqwest::Client::new();
    for gs in servers(api).await {
        let name = gs.name().to_owned();
        if gs.state() != Some(GameServerState::Scheduled) || sidecars.contains_key(&name) {
            continue;
        }
        let backend = KubeBackend::connect(client.clone(), namespace, &name).await.expect("sidecar backend");
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listeners = server::bind(loopback, loopback).await.expect("bind SDK");
        let options = ServeOptions { health_checks: false, ..ServeOptions::default() };
        let handle = server::serve(Arc::new(backend.clone()), listeners, options).expect("serve SDK");
        let ready = http.post(format!("http://{}/ready", handle.http_addr())).json(&json!({})).send().await;
        assert!(ready.expect("POST /ready").status().is_success());
        sidecars.insert(name, (backend, handle));
    }
}

async fn fleet_counts(fleets: &Api<Fleet>) -> Option<(i32, i32, i32)> {
    let status = fleets.get("simple").await.ok()?.status?;
    Some((status.replicas, status.ready_replicas, status.allocated_replicas))
}

/// The `Valid` condition of fleet `name`: (status, reason).
async fn valid_condition(fleets: &Api<Fleet>, name: &str) -> Option<(String, String)> {
    let valid = fleets.get(name).await.ok()?.status?.conditions.into_iter().find(|c| c.type_ == "Valid")?;
    let status = serde_json::to_value(valid.status).ok()?.as_str()?.to_owned();
    Some((status, valid.reason))
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn fleet_lifecycle_on_a_real_api_server() {
    let client = stadion_controller::kube::connect::client(None).await.expect("KUBECONFIG points at a cluster");
    let suffix = format!("{:x}", rand::random::<u32>());
    let namespace = format!("stadion-test-{suffix}");
    let node = format!("stadion-test-node-{suffix}");
    install_crds(&client).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
    create_node(&client, &node).await;

    let (stop, stopped) = oneshot::channel::<()>();
    let config = ControllerConfig {
        sidecar_image: "stadion:test".into(),
        sdk_service_account: "default".into(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        leader_election: false,
        lease_namespace: namespace.clone(),
        identity: "cluster-test".into(),
        namespace: Some(namespace.clone()),
        port_ranges: PortRanges::default(),
        allocation_api: None,
        allocation_ttl: Default::default(),
    };
    let controller = tokio::spawn(run(client.clone(), config, async {
        let _ = stopped.await;
    }));
    let kubelet = tokio::spawn(play_kubelet(client.clone(), namespace.clone(), node.clone()));

    let fleets: Api<Fleet> = Api::namespaced(client.clone(), &namespace);
    let gameservers: Api<GameServer> = Api::namespaced(client.clone(), &namespace);
    fleets.create(&PostParams::default(), &test_fleet(&namespace, &node)).await.expect("create fleet");
    // A fleet the schema accepts but validation does not (a Dynamic port with a host port): no
    // webhook stops it, so the controller reports it in its status and creates nothing for it.
    let mut invalid = test_fleet(&namespace, &node);
    invalid.metadata.name = Some("invalid".into());
    invalid.spec.template.spec.ports[0].host_port = Some(7000);
    fleets.create(&PostParams::default(), &invalid).await.expect("create invalid fleet");

    // Three servers come up, are scheduled on our node with its external address, and go Ready
    // through the SDK.
    let sidecars = Arc::new(tokio::sync::Mutex::new(HashMap::new()));
    let (c, g, n) = (&client, &gameservers, namespace.as_str());
    eventually("3 Ready servers", || {
        let sidecars = sidecars.clone();
        async move {
            ready_every_scheduled(c, g, n, &mut *sidecars.lock().await).await;
            let all = servers(g).await;
            let ready = all.iter().filter(|gs| gs.state() == Some(GameServerState::Ready)).count();
            (all.len() == 3 && ready == 3).then_some(())
        }
    })
    .await;
    for gs in servers(&gameservers).await {
        let status = gs.status.clone().unwrap();
        assert_eq!(status.node_name, node);
        assert_eq!(status.address, "203.0.113.77", "ExternalIP is preferred");
        assert!((7000..=8000).contains(&status.ports[0].port), "{:?}", status.ports);
    }
    eventually("fleet status 3 ready", || async { (fleet_counts(&fleets).await == Some((3, 3, 0))).then_some(()) })
        .await;
    assert_eq!(valid_condition(&fleets, "simple").await, Some(("True".to_owned(), "Validated".to_owned())));
    let (status, message) = eventually("the invalid fleet's Valid=False condition", || async {
        let valid = fleets.get("invalid").await.ok()?.status?.conditions.into_iter().find(|c| c.type_ == "Valid")?;
        Some((serde_json::to_value(valid.status).ok()?, valid.message))
    })
    .await;
    assert_eq!(status, "False");
    assert!(message.contains("spec.template.spec.ports[0].hostPort"), "{message}");
    let sets_of_invalid = Api::<GameServerSet>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default().labels("agones.dev/fleet=invalid"))
        .await
        .expect("list sets");
    assert!(sets_of_invalid.items.is_empty(), "an invalid fleet gets no GameServerSet");
    fleets.delete("invalid", &DeleteParams::default()).await.expect("delete invalid fleet");

    // Allocate one through the kube allocator.
    let (allocator, driver) = KubeAllocator::watching(client.clone(), Some(&namespace));
    let allocator_task = tokio::spawn(driver);
    allocator.cache().wait_until_ready().await.expect("allocator cache");
    let mut selector = GameServerSelector::default();
    selector.label_selector.match_labels = Some([("agones.dev/fleet".to_owned(), "simple".to_owned())].into());
    let mut request =
        GameServerAllocation::new(GameServerAllocationSpec { selectors: vec![selector], ..Default::default() });
    request.metadata.namespace = Some(namespace.clone());
    let allocated = eventually("an allocation", || async {
        allocator.allocate(admit_allocation(request.clone()).unwrap()).await.ok().and_then(|o| o.allocated())
    })
    .await;
    assert_eq!(allocated.state, GameServerAllocationState::Allocated);
    assert_eq!(allocated.address, "203.0.113.77");
    let chosen = gameservers.get(&allocated.game_server_name).await.expect("allocated server");
    assert_eq!(chosen.state(), Some(GameServerState::Allocated));
    eventually("fleet status 1 allocated", || async { (fleet_counts(&fleets).await == Some((3, 2, 1))).then_some(()) })
        .await;
    let counted = fleets.get("simple").await.expect("fleet").status.and_then(|s| s.allocations);
    assert_eq!(counted, Some(1), "the allocation is counted on the fleet");

    // Scale up through the scale subresource, as `kubectl scale fleet simple --replicas=5`.
    let scale = |n: i32| json!({"spec": {"replicas": n}});
    fleets.patch_scale("simple", &PatchParams::default(), &Patch::Merge(&scale(5))).await.expect("scale up");
    let f = &fleets;
    eventually("5 servers, 4 Ready", || {
        let sidecars = sidecars.clone();
        async move {
            ready_every_scheduled(c, g, n, &mut *sidecars.lock().await).await;
            (fleet_counts(f).await == Some((5, 4, 1))).then_some(())
        }
    })
    .await;
    // Scale down: the Allocated server survives.
    fleets.patch_scale("simple", &PatchParams::default(), &Patch::Merge(&scale(2))).await.expect("scale down");
    eventually("2 servers, 1 Allocated", || async {
        let live: Vec<_> =
            servers(&gameservers).await.into_iter().filter(|gs| gs.metadata.deletion_timestamp.is_none()).collect();
        let survivor = live.iter().any(|gs| gs.name() == allocated.game_server_name);
        (live.len() == 2 && survivor && fleet_counts(&fleets).await == Some((2, 1, 1))).then_some(())
    })
    .await;

    // Deleting the Fleet leaves nothing behind: sets, servers (finalizers released), Pods.
    fleets.delete("simple", &DeleteParams::foreground()).await.expect("delete fleet");
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    eventually("nothing left", || async {
        let left = fleets.list(&ListParams::default()).await.ok()?.items.len()
            + sets.list(&ListParams::default()).await.ok()?.items.len()
            + gameservers.list(&ListParams::default()).await.ok()?.items.len()
            + pods.list(&ListParams::default()).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await;

    for (_, (_, handle)) in std::mem::take(&mut *sidecars.lock().await) {
        handle.shutdown().await;
    }
    allocator_task.abort();
    kubelet.abort();
    let _ = stop.send(());
    controller.await.expect("controller task").expect("controller ran cleanly");
    let _ = Api::<Node>::all(client.clone()).delete(&node, &DeleteParams::default()).await;
    let _ = namespaces.delete(&namespace, &DeleteParams::default()).await;
}

/// `stadion controller` told to stop as soon as it has started (a rollout that replaces the Pod
/// at once, a SIGTERM during start-up) exits instead of hanging: before its caches were ever
/// filled, and again once they were.
#[tokio::test]
#[ignore = "needs cluster"]
async fn stopping_right_after_start_returns() {
    let client = stadion_controller::kube::connect::client(None).await.expect("KUBECONFIG points at a cluster");
    let namespace = format!("stadion-stop-{:x}", rand::random::<u32>());
    install_crds(&client).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
    let config = ControllerConfig {
        sidecar_image: "stadion:test".into(),
        sdk_service_account: "default".into(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        leader_election: true,
        lease_namespace: namespace.clone(),
        identity: "stop-test".into(),
        namespace: Some(namespace.clone()),
        port_ranges: PortRanges::default(),
        allocation_api: None,
        allocation_ttl: Default::default(),
    };
    for stop_after in [Duration::ZERO, Duration::from_millis(50), Duration::from_secs(3)] {
        let running = run(client.clone(), config.clone(), tokio::time::sleep(stop_after));
        let stopped = tokio::time::timeout(stop_after + Duration::from_secs(20), running).await;
        assert!(
            matches!(stopped, Ok(Ok(()))),
            "stopped {stop_after:?} after start, run did not return cleanly: {:?}",
            stopped.map(|r| r.map_err(|e| e.to_string()))
        );
    }
    let _ = namespaces.delete(&namespace, &DeleteParams::default()).await;
}

/// Every document of `examples/` (subfolders included) that is a CRD kind, as JSON.
fn example_documents() -> Vec<(String, serde_json::Value)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let mut entries: Vec<_> =
            std::fs::read_dir(dir).expect("examples folder").map(|e| e.expect("entry").path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable example");
        let name = file.strip_prefix(&root).unwrap_or(&file).display().to_string();
        for doc in stadion_crds::manifest::yaml_documents(&text, &name).unwrap_or_else(|e| panic!("{e}")) {
            if doc.get("kind").is_some() {
                out.push((name.clone(), doc));
            }
        }
    }
    out
}

/// Server-side dry-run apply with strict field validation, as `kubectl apply --dry-run=server`
/// sends it: the API server's own schema (our generated CRDs) decides.
async fn dry_run_apply(client: &Client, doc: &serde_json::Value) -> Result<(), kube::Error> {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ValidationDirective};
    let (group, version) = doc["apiVersion"].as_str().and_then(|v| v.split_once('/')).expect("group/version");
    let kind = doc["kind"].as_str().expect("kind");
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let name = doc["metadata"]["name"].as_str().expect("examples are named");
    let params = PatchParams::apply(MANAGER).dry_run().validation(ValidationDirective::Strict);
    api.patch(name, &params, &Patch::Apply(doc)).await.map(drop)
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn the_api_server_accepts_every_example_manifest_strictly() {
    let client = stadion_controller::kube::connect::client(None).await.expect("KUBECONFIG points at a cluster");
    install_crds(&client).await;
    let mut kinds = Vec::new();
    for (file, doc) in example_documents() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        // Not a CRD: served by the allocation API (aggregated), which has its own tests.
        if kind == "GameServerAllocation" {
            continue;
        }
        if let Err(error) = dry_run_apply(&client, &doc).await {
            panic!("{file}: the API server refused {kind} {}: {error}", doc["metadata"]["name"]);
        }
        kinds.push(kind);
    }
    for kind in ["GameServer", "Fleet", "FleetAutoscaler"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} among the examples: {kinds:?}");
    }
    // generateName, as `kubectl create -f` sends a cpp-simple-style fleet: the API server names it.
    let (_, mut fleet) = example_documents().into_iter().find(|(_, d)| d["kind"] == "Fleet").expect("a Fleet");
    let object = fleet.as_object_mut().expect("an object");
    object["metadata"] = json!({"generateName": "simple-game-server-"});
    let fleets: Api<Fleet> = Api::namespaced(client.clone(), "default");
    let typed: Fleet = serde_json::from_value(fleet).expect("a Fleet");
    let params = PostParams { dry_run: true, ..PostParams::default() };
    let created = fleets.create(&params, &typed).await.expect("a generateName Fleet is accepted");
    let name = created.metadata.name.unwrap_or_default();
    assert!(name.starts_with("simple-game-server-") && name.len() == "simple-game-server-".len() + 5, "{name}");

    // The check has teeth: a misspelt field is refused by name, as `stadion up` refuses it.
    let (_, mut fleet) = example_documents().into_iter().find(|(_, d)| d["kind"] == "Fleet").expect("a Fleet");
    fleet["spec"]["replcas"] = json!(5);
    let error = dry_run_apply(&client, &fleet).await.expect_err("an unknown field is refused");
    assert!(error.to_string().contains("replcas"), "{error}");
}

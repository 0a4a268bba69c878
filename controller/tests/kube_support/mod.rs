//! What the allocation and kubectl cluster tests share: a namespace, a simulated Node and
//! kubelet, the CRDs, the controller in-process, and servers driven Ready through the SDK's
//! kube backend. The fleet suite (kube_cluster.rs) uses its polling, CRD install, Node and kubelet.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use stadion_controller::kube::allocation_api::AllocationApiConfig;
use stadion_controller::kube::run::{ControllerConfig, run};
use stadion_controller::kube::sidecar::KubeBackend;
use stadion_core::ports::PortRanges;
use stadion_crds::{GameServer, GameServerState};
use stadion_sdk::server::{self, SdkServerHandle, ServeOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TIMEOUT: Duration = Duration::from_secs(90);
pub const MANAGER: &str = "stadion-cluster-test";

/// Polls `check` every 250 ms until it returns `Some`, or fails after [`TIMEOUT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (file, yaml) in stadion_crds::crd::render_all().expect("CRDs render") {
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{file}: {e}"));
        let name = crd.metadata.name.clone().expect("CRD name");
        crds.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&crd)).await.expect("apply CRD");
    }
    eventually("the CRDs to be served", || async {
        stadion_controller::kube::discovery::ensure_crds_installed(client).await.ok()
    })
    .await;
}

/// A fresh namespace and Node for one test, the controller scoped to it, and a kubelet.
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
    pub node: String,
    stop: Option<oneshot::Sender<()>>,
    controller: Option<JoinHandle<stadion_controller::kube::Result<()>>>,
    kubelet: JoinHandle<()>,
    pub sidecars: Arc<tokio::sync::Mutex<HashMap<String, (KubeBackend, SdkServerHandle)>>>,
}

impl Cluster {
    /// Creates the namespace and Node, installs the CRDs, starts the controller (serving the
    /// allocation API as `allocation_api` says) and the kubelet.
    pub async fn start(prefix: &str, allocation_api: Option<AllocationApiConfig>) -> Self {
        let mut cluster = Self::without_controller(prefix).await;
        cluster.start_controller(allocation_api);
        cluster
    }

    /// [`start`](Self::start) without the controller, for tests that configure it from the
    /// namespace (call [`start_controller`](Self::start_controller) next).
    pub async fn without_controller(prefix: &str) -> Self {
        let client = stadion_controller::kube::connect::client(None).await.expect("KUBECONFIG points at a cluster");
        let suffix = format!("{:x}", rand::random::<u32>());
        let namespace = format!("{prefix}-{suffix}");
        let node = format!("{prefix}-node-{suffix}");
        install_crds(&client).await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
        namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
        create_node(&client, &node).await;
        Self {
            client: client.clone(),
            namespace: namespace.clone(),
            node: node.clone(),
            stop: None,
            controller: None,
            kubelet: tokio::spawn(play_kubelet(client.clone(), namespace.clone(), node.clone())),
            sidecars: Arc::default(),
        }
    }

    pub fn start_controller(&mut self, allocation_api: Option<AllocationApiConfig>) {
        let (stop, stopped) = oneshot::channel::<()>();
        let config = ControllerConfig {
            sidecar_image: "stadion:test".into(),
            sdk_service_account: "default".into(),
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            leader_election: false,
            lease_namespace: self.namespace.clone(),
            identity: "cluster-test".into(),
            namespace: Some(self.namespace.clone()),
            port_ranges: PortRanges::default(),
            allocation_api,
            allocation_ttl: Default::default(),
        };
        self.controller = Some(tokio::spawn(run(self.client.clone(), config, async {
            let _ = stopped.await;
        })));
        self.stop = Some(stop);
    }

    /// Serves the SDK for each Scheduled server of the namespace and calls Ready on it.
    pub async fn ready_every_scheduled(&self) {
        let api: Api<GameServer> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut sidecars = self.sidecars.lock().await;
        let http = reqwest::Client::new();
        for gs in api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
            let name = gs.name().to_owned();
            if gs.state() != Some(GameServerState::Scheduled) || sidecars.contains_key(&name) {
                continue;
            }
            let backend = KubeBackend::connect(self.client.clone(), &self.namespace, &name).await.expect("backend");
            let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let listeners = server::bind(loopback, loopback).await.expect("bind SDK");
            let options = ServeOptions { health_checks: false, ..ServeOptions::default() };
            let handle = server::serve(Arc::new(backend.clone()), listeners, options).expect("serve SDK");
            let ready = http.post(format!("http://{}/ready", handle.http_addr())).json(&json!({})).send().await;
            assert!(ready.expect("POST /ready").status().is_success());
            sidecars.insert(name, (backend, handle));
        }
    }

    /// Waits until `count` servers of the namespace are Ready, driving them there.
    pub async fn await_ready(&self, count: usize) {
        let api: Api<GameServer> = Api::namespaced(self.client.clone(), &self.namespace);
        eventually(&format!("{count} Ready servers"), || async {
            self.ready_every_scheduled().await;
            let all = api.list(&ListParams::default()).await.ok()?.items;
            let ready = all.iter().filter(|gs| gs.state() == Some(GameServerState::Ready)).count();
            (ready >= count).then_some(())
        })
        .await;
    }

    /// Stops the controller (and waits for it), keeping the rest.
    pub async fn stop_controller(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(controller) = self.controller.take() {
            let stopped = tokio::time::timeout(TIMEOUT, controller).await.expect("the controller stops when asked");
            stopped.expect("controller task").expect("controller ran cleanly");
        }
    }

    /// Stops everything and deletes the namespace and Node.
    pub async fn finish(mut self) {
        for (_, (_, handle)) in std::mem::take(&mut *self.sidecars.lock().await) {
            handle.shutdown().await;
        }
        self.stop_controller().await;
        self.kubelet.abort();
        let _ = Api::<Node>::all(self.client.clone()).delete(&self.node, &DeleteParams::default()).await;
        let _ = Api::<Namespace>::all(self.client.clone()).delete(&self.namespace, &DeleteParams::default()).await;
    }

    /// A Fleet of `replicas` named `name` whose Pods go to this cluster's Node.
    pub fn fleet(&self, name: &str, replicas: i32) -> serde_json::Value {
        json!({
            "apiVersion": "agones.dev/v1", "kind": "Fleet",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "replicas": replicas,
                "template": {"spec": {
                    "ports": [{"name": "default", "containerPort": 7654}],
                    "health": {"disabled": true},
                    "template": {"spec": self.pod_spec()}
                }}
            }
        })
    }

    /// A Pod spec that schedules on this cluster's Node.
    pub fn pod_spec(&self) -> serde_json::Value {
        json!({
            "nodeSelector": {"stadion.dev/test-node": self.node},
            "tolerations": [{"key": "stadion.dev/test-node", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "game", "image": "registry.invalid/never-pulled:1"}]
        })
    }
}

/// A Node nobody runs: tainted and labelled so only the test's Pods go there.
pub async fn create_node(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"stadion.dev/test-node": name}},
        "spec": {"taints": [{"key": "stadion.dev/test-node", "value": name, "effect": "NoSchedule"}]}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.expect("create node");
    let status = json!({"status": {
        "addresses": [
            {"type": "InternalIP", "address": "10.250.0.7"},
            {"type": "ExternalIP", "address": "203.0.113.77"},
            {"type": "Hostname", "address": name}
        ],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated"}]
    }});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("node status");
}

/// What a kubelet would do for our Pods: bind, run, and finish deleting them.
pub async fn play_kubelet(client: Client, namespace: String, node: String) {
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    loop {
        let Ok(list) = pods.list(&ListParams::default().labels("agones.dev/role=gameserver")).await else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        for pod in list.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() {
                let _ = pods.delete(&name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await;
                continue;
            }
            if pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none() {
                let binding = json!({
                    "apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": name},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node}
                });
                let bound: Result<serde_json::Value, _> =
                    pods.create_subresource("binding", &name, &PostParams::default(), &binding).await;
                if let Err(error) = bound {
                    eprintln!("binding {name}: {error}");
                }
                continue;
            }
            if pod.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
                let status = json!({"status": {"phase": "Running", "podIP": "10.250.1.1"}});
                let _ = pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Runs the real `kubectl` (from PATH) against the test's KUBECONFIG: (exit success, stdout,
/// stderr).
pub async fn kubectl(args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new("kubectl").args(args).output().await.expect("kubectl on PATH");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

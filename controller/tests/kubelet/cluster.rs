//! Setting up a cluster-suite test: the API client, CRDs, a fresh namespace with the sidecar's
//! RBAC from the install, simulated Nodes and the stand-in kubelet, the `stadion` binary, and an
//! in-process controller.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use stadion_controller::kube::install::{InstallOptions, SDK_SERVICE_ACCOUNT, parse_documents, render};
use stadion_controller::kube::run::{ControllerConfig, run};
use stadion_core::ports::PortRanges;
use stadion_crds::{Fleet, GameServer, GameServerState};
use tokio::sync::oneshot;

use super::{Kubelet, KubeletConfig, Mode, SimNode};

/// Field manager of the suite's writes.
pub const MANAGER: &str = "stadion-pod-suite";
/// Image the in-process controller injects as the sidecar; the kubelet maps it to `stadion`.
pub const SIDECAR_IMAGE: &str = "stadion:sim";

/// Polls `check` every 250 ms until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `stadion` binary the Pods' containers run: `STADION_BIN` when set, otherwise the one in
/// this test's own target folder and profile (`target/debug/stadion`, next to `deps/`), which
/// `cargo test --workspace` or `cargo build` has built (`.ci/run` builds it before the cluster
/// suite). The controller crate's tests cannot use `CARGO_BIN_EXE_stadion`: only the root
/// crate's tests get it. Building it from here would pick another feature set than the
/// workspace build and rebuild the whole tree, so a missing binary is an error that says what
/// to run.
pub fn stadion_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("STADION_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    let binary = profile_dir.join("stadion");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build -p stadion` first (or set STADION_BIN)",
        binary.display()
    );
    binary
}

/// A client for `KUBECONFIG`.
pub async fn client() -> Client {
    stadion_controller::kube::connect::client(None).await.expect("KUBECONFIG points at a cluster")
}

/// The test's kubeconfig file.
pub fn kubeconfig_path() -> PathBuf {
    PathBuf::from(std::env::var_os("KUBECONFIG").expect("KUBECONFIG is set"))
}

/// Applies the generated CRDs and waits until they are served.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (file, yaml) in stadion_crds::crd::render_all().expect("CRDs render") {
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{file}: {e}"));
        let name = crd.metadata.name.clone().expect("CRD name");
        crds.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&crd)).await.expect("apply CRD");
    }
    eventually("the CRDs to be served", Duration::from_secs(60), || async {
        stadion_controller::kube::discovery::ensure_crds_installed(client).await.ok()
    })
    .await;
}

/// One test's world: a namespace with the sidecar's RBAC, its Nodes and their kubelet.
pub struct World {
    /// API client (the test's admin identity).
    pub client: Client,
    /// Random id of this run: Node label/taint value, name suffix.
    pub run: String,
    /// The fresh namespace.
    pub namespace: String,
    /// The simulated Nodes.
    pub nodes: Vec<SimNode>,
    /// Their kubelet.
    pub kubelet: Kubelet,
}

impl World {
    /// CRDs, a namespace, `node_count` Nodes of `max_pods` each, and a kubelet in `mode`.
    pub async fn new(node_count: u8, max_pods: u32, mode: Mode) -> Self {
        let client = client().await;
        let run = format!("{:x}", rand::random::<u32>());
        let namespace = format!("stadion-pods-{run}");
        install_crds(&client).await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
        namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
        apply_sdk_rbac(&client, &namespace).await;
        // Loopback addresses of their own: 127.<a>.<n>.1 for Node n, 127.<b>.x.y for Pods.
        let octet = 10 + (rand::random::<u8>() % 90);
        let mut nodes = Vec::new();
        for n in 0..node_count {
            let name = format!("sim-{run}-{n}");
            nodes.push(SimNode::register(&client, &run, &name, Ipv4Addr::new(127, octet, n, 1), max_pods).await);
        }
        let stadion = stadion_binary();
        let config = KubeletConfig {
            namespace: namespace.clone(),
            nodes: nodes.clone(),
            images: HashMap::from([(SIDECAR_IMAGE.to_owned(), stadion.clone())]),
            path: HashMap::from([("stadion".to_owned(), stadion)]),
            kubeconfig: kubeconfig_path(),
            mode,
            work_dir: std::env::temp_dir().join(format!("stadion-sim-kubelet-{run}")),
            pod_ip_octet: 100 + octet,
        };
        let kubelet = Kubelet::start(client.clone(), config);
        Self { client, run, namespace, nodes, kubelet }
    }

    /// Pod template `spec` fields that keep a Pod on this run's Nodes.
    pub fn placement(&self) -> serde_json::Value {
        json!({
            "nodeSelector": {super::node::RUN_KEY: self.run},
            "tolerations": [{"key": super::node::RUN_KEY, "operator": "Equal", "value": self.run, "effect": "NoSchedule"}],
        })
    }

    /// The controller, in-process and scoped to the namespace, until the sender is used.
    pub fn start_controller(
        &self,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<stadion_controller::kube::Result<()>>) {
        let (stop, stopped) = oneshot::channel::<()>();
        let config = ControllerConfig {
            sidecar_image: SIDECAR_IMAGE.into(),
            sdk_service_account: SDK_SERVICE_ACCOUNT.into(),
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            leader_election: false,
            lease_namespace: self.namespace.clone(),
            identity: "pod-suite".into(),
            namespace: Some(self.namespace.clone()),
            port_ranges: PortRanges::default(),
            allocation_api: None,
            allocation_ttl: Default::default(),
        };
        let task = tokio::spawn(run(self.client.clone(), config, async {
            let _ = stopped.await;
        }));
        (stop, task)
    }

    /// Deletes the Nodes and the namespace (the kubelet stops when dropped). The servers'
    /// finalizers are dropped first: the controller that would release them may be gone.
    pub async fn clean_up(self) {
        drop(self.kubelet);
        let gameservers: Api<GameServer> = Api::namespaced(self.client.clone(), &self.namespace);
        let release = json!({"metadata": {"finalizers": null}});
        for gs in servers(&gameservers).await {
            let name = gs.metadata.name.clone().unwrap_or_default();
            let _ = gameservers.patch(&name, &PatchParams::default(), &Patch::Merge(&release)).await;
        }
        for node in &self.nodes {
            node.remove(&self.client).await;
        }
        let _ = Api::<Namespace>::all(self.client.clone()).delete(&self.namespace, &DeleteParams::default()).await;
    }
}

/// The sidecar's ServiceAccount, Role and RoleBinding for `namespace`, exactly as
/// `stadion install --gameserver-namespace` renders them.
pub async fn apply_sdk_rbac(client: &Client, namespace: &str) {
    let options = InstallOptions { gameserver_namespaces: vec![namespace.to_owned()], ..InstallOptions::default() };
    let install = render(&options, &[]).expect("install renders");
    let docs = parse_documents("install", &install).expect("install parses");
    let mut applied = 0;
    for doc in docs.iter().filter(|d| d["metadata"]["namespace"] == namespace) {
        let (group, version) = match doc["apiVersion"].as_str().unwrap_or_default().split_once('/') {
            Some((group, version)) => (group.to_owned(), version.to_owned()),
            None => (String::new(), doc["apiVersion"].as_str().unwrap_or_default().to_owned()),
        };
        let kind = doc["kind"].as_str().unwrap_or_default();
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, &version, kind));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        api.patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(doc))
            .await
            .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
        applied += 1;
    }
    assert_eq!(applied, 3, "the install has the sidecar's ServiceAccount, Role and RoleBinding for {namespace}");
}

/// A Fleet of `stadion simple-game-server` on this run's Nodes.
pub fn fleet(world: &World, name: &str, replicas: i32, scheduling: &str, port: serde_json::Value) -> Fleet {
    let mut pod_spec = world.placement();
    pod_spec["containers"] = json!([{
        "name": "game", "image": "stadion-sim/simple-game-server:1",
        "command": ["stadion", "simple-game-server"],
        "args": ["--health-interval-ms", "1000"],
    }]);
    serde_json::from_value(json!({
        "apiVersion": "agones.dev/v1", "kind": "Fleet",
        "metadata": {"name": name, "namespace": world.namespace},
        "spec": {
            "replicas": replicas,
            "scheduling": scheduling,
            "template": {"spec": {
                "ports": [port],
                "health": {"initialDelaySeconds": 5, "periodSeconds": 3, "failureThreshold": 3},
                "template": {"spec": pod_spec}
            }}
        }
    }))
    .expect("a Fleet")
}

/// One Dynamic UDP port on 7654.
pub fn dynamic_udp() -> serde_json::Value {
    json!({"name": "default", "portPolicy": "Dynamic", "containerPort": 7654, "protocol": "UDP"})
}

/// Every GameServer of the namespace.
pub async fn servers(api: &Api<GameServer>) -> Vec<GameServer> {
    api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default()
}

/// Those not being deleted.
pub fn live(all: Vec<GameServer>) -> Vec<GameServer> {
    all.into_iter().filter(|gs| gs.metadata.deletion_timestamp.is_none()).collect()
}

/// Live servers in `state`.
pub async fn in_state(api: &Api<GameServer>, state: GameServerState) -> Vec<GameServer> {
    live(servers(api).await).into_iter().filter(|gs| gs.state() == Some(state)).collect()
}

/// Allocates `count` servers of fleet `fleet` through the kube allocator; their names.
pub async fn allocate(world: &World, fleet: &str, count: usize) -> Vec<String> {
    use stadion_controller::kube::allocator::KubeAllocator;
    use stadion_core::allocator::{Allocator, admit_allocation};
    use stadion_crds::GameServerAllocation;
    use stadion_crds::allocation::{GameServerAllocationSpec, GameServerSelector};
    let (allocator, driver) = KubeAllocator::watching(world.client.clone(), Some(&world.namespace));
    let task = tokio::spawn(driver);
    allocator.cache().wait_until_ready().await.expect("allocator cache");
    let mut selector = GameServerSelector::default();
    selector.label_selector.match_labels = Some([("agones.dev/fleet".to_owned(), fleet.to_owned())].into());
    let mut request =
        GameServerAllocation::new(GameServerAllocationSpec { selectors: vec![selector], ..Default::default() });
    request.metadata.namespace = Some(world.namespace.clone());
    let mut names = Vec::new();
    while names.len() < count {
        let outcome = eventually("an allocation", Duration::from_secs(30), || async {
            allocator.allocate(admit_allocation(request.clone()).unwrap()).await.ok().and_then(|o| o.allocated())
        })
        .await;
        names.push(outcome.game_server_name);
    }
    task.abort();
    names
}

/// [`fleet`] with RollingUpdate at 25% / 25%.
pub fn rolling_fleet(world: &World, name: &str, replicas: i32) -> Fleet {
    let mut fleet = fleet(world, name, replicas, "Packed", dynamic_udp());
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    fleet.spec.strategy = Some(serde_json::from_value(strategy).expect("a strategy"));
    fleet
}

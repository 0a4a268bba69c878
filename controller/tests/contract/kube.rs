//! The kube runtime under contract: its controllers (`kube::run::run`), allocator and sidecar
//! backend running in this process against an API server — the stateful fake on loopback, or
//! a real cluster. Nothing runs Pods, so the harness plays kubelet (binds Pods to its Node,
//! marks them Running, finishes their deletion) and the game (serves each Scheduled server's
//! SDK over the sidecar's kube backend and calls Ready, as the test game does locally).

mod allocation_api;
mod cluster;
mod kubelet;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use stadion_controller::dashboard::auth::Tokens;
use stadion_controller::kube::allocator::KubeAllocator;
use stadion_controller::kube::dashboard::DashboardConfig;
use stadion_controller::kube::run::{ControllerConfig, run_with_dashboard};
use stadion_core::allocator::Allocator;
use stadion_core::ports::PortRanges;
use stadion_crds::manifest::{Resource as Manifest, parse_documents};
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::fake_api::FakeApiServer;
use super::runtime::{ObjectKind, Runtime, SdkCall};
use super::sdk;
use allocation_api::AllocationEndpoint;
use kubelet::Games;

/// Label (and taint) of the harness's Node, which no real kubelet runs.
pub const NODE_LABEL: &str = "stadion.dev/test-node";

/// The bearer token of every kube contract runtime's dashboard.
pub const DASHBOARD_TOKEN: &str = "contract-token";

/// A free loopback address (bound, then released for the controller to bind), never one
/// handed out before in this process: scenarios run in parallel, and a port released here
/// is free again, for the kernel to give to the next caller, until its controller binds it.
fn free_address() -> std::net::SocketAddr {
    static HANDED_OUT: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let address = listener.local_addr().expect("its address");
        if HANDED_OUT.lock().expect("the port list").insert(address.port()) {
            return address;
        }
    }
}

/// A kube runtime started for one scenario.
pub struct KubeContract {
    /// Where its `/metrics` is served.
    pub metrics: std::net::SocketAddr,
    /// Where its dashboard is served (token [`DASHBOARD_TOKEN`]).
    pub dashboard: std::net::SocketAddr,
    /// The controller's own allocation API (`allocation.agones.dev/v1`).
    pub allocation_api: AllocationEndpoint,
    name: &'static str,
    client: Client,
    namespace: String,
    node: String,
    allocator: KubeAllocator,
    games: Arc<Games>,
    tasks: Vec<JoinHandle<()>>,
    stop: oneshot::Sender<()>,
    controller: JoinHandle<stadion_controller::kube::Result<()>>,
    /// Whether this is a real cluster (which must be cleaned up).
    cluster: bool,
    _fake: Option<FakeApiServer>,
}

/// The fake API server refuses a Pod whose command does not exist here, as a real one would
/// refuse an invalid Pod: the controller then puts the server in Error, as the local runtime
/// does when it cannot start the process.
fn refuse_missing_command(pod: &Value) -> Option<String> {
    let containers = pod.pointer("/spec/containers")?.as_array()?;
    containers.iter().enumerate().find_map(|(i, c)| {
        let command = c.pointer("/command/0")?.as_str()?;
        (command.starts_with('/') && !std::path::Path::new(command).exists())
            .then(|| format!("spec.containers[{i}].command: {command} does not exist"))
    })
}

impl KubeContract {
    /// Over a fresh fake API server (namespace `default`).
    pub async fn over_fake_api() -> Self {
        let fake = FakeApiServer::start(Some(refuse_missing_command)).await;
        let client = fake.client();
        let node = "contract-node".to_owned();
        cluster::create_node(&client, &node).await;
        Self::start("kube (fake API)", client, "default".to_owned(), node, false, Some(fake)).await
    }

    /// Over the cluster `KUBECONFIG` names, in a fresh namespace, or None without one.
    pub async fn over_cluster() -> Option<Self> {
        std::env::var_os("KUBECONFIG")?;
        let client = stadion_controller::kube::connect::client(None).await.expect("KUBECONFIG points at a cluster");
        let suffix = format!("{:08x}", rand::random::<u32>());
        let namespace = format!("stadion-contract-{suffix}");
        let node = format!("stadion-contract-node-{suffix}");
        cluster::install_crds(&client).await;
        cluster::create_namespace(&client, &namespace).await;
        cluster::create_node(&client, &node).await;
        Some(Self::start("kube (cluster)", client, namespace, node, true, None).await)
    }

    async fn start(
        name: &'static str,
        client: Client,
        namespace: String,
        node: String,
        cluster: bool,
        fake: Option<FakeApiServer>,
    ) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let (metrics, dashboard) = (free_address(), free_address());
        let allocation_api = AllocationEndpoint::new(&namespace);
        let config = ControllerConfig {
            sidecar_image: "stadion:contract".into(),
            sdk_service_account: "default".into(),
            metrics_addr: metrics,
            leader_election: false,
            lease_namespace: namespace.clone(),
            identity: "contract".into(),
            namespace: Some(namespace.clone()),
            port_ranges: PortRanges::default(),
            allocation_api: Some(allocation_api.config()),
            allocation_ttl: Default::default(),
        };
        let tokens = Tokens::new(vec![DASHBOARD_TOKEN.to_owned()]).expect("a token");
        let dashboard_config = DashboardConfig { address: dashboard, tokens };
        let controller = tokio::spawn(run_with_dashboard(client.clone(), config, Some(dashboard_config), async {
            let _ = stopped.await;
        }));
        let games = Arc::new(Games::default());
        let kubelet = tokio::spawn(kubelet::play(client.clone(), namespace.clone(), node.clone(), games.clone()));
        let (allocator, driver) = KubeAllocator::watching(client.clone(), Some(&namespace));
        let driver = tokio::spawn(driver);
        allocator.cache().wait_until_ready().await.expect("the allocator's GameServer cache fills");
        Self {
            metrics,
            dashboard,
            allocation_api,
            name,
            client,
            namespace,
            node,
            allocator,
            games,
            tasks: vec![kubelet, driver],
            stop,
            controller,
            cluster,
            _fake: fake,
        }
    }

    /// Stops everything; on a cluster, deletes what the scenario made, the Node and the
    /// namespace.
    pub async fn finish(self) {
        if self.cluster {
            cluster::delete_everything(&self.client, &self.namespace).await;
        }
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(20), self.controller).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => panic!("the kube controllers failed: {error}"),
            Ok(Err(error)) => panic!("the kube controller task failed: {error}"),
            Err(_) => panic!("the kube controllers did not stop within 20 s"),
        }
        for task in self.tasks {
            task.abort();
        }
        self.games.shutdown().await;
        if self.cluster {
            cluster::delete_node_and_namespace(&self.client, &self.node, &self.namespace).await;
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn list<K>(&self) -> Vec<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        match self.api::<K>().list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(error) => panic!("[{}] listing {}: {error}", self.name, K::plural(&())),
        }
    }

    async fn get<K>(&self, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        match self.api::<K>().get_opt(name).await {
            Ok(found) => found,
            Err(error) => panic!("[{}] reading {} {name}: {error}", self.name, K::kind(&())),
        }
    }

    /// What the harness adds to every Pod template: its Node's selector and toleration (a real
    /// scheduler must not put the Pods elsewhere).
    fn place_on_node(&self, pod_spec: Option<&mut Value>) {
        let Some(spec) = pod_spec.and_then(Value::as_object_mut) else { return };
        spec.insert("nodeSelector".into(), json!({ NODE_LABEL: self.node }));
        spec.insert("tolerations".into(), json!([{"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}]));
    }

    /// kubectl apply of one object: create it, or merge-patch what the manifest declares.
    async fn apply_one<K>(&self, mut value: Value) -> Result<(), String>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
    {
        value["metadata"]["namespace"] = Value::String(self.namespace.clone());
        let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let object: K = serde_json::from_value(value.clone()).map_err(|e| format!("{name}: {e}"))?;
        let api = self.api::<K>();
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let mut metadata = serde_json::Map::new();
                for field in ["labels", "annotations"] {
                    if let Some(v) = value.pointer(&format!("/metadata/{field}")) {
                        metadata.insert(field.into(), v.clone());
                    }
                }
                let patch = json!({"metadata": metadata, "spec": value["spec"]});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop)
                    .map_err(|e| format!("updating {} {name}: {e}", K::kind(&())))
            }
            Err(error) => Err(format!("creating {} {name}: {error}", K::kind(&()))),
        }
    }
}

impl Runtime for KubeContract {
    fn name(&self) -> &'static str {
        self.name
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn store_unchecked(&self, yaml: &str) -> Result<(), String> {
        // No Stadion admission webhook runs in front of the API server: what it stores is what
        // `kubectl apply` sends.
        self.apply(yaml).await
    }

    async fn apply(&self, yaml: &str) -> Result<(), String> {
        let resources = parse_documents(yaml, "contract.yaml").map_err(|e| e.to_string())?;
        for resource in resources {
            match resource {
                Manifest::GameServer(gs) => {
                    let mut value = to_value(&*gs);
                    self.place_on_node(value.pointer_mut("/spec/template/spec"));
                    self.apply_one::<GameServer>(value).await?;
                }
                Manifest::GameServerSet(set) => {
                    let mut value = to_value(&*set);
                    self.place_on_node(value.pointer_mut("/spec/template/spec/template/spec"));
                    self.apply_one::<GameServerSet>(value).await?;
                }
                Manifest::Fleet(fleet) => {
                    let mut value = to_value(&*fleet);
                    self.place_on_node(value.pointer_mut("/spec/template/spec/template/spec"));
                    self.apply_one::<Fleet>(value).await?;
                }
                Manifest::FleetAutoscaler(fas) => self.apply_one::<FleetAutoscaler>(to_value(&*fas)).await?,
                Manifest::GameServerAllocation(_) => {
                    return Err("GameServerAllocation is not applied: allocate through the allocator".into());
                }
            }
        }
        Ok(())
    }

    async fn gameservers(&self) -> Vec<GameServer> {
        self.list().await
    }

    async fn gameserversets(&self) -> Vec<GameServerSet> {
        self.list().await
    }

    async fn fleet(&self, name: &str) -> Option<Fleet> {
        self.get(name).await
    }

    async fn autoscaler(&self, name: &str) -> Option<FleetAutoscaler> {
        self.get(name).await
    }

    async fn sdk(&self, gameserver: &str, call: SdkCall) -> Result<(), String> {
        let addr =
            self.games.sidecar(gameserver).await.ok_or_else(|| {
                format!("GameServer {gameserver} has no sidecar (it was never Scheduled, or is gone)")
            })?;
        sdk::call(addr, call).await
    }

    fn allocator(&self) -> Arc<dyn Allocator> {
        Arc::new(self.allocator.clone())
    }

    async fn delete(&self, kind: ObjectKind, name: &str) -> Result<(), String> {
        let params = DeleteParams::default();
        let deleted = match kind {
            ObjectKind::GameServer => self.api::<GameServer>().delete(name, &params).await.map(drop),
            ObjectKind::GameServerSet => self.api::<GameServerSet>().delete(name, &params).await.map(drop),
            ObjectKind::Fleet => self.api::<Fleet>().delete(name, &params).await.map(drop),
        };
        deleted.map_err(|e| e.to_string())
    }
}

/// A parsed manifest as the JSON sent to the API server.
fn to_value<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).expect("a parsed manifest serializes")
}

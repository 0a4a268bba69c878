//! A stand-in kubelet for the cluster suite: it does for simulated Nodes what a kubelet does for
//! real ones, so the whole Pod path runs against a real API server and a real kube-scheduler.
//!
//! - [`node`]: registers Nodes (capacity, allocatable, `Ready`, a loopback `InternalIP` each) and
//!   renews their Leases in `kube-node-lease`; the real kube-scheduler binds Pods to them.
//! - [`pod`]: for each Pod bound to one of its Nodes it runs the containers as local processes:
//!   the image's entrypoint (or the `command`) with the Pod spec's args and env (`fieldRef`s
//!   resolved, `$(VAR)` expanded), restarts them per `restartPolicy`, and reports
//!   `containerStatuses` (running, terminated with exit code, `restartCount`, `lastState`) and the
//!   phase as a kubelet does; on deletion it sends SIGTERM, waits out the grace period, SIGKILLs
//!   and finishes the deletion.
//! - [`ports`]: host ports, forwarded from `nodeIP:hostPort` to `podIP:containerPort`.
//!
//! What a container runtime would isolate is mapped onto one machine:
//! - Network namespace: each Pod gets its own loopback address as its Pod IP. Its containers'
//!   "localhost" is that address: the kubelet sets `STADION_SDK_ADDRESS` (where the sidecar
//!   listens), `AGONES_SDK_GRPC_HOST` (where the game finds it) and `SIMPLE_GAME_SERVER_BIND` to it,
//!   and an env value of the form `0.0.0.0:<port>` ("all interfaces") becomes `<podIP>:<port>`.
//! - Service-account identity: the kubelet asks the API server for a token of the Pod's
//!   `serviceAccountName` (TokenRequest, bound to the Pod) and gives the containers a kubeconfig
//!   (`KUBECONFIG`) holding only that token and the cluster's server and CA, taken from the
//!   test's kubeconfig: the sidecar acts with exactly the permissions the install grants it.
//! - Images: an image name maps to a local executable (the entrypoint), and a command's first
//!   word is looked up in the kubelet's PATH map (`stadion` → the `stadion` binary).
//!
//! With [`Mode::Simulated`] no processes run: containers are reported Running at once (for scale
//! and failover tests, where 500 real sidecars would not fit on the machine).

#![allow(dead_code)] // Each test binary uses a different subset.

pub mod cluster;
pub mod node;
pub mod pod;
pub mod ports;
pub mod sampler;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use node::SimNode;

/// Whether containers run as processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Each container is a local process.
    Processes,
    /// Containers are reported Running without a process.
    Simulated,
}

/// What the stand-in kubelet runs and where.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// Namespace whose Pods it runs.
    pub namespace: String,
    /// The Nodes it is the kubelet of.
    pub nodes: Vec<SimNode>,
    /// Image → the executable that is its entrypoint.
    pub images: HashMap<String, PathBuf>,
    /// Command name → executable (the containers' PATH).
    pub path: HashMap<String, PathBuf>,
    /// The test's kubeconfig, for the cluster's server and CA.
    pub kubeconfig: PathBuf,
    /// Processes or simulated containers.
    pub mode: Mode,
    /// Folder for container logs (`<pod>/<container>.log`) and Pod kubeconfigs.
    pub work_dir: PathBuf,
    /// Second octet of the Pod IPs (`127.<octet>.x.y`); distinct per kubelet on one machine.
    pub pod_ip_octet: u8,
}

/// A Pod's task and the channel that hands it the Pod's newer versions.
type PodTask = (watch::Sender<Arc<Pod>>, JoinHandle<()>);

/// Shared by the watch loop and every Pod's task.
pub struct Shared {
    client: Client,
    config: KubeletConfig,
    next_pod: AtomicU32,
    pods: Mutex<HashMap<String, PodTask>>,
    /// Live container processes: (pod, container) → pid.
    pids: Mutex<HashMap<(String, String), i32>>,
}

impl Shared {
    fn node(&self, name: &str) -> Option<&SimNode> {
        self.config.nodes.iter().find(|n| n.name == name)
    }

    fn next_pod_ip(&self) -> Ipv4Addr {
        let k = self.next_pod.fetch_add(1, Ordering::Relaxed);
        Ipv4Addr::new(127, self.config.pod_ip_octet, (k / 250) as u8, (k % 250 + 1) as u8)
    }

    fn observe(self: &Arc<Self>, pod: Pod) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else { return };
        if self.node(node).is_none() {
            return;
        }
        let uid = pod.uid().unwrap_or_default();
        let mut pods = self.pods.lock().unwrap();
        if let Some((updates, _)) = pods.get(&uid) {
            updates.send_replace(Arc::new(pod));
            return;
        }
        let (updates, receiver) = watch::channel(Arc::new(pod));
        let task = tokio::spawn(pod::run(self.clone(), receiver));
        pods.insert(uid, (updates, task));
    }

    fn forget(&self, pod: &Pod) {
        // Dropping the sender tells the Pod's task its Pod is gone: it kills what still runs.
        self.pods.lock().unwrap().remove(&pod.uid().unwrap_or_default());
    }
}

/// A running stand-in kubelet; dropping it kills every container process it started.
pub struct Kubelet {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Kubelet {
    /// Starts watching the namespace's Pods and heart-beating the Nodes.
    pub fn start(client: Client, config: KubeletConfig) -> Self {
        std::fs::create_dir_all(&config.work_dir).expect("kubelet work dir");
        let heartbeats = tokio::spawn(node::keep_alive(client.clone(), config.nodes.clone()));
        let shared = Arc::new(Shared {
            client,
            config,
            next_pod: AtomicU32::new(0),
            pods: Mutex::new(HashMap::new()),
            pids: Mutex::new(HashMap::new()),
        });
        let watch = tokio::spawn(watch_pods(shared.clone()));
        Self { shared, tasks: vec![heartbeats, watch] }
    }

    /// The pid of `container` in `pod`, while it runs.
    pub fn pid(&self, pod: &str, container: &str) -> Option<i32> {
        self.shared.pids.lock().unwrap().get(&(pod.to_owned(), container.to_owned())).copied()
    }

    /// How many container processes run now.
    pub fn processes(&self) -> usize {
        self.shared.pids.lock().unwrap().len()
    }

    /// Where `container` of `pod` logs.
    pub fn log_path(&self, pod: &str, container: &str) -> PathBuf {
        self.shared.config.work_dir.join(pod).join(format!("{container}.log"))
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for (_, (_, task)) in self.shared.pods.lock().unwrap().drain() {
            task.abort();
        }
        for pid in self.shared.pids.lock().unwrap().values() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

async fn watch_pods(shared: Arc<Shared>) {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &shared.config.namespace);
    let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => shared.observe(pod),
            Ok(watcher::Event::Delete(pod)) => shared.forget(&pod),
            Ok(_) => {}
            Err(error) => eprintln!("sim-kubelet: Pod watch: {error}"),
        }
    }
}

//! [`LocalRuntime`]: the store, the supervisor and one controller task per kind, wired together.
//! This is what `stadion up` starts.
//!
//! Each GameServer's game process gets, on top of the runtime's own environment and its
//! container's `env` (`value` only):
//!
//! | variable | value |
//! |---|---|
//! | `AGONES_SDK_GRPC_HOST` | `127.0.0.1` (the sidecars listen on loopback) |
//! | `AGONES_SDK_GRPC_PORT`, `AGONES_SDK_HTTP_PORT` | its own sidecar's ports (free ports, not 9357/9358, so a thousand servers can share one machine) |
//! | `STADION_GAMESERVER_NAME`, `STADION_GAMESERVER_NAMESPACE` | which server it is |
//! | `STADION_PORT_<NAME>` / `STADION_PUBLIC_PORT_<NAME>` | per spec port: the port to bind / the one players use (equal locally: the host port) |
//!
//! `<NAME>` is the port name uppercased with other characters as `_` ([`stadion_core::env`]).

mod apply;
mod autoscalers;
mod crash_loops;
mod fleets;
mod gameservers;
mod queue;
mod sets;
mod snapshot;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use stadion_crds::allocation_ttl::AllocationTtl;
use stadion_crds::manifest::Resource;
use stadion_crds::{GameServer, labels};
use stadion_sdk::server::SdkServerHandle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use apply::{ApplyError, ApplyReport, Manifest};
pub use crash_loops::{CrashBackoff, CrashLoopState, CrashLoopSummary, CrashLoops, is_crash_at_start};
pub use gameservers::AGONES_SDK_GRPC_HOST;
pub use snapshot::{FleetSummary, GameServerSummary, PortSummary, Snapshot};

use super::allocator::LocalAllocator;
use super::error::Result;
use super::recorder::LocalRecorder;
use super::sandbox::SandboxCommand;
use super::store::Store;
use super::supervisor::{DEFAULT_GRACE, GuardCommand, OutputSink, Supervisor, SupervisorConfig};
use crate::executor::{Seams, WebhookClient};
use stadion_core::ports::{PortAllocator, PortRanges};

/// Node name of every local GameServer.
pub const LOCAL_NODE: &str = "local";
/// Address advertised for local GameServers unless configured.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1";

/// Settings of a [`LocalRuntime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Address players are given (`status.address`): loopback, or the LAN address to let other
    /// machines join.
    pub address: String,
    /// Node name written to `status.nodeName`.
    pub node_name: String,
    /// Where the SDK sidecars listen (loopback: only local games should reach them).
    pub sdk_host: IpAddr,
    /// Host-port ranges for Dynamic and Passthrough ports.
    pub port_ranges: PortRanges,
    /// SIGTERM-to-SIGKILL grace period for game processes.
    pub grace: Duration,
    /// Where game output goes.
    pub output: OutputSink,
    /// Folder relative commands resolve against for objects applied without one.
    pub base_dir: PathBuf,
    /// Whether sidecars enforce `spec.health` (mark servers Unhealthy when pings stop).
    pub health_checks: bool,
    /// Allocation TTL of servers without a `stadion.dev/allocation-ttl` annotation (default off).
    pub allocation_ttl: AllocationTtl,
    /// The orphan guard that stops the games should this process be SIGKILLed (`stadion up`
    /// sets it; none by default).
    pub orphan_guard: Option<GuardCommand>,
    /// CrashLoopBackOff of sets whose games exit before Ready (the kubelet's 10 s doubling to
    /// 5 min, reset after 10 min; tests shorten it).
    pub crash_backoff: CrashBackoff,
    /// Runs each game in its own network namespace through this sandbox command, with its
    /// sidecar reachable only from inside (`stadion up --isolation network`; none by default).
    pub network_isolation: Option<SandboxCommand>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let port_ranges = PortRanges::default();
        Self {
            address: DEFAULT_ADDRESS.to_owned(),
            node_name: LOCAL_NODE.to_owned(),
            sdk_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_ranges,
            grace: DEFAULT_GRACE,
            output: OutputSink::stderr(),
            base_dir: PathBuf::from("."),
            health_checks: true,
            allocation_ttl: AllocationTtl::OFF,
            orphan_guard: None,
            crash_backoff: CrashBackoff::default(),
            network_isolation: None,
        }
    }
}

/// A running sidecar and the channel that feeds it its GameServer.
pub(crate) struct SidecarHandle {
    handle: SdkServerHandle,
    publish: watch::Sender<Arc<GameServer>>,
}

/// State every controller task shares.
pub(crate) struct Shared {
    store: Store,
    supervisor: Supervisor,
    config: RuntimeConfig,
    ports: Mutex<PortAllocator>,
    sidecars: Mutex<HashMap<String, SidecarHandle>>,
    tearing_down: Mutex<HashSet<String>>,
    /// Manifest folder and last applied manifest per applied object (`Kind/namespace/name`).
    applied: Mutex<HashMap<String, (PathBuf, Resource)>>,
    /// The name each `generateName` document got, so re-applying it keeps its object.
    generated: Mutex<HashMap<apply::Origin, String>>,
    capacity: watch::Sender<u64>,
    /// Events and reconcile counts of the executors.
    recorder: LocalRecorder,
    /// The one webhook client of every FleetAutoscaler.
    webhooks: WebhookClient,
    /// Each set's CrashLoopBackOff.
    crash_loops: CrashLoops,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single map operation: a panic elsewhere cannot leave the data
    // half-changed, so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn base_dir_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

impl Shared {
    /// The executors' seams: the embedded store for every kind, and the local recorder.
    fn seams(&self) -> Seams<'_> {
        Seams {
            gameservers: &self.store,
            sets: &self.store,
            fleets: &self.store,
            autoscalers: &self.store,
            recorder: &self.recorder,
        }
    }

    fn ports(&self) -> MutexGuard<'_, PortAllocator> {
        lock(&self.ports)
    }

    fn sidecars(&self) -> MutexGuard<'_, HashMap<String, SidecarHandle>> {
        lock(&self.sidecars)
    }

    fn tearing_down(&self) -> MutexGuard<'_, HashSet<String>> {
        lock(&self.tearing_down)
    }

    /// The folder `gs`'s command resolves against: its own manifest's, else its fleet's or set's.
    fn base_dir_for(&self, gs: &GameServer) -> PathBuf {
        let applied = lock(&self.applied);
        let namespace = gs.namespace();
        let labels = gs.metadata.labels.as_ref();
        let owner = |label: &str, kind: &str| {
            labels.and_then(|l| l.get(label)).and_then(|owner| applied.get(&base_dir_key(kind, namespace, owner)))
        };
        applied
            .get(&base_dir_key("GameServer", namespace, gs.name()))
            .or_else(|| owner(labels::FLEET, "Fleet"))
            .or_else(|| owner(labels::GAMESERVERSET, "GameServerSet"))
            .map(|(dir, _)| dir.clone())
            .unwrap_or_else(|| self.config.base_dir.clone())
    }
}

/// The embedded runtime: store, controllers, processes and sidecars in this process.
pub struct LocalRuntime {
    shared: Arc<Shared>,
    allocator: LocalAllocator,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        // Dropped without `shutdown` (a panic, an early return): the controllers stop, the last
        // handle on the supervisor goes, and its drop SIGKILLs every game left.
        let _ = self.stop.send(true);
    }
}

impl std::fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRuntime").field("store", &self.shared.store).finish_non_exhaustive()
    }
}

impl LocalRuntime {
    /// Starts the controllers (inside the current tokio runtime). Nothing runs until
    /// [`apply`](Self::apply) gives them objects.
    pub fn start(config: RuntimeConfig) -> Result<Self> {
        let store = Store::new();
        let (supervisor, exits) = Supervisor::new(SupervisorConfig {
            grace: config.grace,
            output: config.output.clone(),
            orphan_guard: config.orphan_guard.clone(),
        });
        let mut ports = PortAllocator::new(config.port_ranges.clone());
        ports.add_node(config.node_name.clone());
        let (capacity, _) = watch::channel(0);
        let crash_loops = CrashLoops::new(config.crash_backoff);
        let shared = Arc::new(Shared {
            store: store.clone(),
            supervisor,
            config,
            ports: Mutex::new(ports),
            sidecars: Mutex::new(HashMap::new()),
            tearing_down: Mutex::new(HashSet::new()),
            applied: Mutex::new(HashMap::new()),
            generated: Mutex::new(HashMap::new()),
            capacity: capacity.clone(),
            recorder: LocalRecorder::new(),
            webhooks: WebhookClient::new(),
            crash_loops,
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(gameservers::run(shared.clone(), exits, stopped.clone())),
            tokio::spawn(sets::run(shared.clone(), stopped.clone())),
            tokio::spawn(fleets::run(shared.clone(), stopped.clone())),
            tokio::spawn(autoscalers::run(shared.clone(), stopped.clone())),
        ];
        let allocator = LocalAllocator::new(store.clone(), capacity).with_recorder(shared.recorder.clone());
        let node = shared.config.node_name.clone();
        tasks.push(tokio::spawn(super::metrics::run(store, allocator.metrics().clone(), node, stopped)));
        tracing::info!(address = %shared.config.address, node = %shared.config.node_name, "local runtime started");
        Ok(Self { shared, allocator, stop, tasks })
    }

    /// The store (read it, watch it; writes go through the controllers' rules).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The executors' Events (the last few per object) and pass counts, for the admin API.
    pub fn recorder(&self) -> &LocalRecorder {
        &self.shared.recorder
    }

    /// The last lines each game printed (key `namespace/name`), for the dashboard.
    pub fn output_tails(&self) -> &super::supervisor::OutputTails {
        self.shared.supervisor.output_tails()
    }

    /// Each GameServerSet's CrashLoopBackOff, for the admin API.
    pub fn crash_loops(&self) -> &CrashLoops {
        &self.shared.crash_loops
    }

    /// The allocator the matchmaker uses.
    pub fn allocator(&self) -> LocalAllocator {
        self.allocator.clone()
    }

    /// Declaratively applies `manifests`: every resource goes through the core's admission step
    /// first (defaults, then validation; nothing is applied if one is invalid), then is stored
    /// defaulted, created or updated by name. Objects applied earlier that are no
    /// longer in `manifests` are deleted when `prune` is set (re-applying edited files).
    pub fn apply(&self, manifests: &[Manifest], prune: bool) -> Result<ApplyReport, ApplyError> {
        apply::apply(&self.shared, manifests, prune)
    }

    /// What runs right now: every fleet and GameServer, for the admin endpoint and progress.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.shared.store)
    }

    /// Process id of the game process of GameServer `namespace/name`, while it runs.
    pub fn process_id(&self, namespace: &str, name: &str) -> Option<u32> {
        self.shared.supervisor.pid(&stadion_core::object_key(namespace, name))
    }

    /// Number of game processes running.
    pub fn running_processes(&self) -> usize {
        self.shared.supervisor.len()
    }

    /// Stops the controllers, then every game process (SIGTERM, SIGKILL after the grace period)
    /// and every sidecar.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        self.shared.supervisor.shutdown().await;
        let sidecars: Vec<SidecarHandle> = self.shared.sidecars().drain().map(|(_, s)| s).collect();
        futures::future::join_all(sidecars.into_iter().map(|s| s.handle.shutdown())).await;
        tracing::info!("local runtime stopped");
    }
}

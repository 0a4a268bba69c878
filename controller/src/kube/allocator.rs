//! The kube allocator: the shared executor ([`crate::allocation`]) over the API server, choosing
//! from a watch cache, one compare-and-swap per allocation, no batch window.
//!
//! Candidates come from a watch cache of GameServers, ordered by the core's choice function. Each
//! candidate is written Allocated with the resourceVersion it was read at; a 409 means someone
//! else (another matchmaker replica, the SDK, the controller) changed it first. A server can
//! therefore never be handed to two matches, and replicas of the matchmaker need no
//! coordination; within one replica, concurrent requests never race for the same server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use kube::api::PostParams;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use stadion_core::allocation::release_allocation;
use stadion_core::allocator::{
    AdmittedAllocation, AllocateError, AllocationOutcome, Allocator, CapacityEvent, wakes_waiting_matches,
};
use stadion_core::store::{ObjectStore, Recorder, StoreResult, StoredObject};
use stadion_crds::{Fleet, GameServer, GameServerState};
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use super::api_status;
use super::events::EventPublisher;
use super::metrics::Metrics;
use super::recorder::KubeRecorder;
use super::store::store_error;
use crate::allocation::fleet_counts::{FleetAllocationCounts, FleetCountFlusher, FleetStatusStore, REMOTE_GATHER};
use crate::allocation::{AllocationExecutor, GameServerView};
use stadion_core::gameserver::gameserver_key;

/// Most release attempts (re-read and write) when other writers keep changing the server.
const RELEASE_ATTEMPTS: usize = 16;

/// How long our own GameServer writes are laid over the cache at most (the same bound as the
/// controllers' write overlay).
const OWN_WRITE_TTL: Duration = Duration::from_secs(60);

/// GameServers as the allocator sees them: the watch cache's shared handles with this
/// allocator's own writes laid over them until the cache shows them, and writes through the API.
///
/// Not the controllers' `KubeStore`: that one copies every cached object per list, which for a
/// thousand servers would cost more than the allocation's write.
pub struct CachedGameServers {
    client: Client,
    cache: Store<GameServer>,
    own_writes: Mutex<OwnWrites>,
}

/// namespace → name → (when written, the server as the API server returned it).
type OwnWrites = HashMap<String, HashMap<String, (Instant, Arc<GameServer>)>>;

fn version(gs: &GameServer) -> Option<u64> {
    gs.metadata.resource_version.as_deref().and_then(|v| v.parse().ok())
}

impl CachedGameServers {
    /// A view of `cache` writing through `client`.
    pub fn new(client: Client, cache: Store<GameServer>) -> Self {
        Self { client, cache, own_writes: Mutex::default() }
    }

    fn own_writes(&self) -> std::sync::MutexGuard<'_, OwnWrites> {
        // A few map operations per critical section: a panic elsewhere cannot corrupt it.
        self.own_writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn api(&self, namespace: &str) -> Api<GameServer> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn remember(&self, written: GameServer) -> Arc<GameServer> {
        let written = Arc::new(written);
        let (namespace, name) = (written.namespace().to_owned(), written.name().to_owned());
        self.own_writes().entry(namespace).or_default().insert(name, (Instant::now(), written.clone()));
        written
    }

    /// Forgets writes the cache has caught up with, and any too old to trust.
    fn prune(&self, own: &mut OwnWrites) {
        let now = Instant::now();
        for (namespace, names) in own.iter_mut() {
            names.retain(|name, (at, ours)| {
                now.duration_since(*at) < OWN_WRITE_TTL
                    && self
                        .cache
                        .get(&ObjectRef::new(name).within(namespace))
                        .is_none_or(|cached| version(&cached) < version(ours))
            });
        }
        own.retain(|_, names| !names.is_empty());
    }
}

/// `gs`, or our newer write of it.
fn newest(gs: Arc<GameServer>, own: &OwnWrites) -> Arc<GameServer> {
    match own.get(gs.namespace()).and_then(|names| names.get(gs.name())) {
        Some((_, ours)) if version(ours) > version(&gs) => ours.clone(),
        _ => gs,
    }
}

#[async_trait]
impl ObjectStore<GameServer> for CachedGameServers {
    async fn get(&self, namespace: &str, name: &str) -> StoreResult<Option<Arc<GameServer>>> {
        let cached = self.cache.get(&ObjectRef::new(name).within(namespace));
        let own = self.own_writes();
        Ok(match cached {
            Some(gs) => Some(newest(gs, &own)),
            None => own.get(namespace).and_then(|names| names.get(name)).map(|(_, gs)| gs.clone()),
        })
    }

    async fn list(&self, namespace: Option<&str>) -> StoreResult<Vec<Arc<GameServer>>> {
        let cached = self.cache.state();
        let mut own = self.own_writes();
        self.prune(&mut own);
        let in_scope = |gs: &GameServer| namespace.is_none_or(|ns| gs.namespace() == ns);
        let mut out: Vec<Arc<GameServer>> =
            cached.into_iter().filter(|gs| in_scope(gs)).map(|gs| newest(gs, &own)).collect();
        // Our creations the cache does not show yet.
        for (ns, names) in own.iter().filter(|(ns, _)| namespace.is_none_or(|wanted| wanted == ns.as_str())) {
            for (name, (_, ours)) in names {
                if self.cache.get(&ObjectRef::new(name).within(ns)).is_none() {
                    out.push(ours.clone());
                }
            }
        }
        Ok(out)
    }

    async fn create(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        let (namespace, name) = (object.namespace_or_default(), object.name_or_empty());
        let written = self
            .api(namespace)
            .create(&PostParams::default(), object)
            .await
            .map_err(|e| store_error::<GameServer>(e, namespace, name))?;
        Ok(self.remember(written))
    }

    async fn replace(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        let (namespace, name) = (object.namespace_or_default(), object.name_or_empty());
        let written = self
            .api(namespace)
            .replace(name, &PostParams::default(), object)
            .await
            .map_err(|e| store_error::<GameServer>(e, namespace, name))?;
        Ok(self.remember(written))
    }

    async fn replace_status(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        // GameServers have no status subresource: status is written with the object.
        self.replace(object).await
    }

    async fn delete(&self, namespace: &str, name: &str) -> StoreResult<()> {
        self.api(namespace)
            .delete(name, &Default::default())
            .await
            .map_err(|e| store_error::<GameServer>(e, namespace, name))?;
        if let Some(names) = self.own_writes().get_mut(namespace) {
            names.remove(name);
        }
        Ok(())
    }
}

/// Its `list` and `get` already hand out shared handles.
impl GameServerView for CachedGameServers {}

/// Fleets read from and written to the API server itself: a cached copy could only conflict.
struct ApiFleets {
    client: Client,
}

#[async_trait]
impl FleetStatusStore for ApiFleets {
    async fn read_fleet(&self, namespace: &str, name: &str) -> StoreResult<Option<Fleet>> {
        Api::<Fleet>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| store_error::<Fleet>(e, namespace, name))
    }

    async fn write_fleet_status(&self, fleet: &Fleet) -> StoreResult<()> {
        let (namespace, name) = (fleet.namespace_or_default(), fleet.name_or_empty());
        Api::<Fleet>::namespaced(self.client.clone(), namespace)
            .replace_status(name, &PostParams::default(), fleet)
            .await
            .map(drop)
            .map_err(|e| store_error::<Fleet>(e, namespace, name))
    }
}

/// Allocates GameServers through the API server from a watch cache.
#[derive(Clone)]
pub struct KubeAllocator {
    client: Client,
    executor: Arc<AllocationExecutor<CachedGameServers>>,
    cache: Store<GameServer>,
    capacity: Arc<watch::Sender<u64>>,
    fleet_counts: Arc<FleetAllocationCounts>,
    _flusher: Arc<FleetCountFlusher>,
}

impl KubeAllocator {
    /// An allocator reading `cache` and publishing capacity changes on `capacity`. Spawns the
    /// task that writes fleet allocation counts (call inside a tokio runtime); it stops when
    /// the last clone is dropped.
    pub fn new(client: Client, cache: Store<GameServer>, capacity: watch::Sender<u64>) -> Self {
        let fleet_counts = Arc::new(FleetAllocationCounts::default());
        let fleets = Arc::new(ApiFleets { client: client.clone() });
        let flusher = FleetCountFlusher::spawn(fleet_counts.clone(), fleets, REMOTE_GATHER);
        let store = CachedGameServers::new(client.clone(), cache.clone());
        let executor = AllocationExecutor::new(store, fleet_counts.clone(), rand::random());
        Self {
            client,
            executor: Arc::new(executor),
            cache,
            capacity: Arc::new(capacity),
            fleet_counts,
            _flusher: Arc::new(flusher),
        }
    }

    /// Records `agones_gameserver_allocations_duration_seconds` (with Agones' labels, which
    /// need the request) into `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        self.executor.set_metrics(metrics);
        self
    }

    /// Records a Normal `Allocated` Event on each allocated server through `recorder`, as
    /// Agones' allocator does (`kubectl describe gs` shows it).
    pub fn with_recorder(self, recorder: Arc<dyn Recorder>) -> Self {
        self.executor.set_recorder(recorder);
        self
    }

    /// An allocator with its own GameServer watch (all namespaces, or one) and Event recorder,
    /// and the future that drives that watch: spawn it. The future ends only if the watch
    /// stream does.
    pub fn watching(client: Client, namespace: Option<&str>) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let api: Api<GameServer> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let (reader, writer) = reflector::store();
        let (capacity, _) = watch::channel(0);
        let publisher = EventPublisher::new(client.clone(), None);
        let recorder = KubeRecorder::new(publisher, Arc::new(Metrics::controller()));
        let allocator = Self::new(client, reader, capacity).with_recorder(Arc::new(recorder));
        let events = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
        let driver = track_capacity(events, allocator.capacity.clone()).instrument(info_span!("allocator_watch"));
        (allocator, driver)
    }

    /// [`watching`](Self::watching) with the ambient configuration (KUBECONFIG, or the
    /// in-cluster ServiceAccount): what `stadion matchmaker` uses in a cluster.
    pub async fn from_environment(
        namespace: Option<&str>,
    ) -> Result<(Self, impl Future<Output = ()> + Send + 'static), super::Error> {
        let client = super::connect::client(None).await?;
        Ok(Self::watching(client, namespace))
    }

    /// The cache this allocator chooses from (waits with `wait_until_ready`).
    pub fn cache(&self) -> &Store<GameServer> {
        &self.cache
    }

    /// Allocations counted but not yet written to `fleet`'s status.
    pub fn pending_fleet_count(&self, namespace: &str, fleet: &str) -> i64 {
        self.fleet_counts.pending_for(namespace, fleet)
    }
}

#[async_trait]
impl Allocator for KubeAllocator {
    async fn allocate(&self, request: AdmittedAllocation) -> Result<AllocationOutcome, AllocateError> {
        self.executor.allocate(&request).await
    }

    fn capacity_changes(&self) -> watch::Receiver<u64> {
        self.capacity.subscribe()
    }

    async fn release(&self, namespace: &str, game_server_name: &str, allocation_id: &str) -> Result<(), AllocateError> {
        let api: Api<GameServer> = Api::namespaced(self.client.clone(), namespace);
        // A guarded replace like every GameServer write: re-read from the API server (the cache
        // may lag) and retry when another writer (the sidecar, the controller) got in between.
        for _ in 0..RELEASE_ATTEMPTS {
            let mut gs = match api.get_opt(game_server_name).await {
                Ok(Some(gs)) => gs,
                Ok(None) => return Ok(()),
                Err(error) => return Err(AllocateError::Backend(error.to_string())),
            };
            if !release_allocation(&mut gs, allocation_id) {
                info!(gameserver = %game_server_name, namespace, allocation_id, "not released: another allocation holds the server now");
                return Ok(());
            }
            match api.replace(game_server_name, &PostParams::default(), &gs).await {
                Ok(_) => {
                    info!(gameserver = %game_server_name, namespace, "released an allocation nobody was told about");
                    return Ok(());
                }
                Err(e) if matches!(api_status(&e), Some(409)) => continue,
                Err(e) if matches!(api_status(&e), Some(404)) => return Ok(()),
                Err(e) => return Err(AllocateError::Backend(e.to_string())),
            }
        }
        Err(AllocateError::Backend(format!("{namespace}/{game_server_name}: kept conflicting while releasing")))
    }
}

/// Drives the reflector stream and bumps `capacity` when [`wakes_waiting_matches`] says so (a
/// server turned Ready, or the initial list is in), so queued matches retry exactly when it may
/// help.
pub async fn track_capacity(
    events: impl Stream<Item = Result<watcher::Event<GameServer>, watcher::Error>>,
    capacity: Arc<watch::Sender<u64>>,
) {
    let mut states: HashMap<String, Option<GameServerState>> = HashMap::new();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(watcher::Event::Apply(gs) | watcher::Event::InitApply(gs)) => {
                let before = states.insert(gameserver_key(&gs), gs.state()).flatten();
                CapacityEvent::changed(before, &gs)
            }
            Ok(watcher::Event::Delete(gs)) => {
                states.remove(&gameserver_key(&gs));
                CapacityEvent::Removed
            }
            Ok(watcher::Event::InitDone) => CapacityEvent::Synced,
            Ok(watcher::Event::Init) => continue,
            Err(error) => {
                warn!(%error, "GameServer watch failed; retrying");
                continue;
            }
        };
        if wakes_waiting_matches(event) {
            capacity.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests;

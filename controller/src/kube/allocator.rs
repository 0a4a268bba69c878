//! The kube allocator: one compare-and-swap per allocation, no batch window.
//!
//! Candidates come from a watch cache of GameServers, ordered by the core's choice function. Each
//! candidate is written Allocated with the resourceVersion it was read at; a 409 means someone
//! else (another matchmaker replica, the SDK, the controller) changed it first, so we move on to
//! the next candidate rather than retry a stale copy. A server can therefore never be handed to
//! two matches, and replicas of the matchmaker need no coordination.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use stadion_core::allocator::{AllocateError, AllocationOutcome, Allocator};
use stadion_crds::allocation::GameServerAllocationStatus;
use stadion_crds::labels::FLEET;
use stadion_crds::validation::FieldErrors;
use stadion_crds::{Fleet, GameServer, GameServerAllocation, GameServerState};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span, warn};

use super::api_status;
use super::metrics::Metrics;
use stadion_core::allocation::{candidates, release_allocation};
use stadion_core::fleet::record_allocation;
use stadion_core::gameserver::gameserver_key;
use stadion_core::nodes::NodeLoad;

/// Most candidates tried per allocation: under heavy contention, answering "try again" quickly
/// beats walking a thousand stale entries.
pub const MAX_ATTEMPTS: usize = 16;

/// Allocates GameServers through the API server from a watch cache.
#[derive(Clone)]
pub struct KubeAllocator {
    client: Client,
    cache: Store<GameServer>,
    capacity: Arc<watch::Sender<u64>>,
    metrics: Option<Arc<Metrics>>,
    seed: Arc<AtomicU64>,
}

impl KubeAllocator {
    /// An allocator reading `cache` and publishing capacity changes on `capacity`.
    pub fn new(client: Client, cache: Store<GameServer>, capacity: watch::Sender<u64>) -> Self {
        Self { client, cache, capacity: Arc::new(capacity), metrics: None, seed: Arc::default() }
    }

    /// Records `agones_gameserver_allocations_duration_seconds` into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// An allocator with its own GameServer watch (all namespaces, or one), and the future that
    /// drives that watch: spawn it. The future ends only if the watch stream does.
    pub fn watching(client: Client, namespace: Option<&str>) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let api: Api<GameServer> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let (reader, writer) = reflector::store();
        let (capacity, _) = watch::channel(0);
        let allocator = Self::new(client, reader, capacity);
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

    /// Allocates like [`Allocator::allocate`], but answers as Agones' GameServerAllocation API
    /// does: when no server matches the status says `UnAllocated`, and when every candidate
    /// was taken by concurrent writers it says `Contention`; only an invalid request or an
    /// unreachable API server is an error.
    pub async fn allocate_outcome(&self, request: GameServerAllocation) -> Result<AllocationOutcome, AllocateError> {
        let started = Instant::now();
        let span = info_span!("allocate", namespace = request.metadata.namespace.as_deref().unwrap_or("default"));
        let result = self.try_allocate(request).instrument(span).await;
        if let Some(metrics) = &self.metrics {
            let (fleet, status) = match &result {
                Ok(AllocationOutcome::Allocated(status)) => (fleet_of(&self.cache, status), "Allocated"),
                Ok(AllocationOutcome::Contention) => (String::new(), "Contention"),
                Ok(AllocationOutcome::UnAllocated) => (String::new(), "UnAllocated"),
                Err(_) => (String::new(), "Error"),
            };
            metrics.observe_allocation(&fleet, status, started.elapsed());
        }
        result
    }

    async fn try_allocate(&self, mut request: GameServerAllocation) -> Result<AllocationOutcome, AllocateError> {
        request.apply_defaults();
        let errors = request.validate();
        if !errors.is_empty() {
            return Err(AllocateError::Invalid(errors));
        }
        let namespace = request.metadata.namespace.clone().unwrap_or_else(|| "default".to_owned());
        let all: Vec<Arc<GameServer>> = self.cache.state();
        let nodes = NodeLoad::from_gameservers(all.iter().map(AsRef::as_ref));
        // Shared handles from the cache: choosing copies nothing.
        let servers: Vec<Arc<GameServer>> = all.iter().filter(|gs| gs.namespace() == namespace).cloned().collect();
        let seed = self.seed.fetch_add(1, Ordering::Relaxed);
        let chosen = candidates(&request, &servers, &nodes, seed).map_err(|e| {
            let mut errors = FieldErrors::default();
            errors.push("spec.selectors", e.to_string());
            AllocateError::Invalid(errors)
        })?;
        if chosen.is_empty() {
            return Ok(AllocationOutcome::UnAllocated);
        }
        let api: Api<GameServer> = Api::namespaced(self.client.clone(), &namespace);
        for candidate in chosen.into_iter().take(MAX_ATTEMPTS) {
            let attempt = candidate.allocate(&request.spec, Timestamp::now());
            let name = candidate.gameserver.name();
            match api.replace(name, &PostParams::default(), &attempt.gameserver).await {
                Ok(_) => {
                    for warning in &attempt.warnings {
                        warn!(gameserver = %name, warning, "allocation action not applied");
                    }
                    info!(gameserver = %name, "allocated");
                    if let Some(fleet) = candidate.gameserver.metadata.labels.as_ref().and_then(|l| l.get(FLEET)) {
                        count_allocation(&self.client, &namespace, fleet).await;
                    }
                    return Ok(AllocationOutcome::Allocated(attempt.status));
                }
                // Changed or deleted since we cached it: someone else got there first.
                Err(e) if matches!(api_status(&e), Some(409 | 404)) => {
                    debug!(gameserver = %name, "lost the race for this server, trying the next");
                }
                Err(e) => return Err(AllocateError::Backend(e.to_string())),
            }
        }
        Ok(AllocationOutcome::Contention)
    }
}

#[async_trait]
impl Allocator for KubeAllocator {
    async fn allocate(&self, request: GameServerAllocation) -> Result<AllocationOutcome, AllocateError> {
        self.allocate_outcome(request).await
    }

    fn capacity_changes(&self) -> watch::Receiver<u64> {
        self.capacity.subscribe()
    }

    async fn release(&self, namespace: &str, game_server_name: &str) -> Result<(), AllocateError> {
        let api: Api<GameServer> = Api::namespaced(self.client.clone(), namespace);
        // A guarded replace like every GameServer write: re-read and retry when another writer
        // (the sidecar, the controller) got in between.
        for _ in 0..MAX_ATTEMPTS {
            let mut gs = match api.get_opt(game_server_name).await {
                Ok(Some(gs)) => gs,
                Ok(None) => return Ok(()),
                Err(error) => return Err(AllocateError::Backend(error.to_string())),
            };
            if !release_allocation(&mut gs) {
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

/// Adds one to the fleet's `status.allocations` with a resourceVersion-guarded status replace
/// (the fleet controller never writes that field, so nothing overwrites the count). Best
/// effort: the allocation has happened whether or not it is counted.
async fn count_allocation(client: &Client, namespace: &str, fleet: &str) {
    let fleets: Api<Fleet> = Api::namespaced(client.clone(), namespace);
    for _ in 0..5 {
        let mut current = match fleets.get_opt(fleet).await {
            Ok(Some(current)) => current,
            Ok(None) => return,
            Err(error) => {
                warn!(%error, fleet, "could not read the fleet to count an allocation");
                return;
            }
        };
        record_allocation(current.status.get_or_insert_with(Default::default));
        match fleets.replace_status(fleet, &PostParams::default(), &current).await {
            Ok(_) => return,
            Err(e) if api_status(&e) == Some(409) => continue,
            Err(error) => {
                warn!(%error, fleet, "could not count an allocation on the fleet");
                return;
            }
        }
    }
}

fn fleet_of(cache: &Store<GameServer>, status: &GameServerAllocationStatus) -> String {
    cache
        .state()
        .iter()
        .find(|gs| gs.name() == status.game_server_name)
        .and_then(|gs| gs.metadata.labels.as_ref()?.get(FLEET).cloned())
        .unwrap_or_default()
}

/// Drives the reflector stream and bumps `capacity` whenever a server becomes Ready (and once
/// when the initial list is in), so queued matches retry exactly when it may help.
pub async fn track_capacity(
    events: impl Stream<Item = Result<watcher::Event<GameServer>, watcher::Error>>,
    capacity: Arc<watch::Sender<u64>>,
) {
    let mut ready: HashMap<String, bool> = HashMap::new();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let bump = match event {
            Ok(watcher::Event::Apply(gs) | watcher::Event::InitApply(gs)) => {
                let is_ready = gs.state() == Some(GameServerState::Ready);
                let was_ready = ready.insert(gameserver_key(&gs), is_ready).unwrap_or(false);
                is_ready && !was_ready
            }
            Ok(watcher::Event::Delete(gs)) => {
                ready.remove(&gameserver_key(&gs));
                false
            }
            Ok(watcher::Event::InitDone) => true,
            Ok(watcher::Event::Init) => false,
            Err(error) => {
                warn!(%error, "GameServer watch failed; retrying");
                false
            }
        };
        if bump {
            capacity.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests;

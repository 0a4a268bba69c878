//! Allocation in the local runtime: the shared executor ([`crate::allocation`]) over the
//! embedded store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use stadion_core::allocation::release_allocation;
use stadion_core::allocator::{AdmittedAllocation, AllocateError, AllocationOutcome, Allocator};
use stadion_core::store::{ObjectStore, StoreResult};
use stadion_crds::{Fleet, GameServer};
use tokio::sync::watch;

use super::recorder::LocalRecorder;
use super::store::{Store, StoreError};
use crate::allocation::fleet_counts::{FleetAllocationCounts, FleetCountFlusher, FleetStatusStore};
use crate::allocation::{AllocationExecutor, GameServerView};
use crate::allocation_api::SyncedView;
use crate::metrics::Metrics;

/// The embedded store hands out shared handles already: the seam's reads are what allocation
/// needs.
impl GameServerView for Store {}

#[async_trait]
impl FleetStatusStore for Store {
    async fn read_fleet(&self, namespace: &str, name: &str) -> StoreResult<Option<Fleet>> {
        Ok(self.api::<Fleet>().try_get(namespace, name).map(|fleet| (*fleet).clone()))
    }

    async fn write_fleet_status(&self, fleet: &Fleet) -> StoreResult<()> {
        ObjectStore::<Fleet>::replace_status(self, fleet).await.map(drop)
    }
}

/// The embedded store is the truth itself: nothing to wait for.
#[async_trait]
impl SyncedView for LocalAllocator {
    async fn wait_until_synced(&self) -> bool {
        true
    }
}

/// The local runtime's [`Allocator`]: no server is ever handed out twice, because the only way
/// to allocate one is a write guarded by the resourceVersion it was chosen at.
#[derive(Clone, Debug)]
pub struct LocalAllocator {
    executor: Arc<AllocationExecutor<Store>>,
    capacity: watch::Sender<u64>,
    fleet_counts: Arc<FleetAllocationCounts>,
    metrics: Arc<Metrics>,
    _flusher: Arc<FleetCountFlusher>,
}

impl LocalAllocator {
    /// An allocator over `store`; `capacity` is bumped by the runtime when a server turns Ready.
    /// Spawns the task that writes fleet allocation counts (call inside a tokio runtime); it
    /// stops when the last clone is dropped.
    pub fn new(store: Store, capacity: watch::Sender<u64>) -> Self {
        let fleet_counts = Arc::new(FleetAllocationCounts::default());
        let flusher = FleetCountFlusher::spawn(fleet_counts.clone(), Arc::new(store.clone()), Duration::ZERO);
        let executor = AllocationExecutor::new(store, fleet_counts.clone(), rand::random());
        let metrics = Arc::new(Metrics::new());
        executor.set_metrics(metrics.clone());
        Self { executor: Arc::new(executor), capacity, fleet_counts, metrics, _flusher: Arc::new(flusher) }
    }

    /// Records an `Allocated` Event on each allocated server into `recorder` (the runtime's,
    /// which the admin API and the dashboard show).
    pub fn with_recorder(self, recorder: LocalRecorder) -> Self {
        self.executor.set_recorder(Arc::new(recorder));
        self
    }

    /// The metrics allocations are recorded into (what `stadion up` serves at `/metrics`).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Allocations counted but not yet written to `fleet`'s status.
    pub fn pending_fleet_count(&self, namespace: &str, fleet: &str) -> i64 {
        self.fleet_counts.pending_for(namespace, fleet)
    }
}

#[async_trait]
impl Allocator for LocalAllocator {
    async fn allocate(&self, request: AdmittedAllocation) -> Result<AllocationOutcome, AllocateError> {
        self.executor.allocate(&request).await
    }

    fn capacity_changes(&self) -> watch::Receiver<u64> {
        self.capacity.subscribe()
    }

    async fn release(&self, namespace: &str, game_server_name: &str, allocation_id: &str) -> Result<(), AllocateError> {
        let store = self.executor.store();
        let mut released = false;
        // The identity check runs inside the store's compare-and-swap, so an allocation that
        // took the server after ours always wins.
        let result = store.api::<GameServer>().update_with::<StoreError>(namespace, game_server_name, |gs| {
            released = release_allocation(gs, allocation_id);
            Ok(())
        });
        match result {
            Ok(gs) if released => {
                tracing::info!(gameserver = %game_server_name, allocation_id, state = ?gs.state(), "released an allocation nobody was told about");
                Ok(())
            }
            Ok(_) => {
                tracing::info!(gameserver = %game_server_name, allocation_id, "not released: another allocation holds the server now");
                Ok(())
            }
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(AllocateError::Backend(error.to_string())),
        }
    }
}

//! Allocation in the local runtime: choose with the core, commit with one compare-and-swap.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use stadion_core::allocator::{AllocateError, AllocationOutcome, Allocator};
use stadion_crds::{FieldError, FieldErrors, Fleet, GameServer, GameServerAllocation, GameServerState, labels};
use tokio::sync::watch;

use super::store::{Selector, Store, StoreError};
use stadion_core::allocation::{apply_allocation, candidates, release_allocation, selector_matches};
use stadion_core::fleet::record_allocation;
use stadion_core::nodes::NodeLoad;

/// Fresh re-reads allowed per candidate when its write conflicts but it still matches (another
/// writer touched it, e.g. an SDK SetLabel, without taking it).
const RETRIES_PER_CANDIDATE: usize = 3;

/// The local runtime's [`Allocator`]: no server is ever handed out twice, because the only way
/// to allocate one is a write guarded by the resourceVersion it was chosen at.
#[derive(Clone, Debug)]
pub struct LocalAllocator {
    store: Store,
    capacity: watch::Sender<u64>,
    seed: Arc<AtomicU64>,
}

impl LocalAllocator {
    /// An allocator over `store`; `capacity` is bumped by the runtime when a server turns Ready.
    pub fn new(store: Store, capacity: watch::Sender<u64>) -> Self {
        Self { store, capacity, seed: Arc::new(AtomicU64::new(rand::random())) }
    }

    fn allocate_now(&self, mut request: GameServerAllocation) -> Result<AllocationOutcome, AllocateError> {
        request.apply_defaults();
        request.validate().into_result().map_err(AllocateError::Invalid)?;
        let namespace = request.metadata.namespace.clone().unwrap_or_else(|| "default".to_owned());
        let api = self.store.api::<GameServer>();
        // Only Ready and Allocated servers can ever match a selector. The store hands out shared
        // handles: choosing copies nothing; only the candidate being written is cloned.
        let servers: Vec<Arc<GameServer>> = api
            .list(Some(&namespace), &Selector::everything())
            .into_iter()
            .filter(|gs| gs.metadata.deletion_timestamp.is_none())
            .filter(|gs| matches!(gs.state(), Some(GameServerState::Ready | GameServerState::Allocated)))
            .collect();
        let nodes = NodeLoad::from_gameservers(servers.iter().map(AsRef::as_ref));
        // Distributed ordering shuffles by seed; a new seed per call spreads concurrent callers.
        let seed = self.seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        let ordered = candidates(&request, &servers, &nodes, seed).map_err(|error| {
            AllocateError::Invalid(FieldErrors(vec![FieldError::new("spec.selectors", error.to_string())]))
        })?;
        let selectors = request.effective_selectors();
        let now = jiff::Timestamp::now();
        for candidate in ordered {
            let mut current = candidate.gameserver.clone();
            for _ in 0..RETRIES_PER_CANDIDATE {
                // `current` carries the resourceVersion it was read at: the write is the CAS.
                let mut allocated = current.clone();
                let (status, warnings) = apply_allocation(&mut allocated, &request.spec, now);
                match api.update(allocated) {
                    Ok(written) => {
                        for warning in warnings {
                            tracing::warn!(gameserver = written.name(), %warning, "allocation action not applied");
                        }
                        tracing::info!(gameserver = written.name(), namespace = %namespace, "allocated");
                        self.count_on_fleet(&written);
                        return Ok(AllocationOutcome::Allocated(status));
                    }
                    Err(error) if error.is_conflict() => {
                        // Someone wrote first. If the server is still free, try again from a
                        // fresh copy; if it was taken, move on to the next candidate.
                        let Some(fresh) = api.try_get(current.namespace(), current.name()) else { break };
                        let selector = selectors.get(candidate.selector_index);
                        let still_free = fresh.metadata.deletion_timestamp.is_none()
                            && selector.is_some_and(|s| selector_matches(s, &fresh).unwrap_or(false));
                        if !still_free {
                            break;
                        }
                        current = (*fresh).clone();
                    }
                    Err(error) if error.is_not_found() => break,
                    Err(error) => return Err(AllocateError::Backend(error.to_string())),
                }
            }
        }
        Ok(AllocationOutcome::UnAllocated)
    }
}

impl LocalAllocator {
    /// Bumps `status.allocations` of the server's fleet (a running total, as in Agones).
    fn count_on_fleet(&self, gs: &GameServer) {
        let Some(fleet) = gs.metadata.labels.as_ref().and_then(|l| l.get(labels::FLEET)) else { return };
        let counted = self.store.api::<Fleet>().update_with::<StoreError>(gs.namespace(), fleet, |fleet| {
            record_allocation(fleet.status.get_or_insert_with(Default::default));
            Ok(())
        });
        if let Err(error) = counted {
            tracing::debug!(fleet = %fleet, %error, "cannot count allocation on fleet");
        }
    }
}

#[async_trait]
impl Allocator for LocalAllocator {
    async fn allocate(&self, request: GameServerAllocation) -> Result<AllocationOutcome, AllocateError> {
        self.allocate_now(request)
    }

    fn capacity_changes(&self) -> watch::Receiver<u64> {
        self.capacity.subscribe()
    }

    async fn release(&self, namespace: &str, game_server_name: &str) -> Result<(), AllocateError> {
        let released = self.store.api::<GameServer>().update_with::<StoreError>(namespace, game_server_name, |gs| {
            release_allocation(gs);
            Ok(())
        });
        match released {
            Ok(gs) => {
                tracing::info!(gameserver = %game_server_name, state = ?gs.state(), "released an allocation nobody was told about");
                Ok(())
            }
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(AllocateError::Backend(error.to_string())),
        }
    }
}

//! The allocation compare-and-swap, written once for both runtimes.
//!
//! [`AllocationExecutor::allocate`] takes an [`AdmittedAllocation`], chooses candidates with the
//! core ([`candidates`]) from one snapshot of the servers, and commits the first it can with a
//! write guarded by the resourceVersion it was chosen at. That write is the only request on the
//! path: the fleet's running count is kept off it ([`fleet_counts`]). The local runtime gives it
//! the embedded store, the kube runtime its API-server store; both get the same policy:
//!
//! - Candidates another allocation of this process is writing are skipped for now, versions
//!   this process allocated are skipped for good, and versions whose write conflicted are
//!   re-read instead of written ([`claims`]): concurrent requests spread over different servers
//!   instead of racing for the first one.
//! - A conflict caused by some other writer (an SDK label, the controller) re-reads the
//!   candidate; if it still matches, it is tried again from the fresh copy, at most
//!   [`RETRIES_PER_CANDIDATE`] times.
//! - At most [`MAX_ATTEMPTS`] writes per request: under heavy contention, answering "try again"
//!   quickly beats walking a thousand stale entries.
//! - [`AllocationOutcome::UnAllocated`] when nothing matched (or every match was already taken
//!   by this process), [`AllocationOutcome::Contention`] when servers matched but writers took
//!   every one tried, [`AllocateError::Backend`] for any other store failure.

pub mod claims;
pub mod fleet_counts;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use stadion_core::NodeLoad;
use stadion_core::allocation::{AllocationCandidate, candidates, selector_matches};
use stadion_core::allocator::{AdmittedAllocation, AllocateError, AllocationOutcome};
use stadion_core::store::{EventSubject, EventType, ObjectStore, Recorder, StoreError, StoreResult, reason};
use stadion_crds::allocation::{GameServerAllocation, GameServerSelector};
use stadion_crds::validation::FieldErrors;
use stadion_crds::{GameServer, labels};
use tracing::{Instrument, debug, info, info_span, warn};

use self::claims::{Claim, ClaimSet};
use self::fleet_counts::FleetAllocationCounts;

/// Most compare-and-swap writes one allocation makes.
pub const MAX_ATTEMPTS: usize = 16;

/// Fresh re-reads allowed per candidate whose write conflicted but which still matches (another
/// writer touched it, e.g. an SDK SetLabel, without taking it).
pub const RETRIES_PER_CANDIDATE: usize = 3;

/// How long a request waits for another in-process write to a server it skipped as busy,
/// before it looks again. A write takes milliseconds; this only bounds a stuck one.
const BUSY_WAIT: Duration = Duration::from_millis(500);

/// What the executor reads GameServers from, beyond the store seam: the defaults use the seam;
/// a runtime whose `list` copies objects overrides them to hand out shared handles.
#[async_trait]
pub trait GameServerView: ObjectStore<GameServer> {
    /// Every GameServer in every namespace: node load for Packed and Distributed is about the
    /// node, which servers of any namespace share.
    async fn snapshot(&self) -> StoreResult<Vec<Arc<GameServer>>> {
        self.list(None).await
    }

    /// The newest copy of one server this process can see, to re-check a candidate whose write
    /// conflicted.
    async fn latest(&self, namespace: &str, name: &str) -> StoreResult<Option<Arc<GameServer>>> {
        self.get(namespace, name).await
    }
}

/// Where allocation durations and attempts go: `agones_gameserver_allocations_duration_seconds`
/// and `agones_gameserver_allocations_retry_total`, labelled from the request and its answer
/// (the controller's [`Metrics`](crate::metrics::Metrics)).
pub trait AllocationMetrics: Send + Sync {
    /// One allocation of `request` that ended with `result` after `elapsed`, having tried
    /// `attempts` compare-and-swap writes (0 when no server matched or it failed before one).
    fn observe_allocation(
        &self,
        request: &GameServerAllocation,
        result: &Result<AllocationOutcome, AllocateError>,
        elapsed: Duration,
        attempts: usize,
    );
}

/// The allocation loop over one store, with this process's claims and fleet counts.
pub struct AllocationExecutor<S> {
    store: S,
    claims: ClaimSet,
    fleet_counts: Arc<FleetAllocationCounts>,
    metrics: OnceLock<Arc<dyn AllocationMetrics>>,
    recorder: OnceLock<Arc<dyn Recorder>>,
    seed: AtomicU64,
}

impl<S> std::fmt::Debug for AllocationExecutor<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllocationExecutor").field("claims", &self.claims).finish_non_exhaustive()
    }
}

/// A candidate in the order it will be tried: as chosen (borrowed from the snapshot) or as
/// re-read after a conflict.
struct Pending<'a> {
    gameserver: Cow<'a, GameServer>,
    selector_index: usize,
    rereads: usize,
}

/// How one allocation ended, before it is reported.
struct Finished {
    outcome: AllocationOutcome,
    attempts: usize,
}

impl<S: GameServerView> AllocationExecutor<S> {
    /// An executor over `store`, counting allocations into `fleet_counts` (whose flusher the
    /// runtime runs). `seed` starts the Distributed shuffle.
    pub fn new(store: S, fleet_counts: Arc<FleetAllocationCounts>, seed: u64) -> Self {
        Self {
            store,
            claims: ClaimSet::default(),
            fleet_counts,
            metrics: OnceLock::new(),
            recorder: OnceLock::new(),
            seed: AtomicU64::new(seed),
        }
    }

    /// Records a Normal `Allocated` Event on every server it allocates, as Agones' allocator
    /// does (set once; later calls are ignored). The Event is sent beside the answer, never
    /// before it.
    pub fn set_recorder(&self, recorder: Arc<dyn Recorder>) {
        if self.recorder.set(recorder).is_err() {
            warn!("the allocation recorder was already set; keeping the first");
        }
    }

    /// Records every allocation's duration into `metrics` from now on (set once; later calls
    /// are ignored).
    pub fn set_metrics(&self, metrics: Arc<dyn AllocationMetrics>) {
        if self.metrics.set(metrics).is_err() {
            warn!("allocation metrics were already set; keeping the first");
        }
    }

    /// The store it writes.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// This process's claims.
    pub fn claims(&self) -> &ClaimSet {
        &self.claims
    }

    /// Allocates one server for `request`, records the duration metric and logs the answer.
    pub async fn allocate(&self, request: &AdmittedAllocation) -> Result<AllocationOutcome, AllocateError> {
        let started = Instant::now();
        let span = info_span!("allocate", namespace = request.namespace());
        let result = self.try_allocate(request).instrument(span.clone()).await;
        let _entered = span.enter();
        let tried = result.as_ref().map_or(0, |finished| finished.attempts);
        let result = match result {
            Ok(Finished { outcome, attempts }) => {
                match &outcome {
                    AllocationOutcome::Allocated(status) => {
                        info!(gameserver = %status.game_server_name, attempts, "allocated");
                    }
                    AllocationOutcome::UnAllocated => debug!("no server matches"),
                    AllocationOutcome::Contention => {
                        warn!(attempts, "servers matched, but concurrent writers took every one tried: Contention");
                    }
                }
                Ok(outcome)
            }
            Err(error) => {
                warn!(%error, kind = error.kind(), "allocation failed");
                Err(error)
            }
        };
        if let Some(metrics) = self.metrics.get() {
            metrics.observe_allocation(request.request(), &result, started.elapsed(), tried);
        }
        result
    }

    async fn try_allocate(&self, admitted: &AdmittedAllocation) -> Result<Finished, AllocateError> {
        let namespace = admitted.namespace();
        let request = admitted.request();
        // Subscribed before the first claim, so a release while we look is never missed.
        let mut releases = self.claims.releases();
        let all = self.store.snapshot().await.map_err(backend)?;
        let nodes = NodeLoad::from_gameservers(all.iter().map(AsRef::as_ref));
        let servers: Vec<Arc<GameServer>> = all.into_iter().filter(|gs| gs.namespace() == namespace).collect();
        self.claims.forget_caught_up(namespace, &servers);
        // Distributed ordering shuffles by seed; a new seed per call spreads concurrent callers.
        let seed = self.seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        let chosen = candidates(request, &servers, &nodes, seed).map_err(|error| {
            let mut errors = FieldErrors::default();
            errors.push("spec.selectors", error.to_string());
            AllocateError::Invalid(errors)
        })?;
        let selectors = request.effective_selectors();
        let mut queue: VecDeque<Pending<'_>> = chosen
            .into_iter()
            .map(|c| Pending { gameserver: Cow::Borrowed(c.gameserver), selector_index: c.selector_index, rereads: 0 })
            .collect();
        let mut busy: Vec<Pending<'_>> = Vec::new();
        let (mut attempts, mut waits, mut lost) = (0, 0, false);
        loop {
            let Some(candidate) = queue.pop_front() else {
                if busy.is_empty() || waits >= MAX_ATTEMPTS {
                    break;
                }
                // Only servers other requests of this process are writing are left: their
                // writes end in milliseconds, then each is either taken (skipped) or free again.
                waits += 1;
                let _ = tokio::time::timeout(BUSY_WAIT, releases.changed()).await;
                releases.borrow_and_update();
                queue.extend(busy.drain(..));
                continue;
            };
            let mut claim = match self.claims.claim(&candidate.gameserver) {
                Claim::Won(claim) => claim,
                Claim::Busy => {
                    busy.push(candidate);
                    continue;
                }
                // Allocated by this process since the snapshot was taken.
                Claim::Taken if !reallocates(&selectors, candidate.selector_index) => continue,
                // Known stale from a write that conflicted, or taken by this process for a
                // selector that allocates Allocated servers again (backfill into a running
                // match): look at the server as it is now.
                Claim::Taken | Claim::Stale => {
                    match self.reread(&candidate, &selectors).await? {
                        Some(fresh) => queue.push_front(fresh),
                        None => lost = true,
                    }
                    continue;
                }
            };
            attempts += 1;
            let attempt =
                AllocationCandidate { gameserver: &candidate.gameserver, selector_index: candidate.selector_index }
                    .allocate(&request.spec, jiff::Timestamp::now());
            match self.store.replace(&attempt.gameserver).await {
                Ok(written) => {
                    claim.won();
                    for warning in &attempt.warnings {
                        warn!(gameserver = written.name(), warning, "allocation action not applied");
                    }
                    if let Some(recorder) = self.recorder.get() {
                        let (recorder, subject) = (recorder.clone(), EventSubject::of(&*written));
                        tokio::spawn(async move {
                            let note = reason::ALLOCATED.to_owned();
                            recorder.event(&subject, EventType::Normal, reason::ALLOCATED, note).await;
                        });
                    }
                    let fleet = written.metadata.labels.as_ref().and_then(|l| l.get(labels::FLEET)).cloned();
                    if let Some(fleet) = &fleet {
                        self.fleet_counts.record(namespace, fleet);
                    }
                    return Ok(Finished { outcome: AllocationOutcome::Allocated(attempt.status), attempts });
                }
                Err(error) if error.is_conflict() || error.is_not_found() => {
                    // The version we read is stale either way.
                    claim.stale();
                    drop(claim);
                    let name = candidate.gameserver.name();
                    debug!(gameserver = name, error = error.kind(), "lost the write for this server");
                    let fresh = if error.is_conflict() { self.reread(&candidate, &selectors).await? } else { None };
                    match fresh {
                        Some(fresh) => queue.push_front(fresh),
                        None => lost = true,
                    }
                }
                Err(error) => return Err(backend(error)),
            }
            if attempts >= MAX_ATTEMPTS {
                lost = true;
                break;
            }
        }
        // Servers still busy at the end matched, and other writers hold them.
        let outcome =
            if lost || !busy.is_empty() { AllocationOutcome::Contention } else { AllocationOutcome::UnAllocated };
        Ok(Finished { outcome, attempts })
    }

    /// After a conflict: the candidate again from a fresh copy, if someone else changed it
    /// without taking it and it has retries left.
    async fn reread<'a>(
        &self,
        candidate: &Pending<'_>,
        selectors: &[GameServerSelector],
    ) -> Result<Option<Pending<'a>>, AllocateError> {
        if candidate.rereads >= RETRIES_PER_CANDIDATE {
            return Ok(None);
        }
        let gs = &candidate.gameserver;
        let Some(fresh) = self.store.latest(gs.namespace(), gs.name()).await.map_err(backend)? else {
            return Ok(None);
        };
        // The same version means this view has not seen the winning write yet (a watch cache
        // lagging): trying it again could only conflict again.
        if fresh.metadata.resource_version == gs.metadata.resource_version {
            return Ok(None);
        }
        let still_matches = selectors
            .get(candidate.selector_index)
            .is_some_and(|selector| selector_matches(selector, &fresh).unwrap_or(false));
        Ok(still_matches.then(|| Pending {
            gameserver: Cow::Owned((*fresh).clone()),
            selector_index: candidate.selector_index,
            rereads: candidate.rereads + 1,
        }))
    }
}

/// Whether selector `index` picks servers already Allocated, which one server can satisfy
/// again after each allocation (a running match taking late joiners).
fn reallocates(selectors: &[GameServerSelector], index: usize) -> bool {
    selectors.get(index).is_some_and(|s| s.game_server_state == Some(stadion_crds::GameServerState::Allocated))
}

fn backend(error: StoreError) -> AllocateError {
    AllocateError::Backend(error.to_string())
}

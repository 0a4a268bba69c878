//! The executor over the embedded store, with a wrapper that counts (and can provoke) write
//! conflicts.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use stadion_core::allocator::{AdmittedAllocation, AllocationOutcome, admit_allocation};
use stadion_core::store::{ObjectStore, StoreError, StoreResult, StoredObject};
use stadion_core::testing::GameServerBuilder;
use stadion_crds::allocation::GameServerAllocationSpec;
use stadion_crds::common::SchedulingStrategy;
use stadion_crds::fleet::FleetStatus;
use stadion_crds::{Fleet, GameServer, GameServerAllocation, GameServerState};

use super::fleet_counts::{FleetAllocationCounts, FleetCountFlusher, FleetStatusStore, REMOTE_GATHER};
use super::{AllocationExecutor, AllocationMetrics, GameServerView, MAX_ATTEMPTS};
use crate::local::store::{Store, StoreError as LocalError};

/// Runs before each GameServer write with the write's number (from 0): may write the server
/// itself (a foreign writer) or fail the write.
type Hook = Box<dyn Fn(&Store, &GameServer, usize) -> Option<StoreError> + Send + Sync>;

/// The embedded store, counting writes and conflicts; each write waits `delay` first, as a
/// request to an API server would, so concurrent allocations overlap.
struct Counting {
    inner: Store,
    delay: Duration,
    hook: Option<Hook>,
    writes: AtomicUsize,
    conflicts: AtomicUsize,
}

impl Counting {
    fn new(inner: Store, delay: Duration) -> Self {
        Self { inner, delay, hook: None, writes: AtomicUsize::new(0), conflicts: AtomicUsize::new(0) }
    }

    fn with_hook(
        mut self,
        hook: impl Fn(&Store, &GameServer, usize) -> Option<StoreError> + Send + Sync + 'static,
    ) -> Self {
        self.hook = Some(Box::new(hook));
        self
    }
}

#[async_trait]
impl ObjectStore<GameServer> for Counting {
    async fn get(&self, namespace: &str, name: &str) -> StoreResult<Option<Arc<GameServer>>> {
        self.inner.get(namespace, name).await
    }

    async fn list(&self, namespace: Option<&str>) -> StoreResult<Vec<Arc<GameServer>>> {
        self.inner.list(namespace).await
    }

    async fn create(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        self.inner.create(object).await
    }

    async fn replace(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if let Some(error) = self.hook.as_ref().and_then(|hook| hook(&self.inner, object, n)) {
            return Err(error);
        }
        let result = self.inner.replace(object).await;
        if result.as_ref().is_err_and(StoreError::is_conflict) {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    async fn replace_status(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        self.inner.replace_status(object).await
    }

    async fn delete(&self, namespace: &str, name: &str) -> StoreResult<()> {
        ObjectStore::<GameServer>::delete(&self.inner, namespace, name).await
    }
}

impl GameServerView for Counting {}

fn store_with_ready(n: usize, fleet: Option<&str>) -> Store {
    let store = Store::new();
    for i in 0..n {
        // Two nodes, so Packed has an order to follow (the fuller node first).
        let mut gs = GameServerBuilder::new(&format!("gs-{i:02}")).node(if i % 2 == 0 { "node-a" } else { "node-b" });
        if let Some(fleet) = fleet {
            gs = gs.in_set(&format!("{fleet}-set"), fleet);
        }
        store.api::<GameServer>().create(gs.build()).expect("server created");
    }
    store
}

fn packed() -> AdmittedAllocation {
    let spec = GameServerAllocationSpec { scheduling: Some(SchedulingStrategy::Packed), ..Default::default() };
    admit_allocation(GameServerAllocation::new(spec)).expect("a valid request")
}

fn executor<S: GameServerView>(store: S) -> AllocationExecutor<S> {
    AllocationExecutor::new(store, Arc::new(FleetAllocationCounts::default()), 7)
}

/// A foreign writer changes the server (a label, as an SDK SetLabel would) just before our write.
/// The label value changes every time, so every relabel is a real write.
fn relabel(store: &Store, gs: &GameServer) {
    store
        .api::<GameServer>()
        .update_with::<LocalError>(gs.namespace(), gs.name(), |stored| {
            let labels = stored.metadata.labels.get_or_insert_default();
            let touched = labels.get("touched").map_or(0, |n| n.parse::<u32>().unwrap_or(0) + 1);
            labels.insert("touched".into(), touched.to_string());
            Ok(())
        })
        .expect("foreign write");
}

/// A foreign allocator takes the server just before our write.
fn take(store: &Store, gs: &GameServer) {
    store
        .api::<GameServer>()
        .update_with::<LocalError>(gs.namespace(), gs.name(), |stored| {
            stored.status.get_or_insert_default().state = Some(GameServerState::Allocated);
            Ok(())
        })
        .expect("foreign write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_claims_spread_sixteen_packed_allocations_with_zero_conflicts() {
    let executor = Arc::new(executor(Counting::new(store_with_ready(16, None), Duration::from_millis(20))));
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (executor, barrier) = (executor.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                executor.allocate(&packed()).await
            })
        })
        .collect();
    let mut won = HashSet::new();
    for task in tasks {
        let status = task.await.expect("task").expect("answers").allocated().expect("every request gets a server");
        assert!(won.insert(status.game_server_name.clone()), "{} handed out twice", status.game_server_name);
    }
    assert_eq!(won.len(), 16);
    let store = executor.store();
    assert_eq!(store.conflicts.load(Ordering::SeqCst), 0, "no write was spent on a conflict");
    assert_eq!(store.writes.load(Ordering::SeqCst), 16, "one write per allocation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_shared_claims_the_same_packed_race_conflicts() {
    // The control for the test above: sixteen executors (no shared claims) over one store all
    // rank the same server first.
    let store = Arc::new(Counting::new(store_with_ready(16, None), Duration::from_millis(20)));
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let executor = executor(ArcStore(store));
                barrier.wait().await;
                executor.allocate(&packed()).await
            })
        })
        .collect();
    let mut won = HashSet::new();
    for task in tasks {
        if let AllocationOutcome::Allocated(status) = task.await.expect("task").expect("never an error") {
            assert!(won.insert(status.game_server_name.clone()), "{} handed out twice", status.game_server_name);
        }
    }
    assert!(store.conflicts.load(Ordering::SeqCst) > 0, "uncoordinated Packed requests collide");
}

/// A shared [`Counting`] store for executors that do not share claims.
struct ArcStore(Arc<Counting>);

#[async_trait]
impl ObjectStore<GameServer> for ArcStore {
    async fn get(&self, namespace: &str, name: &str) -> StoreResult<Option<Arc<GameServer>>> {
        self.0.get(namespace, name).await
    }

    async fn list(&self, namespace: Option<&str>) -> StoreResult<Vec<Arc<GameServer>>> {
        self.0.list(namespace).await
    }

    async fn create(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        self.0.create(object).await
    }

    async fn replace(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        self.0.replace(object).await
    }

    async fn replace_status(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        self.0.replace_status(object).await
    }

    async fn delete(&self, namespace: &str, name: &str) -> StoreResult<()> {
        self.0.delete(namespace, name).await
    }
}

impl GameServerView for ArcStore {}

#[tokio::test]
async fn a_conflict_from_an_unrelated_write_retries_the_same_server_from_a_fresh_copy() {
    let store = Counting::new(store_with_ready(2, None), Duration::ZERO).with_hook(|store, gs, n| {
        if n == 0 {
            relabel(store, gs);
        }
        None
    });
    let executor = executor(store);
    let first = executor.allocate(&packed()).await.expect("answers").allocated().expect("allocated");
    let store = executor.store();
    assert_eq!(store.conflicts.load(Ordering::SeqCst), 1);
    assert_eq!(store.writes.load(Ordering::SeqCst), 2, "the re-read server was written again");
    let gs = store.inner.api::<GameServer>().get("default", &first.game_server_name).expect("exists");
    assert_eq!(gs.state(), Some(GameServerState::Allocated));
    assert_eq!(gs.metadata.labels.as_ref().and_then(|l| l.get("touched")).map(String::as_str), Some("0"));
    // The other server is untouched.
    let others: Vec<_> = store
        .inner
        .api::<GameServer>()
        .list(None, &crate::local::store::Selector::everything())
        .into_iter()
        .filter(|g| g.name() != first.game_server_name)
        .collect();
    assert_eq!(others[0].state(), Some(GameServerState::Ready));
}

#[tokio::test]
async fn retries_per_candidate_are_bounded_then_the_next_server_is_tried() {
    // Every write to gs-00 is preceded by a foreign relabel: it keeps matching, keeps conflicting.
    let store = Counting::new(store_with_ready(1, None), Duration::ZERO);
    store.inner.api::<GameServer>().create(GameServerBuilder::new("gs-zz").node("node-b").build()).expect("created");
    let store = store.with_hook(|store, gs, _| {
        if gs.name() == "gs-00" {
            relabel(store, gs);
        }
        None
    });
    let executor = executor(store);
    let status = executor.allocate(&packed()).await.expect("answers").allocated().expect("allocated");
    assert_eq!(status.game_server_name, "gs-zz");
    let store = executor.store();
    assert_eq!(store.conflicts.load(Ordering::SeqCst), 1 + super::RETRIES_PER_CANDIDATE);
}

#[tokio::test]
async fn servers_lost_to_other_writers_are_contention_and_none_matching_is_unallocated() {
    let executor_none = executor(Counting::new(Store::new(), Duration::ZERO));
    assert_eq!(executor_none.allocate(&packed()).await.expect("answers"), AllocationOutcome::UnAllocated);

    let store = Counting::new(store_with_ready(3, None), Duration::ZERO).with_hook(|store, gs, _| {
        take(store, gs);
        None
    });
    let executor = executor(store);
    assert_eq!(executor.allocate(&packed()).await.expect("answers"), AllocationOutcome::Contention);
    assert_eq!(executor.store().conflicts.load(Ordering::SeqCst), 3, "every candidate was tried once");
    // Now they are all Allocated: nothing matches any more.
    assert_eq!(executor.allocate(&packed()).await.expect("answers"), AllocationOutcome::UnAllocated);
}

#[tokio::test]
async fn writes_per_allocation_are_capped() {
    let store = Counting::new(store_with_ready(MAX_ATTEMPTS + 4, None), Duration::ZERO).with_hook(|store, gs, _| {
        take(store, gs);
        None
    });
    let executor = executor(store);
    assert_eq!(executor.allocate(&packed()).await.expect("answers"), AllocationOutcome::Contention);
    assert_eq!(executor.store().writes.load(Ordering::SeqCst), MAX_ATTEMPTS);
}

#[tokio::test]
async fn other_store_failures_are_backend_errors() {
    let store = Counting::new(store_with_ready(2, None), Duration::ZERO)
        .with_hook(|_, _, _| Some(StoreError::Other("etcd is down".into())));
    let executor = executor(store);
    let error = executor.allocate(&packed()).await.expect_err("a backend failure");
    assert!(matches!(&error, stadion_core::allocator::AllocateError::Backend(m) if m.contains("etcd")), "{error:?}");
    assert_eq!(executor.store().writes.load(Ordering::SeqCst), 1, "not retried on another server");
}

#[derive(Default)]
struct Recorded(Mutex<Vec<(String, String)>>, Mutex<Vec<usize>>);

impl AllocationMetrics for Recorded {
    fn observe_allocation(
        &self,
        request: &GameServerAllocation,
        result: &Result<AllocationOutcome, stadion_core::allocator::AllocateError>,
        _elapsed: Duration,
        attempts: usize,
    ) {
        let labels = crate::metrics::allocation_labels(request, result);
        self.0.lock().unwrap().push((labels.fleet_name, labels.status));
        self.1.lock().unwrap().push(attempts);
    }
}

#[tokio::test]
async fn every_answer_is_timed_with_its_status_and_fleet_and_counted_off_the_path() {
    let store = Counting::new(store_with_ready(1, Some("arena")), Duration::ZERO);
    store.inner.api::<GameServer>().create(GameServerBuilder::new("taken").node("node-b").build()).expect("created");
    let store = store.with_hook(|store, gs, _| {
        if gs.name() == "taken" {
            take(store, gs);
        }
        None
    });
    let counts = Arc::new(FleetAllocationCounts::default());
    let executor = AllocationExecutor::new(store, counts.clone(), 1);
    let metrics = Arc::new(Recorded::default());
    executor.set_metrics(metrics.clone());
    // Packed takes the fuller node first: node-a's gs-00.
    assert!(executor.allocate(&packed()).await.expect("answers").allocated().is_some());
    assert_eq!(counts.pending_for("default", "arena"), 1, "counted, not written, on the path");
    assert_eq!(executor.allocate(&packed()).await.expect("answers"), AllocationOutcome::Contention);
    assert_eq!(executor.allocate(&packed()).await.expect("answers"), AllocationOutcome::UnAllocated);
    let recorded = metrics.0.lock().unwrap().clone();
    let expected = [("arena", "Allocated"), ("none", "Contention"), ("none", "UnAllocated")];
    assert_eq!(recorded, expected.map(|(f, s)| (f.to_owned(), s.to_owned())));
    let attempts = metrics.1.lock().unwrap().clone();
    assert_eq!(attempts[0], 1, "the first write won");
    assert!(attempts[1] >= 1, "Contention came from a lost write: {attempts:?}");
    assert_eq!(attempts[2], 0, "nothing matched, nothing was written");
}

/// The embedded store's fleets, counting the status writes. With `first_conflicts`, the first
/// status write is preceded by a foreign status write (the fleet controller publishing its
/// aggregate), so it conflicts.
struct CountedFleetWrites {
    store: Store,
    writes: AtomicUsize,
    first_conflicts: bool,
}

#[async_trait]
impl FleetStatusStore for CountedFleetWrites {
    async fn read_fleet(&self, namespace: &str, name: &str) -> StoreResult<Option<Fleet>> {
        self.store.read_fleet(namespace, name).await
    }

    async fn write_fleet_status(&self, fleet: &Fleet) -> StoreResult<()> {
        if self.writes.fetch_add(1, Ordering::SeqCst) == 0 && self.first_conflicts {
            self.store
                .api::<Fleet>()
                .update_with::<LocalError>(fleet.namespace_or_default(), fleet.name_or_empty(), |stored| {
                    stored.status.get_or_insert_default().replicas = 3;
                    Ok(())
                })
                .expect("foreign status write");
        }
        self.store.write_fleet_status(fleet).await
    }
}

/// Waits (5 s at most) until every recorded count has been written.
async fn counts_land(counts: &FleetAllocationCounts) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while counts.has_pending() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the counts land");
}

#[tokio::test]
async fn the_fleet_count_lands_even_when_the_first_status_write_conflicts() {
    let store = Store::new();
    let mut fleet = Fleet::new("arena", Default::default());
    fleet.metadata.namespace = Some("default".into());
    fleet.status = Some(FleetStatus { allocations: Some(4), ..Default::default() });
    store.api::<Fleet>().create(fleet).expect("fleet created");
    let fleets =
        Arc::new(CountedFleetWrites { store: store.clone(), writes: AtomicUsize::new(0), first_conflicts: true });
    let counts = Arc::new(FleetAllocationCounts::default());
    let flusher = FleetCountFlusher::spawn(counts.clone(), fleets.clone(), Duration::ZERO);
    for _ in 0..3 {
        counts.record("default", "arena");
    }
    // A count for a fleet that does not exist is dropped, not retried forever.
    counts.record("default", "gone");
    counts_land(&counts).await;
    let stored = store.api::<Fleet>().get("default", "arena").expect("fleet");
    let status = stored.status.as_ref().expect("status");
    assert_eq!(status.allocations, Some(7), "4 before, 3 counted");
    assert_eq!(status.replicas, 3, "the foreign write is kept");
    assert!(fleets.writes.load(Ordering::SeqCst) >= 2, "the conflicting write was retried");
    drop(flusher);
}

#[tokio::test]
async fn allocations_tens_of_milliseconds_apart_cost_their_fleet_one_status_write() {
    let store = Store::new();
    let mut fleet = Fleet::new("arena", Default::default());
    fleet.metadata.namespace = Some("default".into());
    store.api::<Fleet>().create(fleet).expect("fleet created");
    let fleets =
        Arc::new(CountedFleetWrites { store: store.clone(), writes: AtomicUsize::new(0), first_conflicts: false });
    let counts = Arc::new(FleetAllocationCounts::default());
    let flusher = FleetCountFlusher::spawn(counts.clone(), fleets.clone(), REMOTE_GATHER);
    // Allocations arriving apart, as one client's do on a real API server (every 25-40 ms); spaced
    // 10 ms here so that a loaded test machine stays well inside the 200 ms gathering window.
    for _ in 0..4 {
        counts.record("default", "arena");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    counts_land(&counts).await;
    let stored = store.api::<Fleet>().get("default", "arena").expect("fleet");
    assert_eq!(stored.status.as_ref().and_then(|s| s.allocations), Some(4));
    assert_eq!(fleets.writes.load(Ordering::SeqCst), 1, "the four gathered into one write");
    drop(flusher);
}

/// A view whose snapshot can be frozen, as a watch cache lags behind the writes it saw made.
struct Lagging {
    inner: Store,
    frozen: Mutex<Option<Vec<Arc<GameServer>>>>,
}

#[async_trait]
impl ObjectStore<GameServer> for Lagging {
    async fn get(&self, namespace: &str, name: &str) -> StoreResult<Option<Arc<GameServer>>> {
        self.inner.get(namespace, name).await
    }

    async fn list(&self, namespace: Option<&str>) -> StoreResult<Vec<Arc<GameServer>>> {
        self.inner.list(namespace).await
    }

    async fn create(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        self.inner.create(object).await
    }

    async fn replace(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        self.inner.replace(object).await
    }

    async fn replace_status(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        self.inner.replace_status(object).await
    }

    async fn delete(&self, namespace: &str, name: &str) -> StoreResult<()> {
        ObjectStore::<GameServer>::delete(&self.inner, namespace, name).await
    }
}

#[async_trait]
impl GameServerView for Lagging {
    async fn snapshot(&self) -> StoreResult<Vec<Arc<GameServer>>> {
        let frozen = self.frozen.lock().expect("frozen").clone();
        match frozen {
            Some(servers) => Ok(servers),
            None => self.inner.list(None).await,
        }
    }
}

/// A backfill's request: the Allocated server of match `m-1` with a free seat, `player` added.
fn backfill(player: &str) -> AdmittedAllocation {
    let mut selector = stadion_crds::allocation::GameServerSelector::default();
    selector.label_selector.match_labels = Some([("stadion.dev/match-id".to_owned(), "m-1".to_owned())].into());
    selector.game_server_state = Some(GameServerState::Allocated);
    selector
        .lists
        .insert("players".into(), stadion_crds::allocation::ListSelector { min_available: 1, ..Default::default() });
    let action = stadion_crds::allocation::ListAction { add_values: vec![player.to_owned()], ..Default::default() };
    let spec = GameServerAllocationSpec {
        selectors: vec![selector],
        lists: [("players".to_owned(), action)].into(),
        ..Default::default()
    };
    admit_allocation(GameServerAllocation::new(spec)).expect("a valid request")
}

#[tokio::test]
async fn a_server_this_process_just_reallocated_is_read_again_not_skipped() {
    let store = Store::new();
    let gs = GameServerBuilder::new("gs-1")
        .state(GameServerState::Allocated)
        .label("stadion.dev/match-id", "m-1")
        .list("players", 2, &[])
        .build();
    store.api::<GameServer>().create(gs).expect("server created");
    let view = Lagging { inner: store.clone(), frozen: Mutex::new(None) };
    let before = view.inner.list(None).await.expect("list");
    let executor = executor(view);
    let first = executor.allocate(&backfill("p1")).await.expect("allocate");
    assert!(matches!(first, AllocationOutcome::Allocated(_)), "{first:?}");
    // The view still shows the server as it was before that write.
    *executor.store().frozen.lock().expect("frozen") = Some(before);
    let second = executor.allocate(&backfill("p2")).await.expect("allocate");
    let AllocationOutcome::Allocated(status) = second else { panic!("a lagging view refused the seat: {second:?}") };
    assert_eq!(status.lists["players"].values, ["p1", "p2"]);
    // Full now: the fresh copy no longer matches, and nothing is overwritten.
    let third = executor.allocate(&backfill("p3")).await.expect("allocate");
    assert!(!matches!(third, AllocationOutcome::Allocated(_)), "{third:?}");
    let stored = store.api::<GameServer>().get("default", "gs-1").expect("server");
    assert_eq!(stored.status.as_ref().map(|s| s.lists["players"].values.len()), Some(2));
}

#[tokio::test]
async fn each_allocated_server_gets_a_normal_allocated_event_as_in_agones() {
    let store = store_with_ready(2, None);
    let executor = executor(store.clone());
    let recorder = crate::local::recorder::LocalRecorder::new();
    executor.set_recorder(Arc::new(recorder.clone()));
    let Ok(AllocationOutcome::Allocated(status)) = executor.allocate(&packed()).await else {
        panic!("a server is allocated");
    };
    let events = async {
        loop {
            let events = recorder.events_for("GameServer", "default", &status.game_server_name);
            if !events.is_empty() {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let events = tokio::time::timeout(Duration::from_secs(5), events).await.expect("the Event is recorded");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].type_, events[0].reason.as_str(), events[0].note.as_str()),
        ("Normal", "Allocated", "Allocated")
    );
    // The server it did not allocate has none.
    let all = ObjectStore::<GameServer>::list(&store, None).await.expect("the servers");
    let other = all.into_iter().find(|gs| gs.name() != status.game_server_name);
    let other = other.expect("the other server");
    assert!(recorder.events_for("GameServer", "default", other.name()).is_empty());
}

//! Component tests: allocation through the local runtime's allocator, under contention.

mod local_runtime;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use local_runtime::{apply, count, eventually, servers, set_yaml, with_runtime};
use stadion_core::allocator::{AdmittedAllocation, AllocateError, AllocationOutcome, Allocator, admit_allocation};
use stadion_crds::allocation::{GameServerAllocationSpec, GameServerAllocationState};
use stadion_crds::{GameServer, GameServerAllocation, GameServerState, labels};

fn any_server() -> AdmittedAllocation {
    admit_allocation(GameServerAllocation::new(GameServerAllocationSpec::default())).expect("a valid request")
}

/// `callers` allocations of any server, released together by a barrier so they truly race;
/// every caller's answer, in spawn order.
async fn race<A: Allocator>(allocator: Arc<A>, callers: usize) -> Vec<Result<AllocationOutcome, AllocateError>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(callers));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (allocator, barrier) = (allocator.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                allocator.allocate(any_server()).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(callers);
    for task in tasks {
        answers.push(task.await.expect("allocation task"));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_allocations_over_a_hundred_ready_servers() {
    with_runtime(|runtime| async move {
        apply(&runtime, &set_yaml("arena", 100, &["--health-ms", "1000"]));
        let store = runtime.store().clone();
        eventually(Duration::from_secs(28), "100 Ready servers", || {
            (count(&servers(&store, labels::GAMESERVERSET, "arena"), GameServerState::Ready) == 100).then_some(())
        })
        .await;

        let answers = race(Arc::new(runtime.allocator()), 200).await;
        let mut won = HashSet::new();
        let mut unavailable = 0;
        for answer in answers {
            match answer {
                Ok(AllocationOutcome::Allocated(status)) => {
                    assert_eq!(status.state, GameServerAllocationState::Allocated);
                    assert_eq!(status.address, "127.0.0.1");
                    assert_eq!(status.ports.len(), 1);
                    assert!(
                        won.insert(status.game_server_name.clone()),
                        "{} handed out twice",
                        status.game_server_name
                    );
                }
                Ok(AllocationOutcome::UnAllocated) => unavailable += 1,
                other => panic!("unexpected allocation answer: {other:?}"),
            }
        }
        assert_eq!((won.len(), unavailable), (100, 100));
        let all = servers(&store, labels::GAMESERVERSET, "arena");
        assert_eq!(count(&all, GameServerState::Allocated), 100);
        for gs in &all {
            let annotations = gs.metadata.annotations.clone().unwrap_or_default();
            assert!(annotations.contains_key(labels::LAST_ALLOCATED), "{} lacks last-allocated", gs.name());
        }
        runtime
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_changes_when_a_server_turns_ready_and_selectors_are_honoured() {
    with_runtime(|runtime| async move {
        let allocator = runtime.allocator();
        let mut capacity = allocator.capacity_changes();
        let before = *capacity.borrow_and_update();
        assert!(matches!(
            allocator.allocate(any_server()).await,
            Ok(AllocationOutcome::UnAllocated)
        ));

        apply(&runtime, &set_yaml("blue", 1, &[]));
        tokio::time::timeout(Duration::from_secs(20), capacity.changed()).await.expect("a server turned Ready").expect("open");
        assert_ne!(*capacity.borrow(), before);
        let store = runtime.store().clone();
        eventually(Duration::from_secs(5), "blue Ready", || {
            (count(&servers(&store, labels::GAMESERVERSET, "blue"), GameServerState::Ready) == 1).then_some(())
        })
        .await;

        // A selector for another set finds nothing; one for this set gets the server.
        let request = |set: &str| {
            let yaml = format!(
                "apiVersion: allocation.agones.dev/v1\nkind: GameServerAllocation\nspec:\n  selectors:\n    - matchLabels:\n        agones.dev/gameserverset: {set}\n  metadata:\n    labels:\n      match: m-1\n"
            );
            match stadion_crds::manifest::parse_documents(&yaml, "gsa.yaml").expect("parses").pop() {
                Some(stadion_crds::manifest::Resource::GameServerAllocation(gsa)) => admit_allocation(*gsa).expect("valid"),
                other => panic!("not an allocation: {other:?}"),
            }
        };
        assert!(matches!(allocator.allocate(request("red")).await, Ok(AllocationOutcome::UnAllocated)));
        let status = allocator.allocate(request("blue")).await.expect("answers").allocated().expect("allocated");
        let gs = store.api::<GameServer>().get("default", &status.game_server_name).expect("exists");
        assert_eq!(gs.state(), Some(GameServerState::Allocated));
        assert_eq!(gs.metadata.labels.as_ref().and_then(|l| l.get("match")).map(String::as_str), Some("m-1"));
        assert!(matches!(allocator.allocate(request("blue")).await, Ok(AllocationOutcome::UnAllocated)));
        runtime
    })
    .await;
}

/// 32 allocators race over 20 Ready servers of the embedded store (no processes), while a
/// foreign writer keeps relabelling servers as an SDK SetLabel would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_allocators_never_share_a_server_and_losers_get_an_answer() {
    use stadion_controller::local::LocalAllocator;
    use stadion_controller::local::store::{Store, StoreError};
    use stadion_core::testing::GameServerBuilder;

    let store = Store::new();
    for i in 0..20 {
        let gs = GameServerBuilder::new(&format!("gs-{i:02}")).node(if i < 10 { "node-a" } else { "node-b" });
        store.api::<GameServer>().create(gs.build()).expect("created");
    }
    let allocator = Arc::new(LocalAllocator::new(store.clone(), tokio::sync::watch::channel(0).0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relabeller = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let name = format!("gs-{:02}", n % 20);
                let _ = store.api::<GameServer>().update_with::<StoreError>("default", &name, |gs| {
                    gs.metadata.labels.get_or_insert_default().insert("sdk-touch".into(), n.to_string());
                    Ok(())
                });
                tokio::task::yield_now().await;
            }
        })
    };
    let answers = race(allocator, 32).await;
    let (mut won, mut unallocated, mut contention) = (HashSet::new(), 0, 0);
    for answer in answers {
        match answer {
            Ok(AllocationOutcome::Allocated(status)) => {
                assert!(won.insert(status.game_server_name.clone()), "{} handed out twice", status.game_server_name);
            }
            Ok(AllocationOutcome::UnAllocated) => unallocated += 1,
            Ok(AllocationOutcome::Contention) => contention += 1,
            Err(error) => panic!("a lost race is an answer, not an error: {error}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    relabeller.await.expect("relabeller");
    assert_eq!(won.len() + unallocated + contention, 32);
    assert!(won.len() <= 20);
    // Every server reported Allocated is Allocated in the store, and no other is.
    let allocated: HashSet<String> = servers_in(&store)
        .into_iter()
        .filter(|gs| gs.state() == Some(GameServerState::Allocated))
        .map(|gs| gs.name().to_owned())
        .collect();
    assert_eq!(allocated, won);
    // Losers only see "no server" once there truly is none left.
    if unallocated > 0 {
        assert_eq!(won.len(), 20, "UnAllocated while servers were still free");
    }
}

fn servers_in(store: &stadion_controller::local::store::Store) -> Vec<Arc<GameServer>> {
    store.api::<GameServer>().list(Some("default"), &stadion_controller::local::store::Selector::everything())
}

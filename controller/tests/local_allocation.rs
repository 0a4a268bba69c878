//! Component tests: allocation through the local runtime's allocator, under contention.

mod local_runtime;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use local_runtime::{apply, count, eventually, servers, set_yaml, with_runtime};
use stadion_core::allocator::{AllocationOutcome, Allocator};
use stadion_crds::allocation::{GameServerAllocationSpec, GameServerAllocationState};
use stadion_crds::{GameServer, GameServerAllocation, GameServerState, labels};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_allocations_over_a_hundred_ready_servers() {
    with_runtime(|runtime| async move {
        apply(&runtime, &set_yaml("arena", 100, &["--health-ms", "1000"]));
        let store = runtime.store().clone();
        eventually(Duration::from_secs(28), "100 Ready servers", || {
            (count(&servers(&store, labels::GAMESERVERSET, "arena"), GameServerState::Ready) == 100).then_some(())
        })
        .await;

        let allocator = Arc::new(runtime.allocator());
        let barrier = Arc::new(tokio::sync::Barrier::new(200));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (allocator, barrier) = (allocator.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    allocator.allocate(GameServerAllocation::new(GameServerAllocationSpec::default())).await
                })
            })
            .collect();
        let mut won = HashSet::new();
        let mut unavailable = 0;
        for task in tasks {
            match task.await.expect("allocation task") {
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
            allocator.allocate(GameServerAllocation::new(GameServerAllocationSpec::default())).await,
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
                Some(stadion_crds::manifest::Resource::GameServerAllocation(gsa)) => *gsa,
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

//! Component tests: a dissolved match gives its server back only while its allocation still
//! holds it, with allocations and releases racing through the local runtime's allocator.

use std::collections::HashSet;
use std::sync::Arc;

use stadion_controller::local::LocalAllocator;
use stadion_controller::local::store::Store;
use stadion_core::allocation::status_allocation_id;
use stadion_core::allocator::{AdmittedAllocation, AllocationOutcome, Allocator, admit_allocation};
use stadion_core::testing::GameServerBuilder;
use stadion_crds::allocation::{GameServerAllocationSpec, GameServerAllocationStatus, GameServerSelector};
use stadion_crds::{GameServer, GameServerAllocation, GameServerState};

/// An allocation of a server in `state` (Ready, or Allocated to share one already in use).
fn from(state: GameServerState) -> AdmittedAllocation {
    let selector = GameServerSelector { game_server_state: Some(state), ..Default::default() };
    let spec = GameServerAllocationSpec { selectors: vec![selector], ..Default::default() };
    admit_allocation(GameServerAllocation::new(spec)).expect("a valid request")
}

fn store_with_ready(n: usize) -> Store {
    let store = Store::new();
    for i in 0..n {
        store.api::<GameServer>().create(GameServerBuilder::new(&format!("gs-{i:02}")).build()).expect("created");
    }
    store
}

fn allocator(store: &Store) -> LocalAllocator {
    LocalAllocator::new(store.clone(), tokio::sync::watch::channel(0).0)
}

async fn allocated(allocator: &LocalAllocator, state: GameServerState) -> GameServerAllocationStatus {
    match allocator.allocate(from(state)).await.expect("allocates") {
        AllocationOutcome::Allocated(status) => status,
        other => panic!("expected a server, got {other:?}"),
    }
}

fn state_of(store: &Store, name: &str) -> Option<GameServerState> {
    store.api::<GameServer>().try_get("default", name).and_then(|gs| gs.state())
}

#[tokio::test]
async fn a_release_by_an_allocation_that_no_longer_holds_the_server_does_nothing() {
    let store = store_with_ready(1);
    let allocator = allocator(&store);

    // A takes the Ready server; B re-allocates it (a queue sharing Allocated servers).
    let a = allocated(&allocator, GameServerState::Ready).await;
    let a_id = status_allocation_id(&a).expect("an exclusive allocation names itself").to_owned();
    let b = allocated(&allocator, GameServerState::Allocated).await;
    assert_eq!(b.game_server_name, a.game_server_name);
    assert_eq!(status_allocation_id(&b), None, "a shared server has no single holder");

    // A's match dissolves: the server B's match is using stays Allocated.
    allocator.release("default", &a.game_server_name, &a_id).await.expect("release");
    assert_eq!(state_of(&store, &a.game_server_name), Some(GameServerState::Allocated));

    // Back to Ready and allocated again by C: A's stale release still does nothing, C's works.
    store
        .api::<GameServer>()
        .update_with::<stadion_controller::local::store::StoreError>("default", &a.game_server_name, |gs| {
            gs.status.get_or_insert_default().state = Some(GameServerState::Ready);
            Ok(())
        })
        .expect("SDK Ready");
    let c = allocated(&allocator, GameServerState::Ready).await;
    let c_id = status_allocation_id(&c).expect("exclusive again").to_owned();
    assert_ne!(c_id, a_id, "each allocation has its own identity");
    allocator.release("default", &c.game_server_name, &a_id).await.expect("release");
    assert_eq!(
        state_of(&store, &c.game_server_name),
        Some(GameServerState::Allocated),
        "A's release after C's allocation"
    );
    allocator.release("default", &c.game_server_name, &c_id).await.expect("release");
    assert_eq!(state_of(&store, &c.game_server_name), Some(GameServerState::Shutdown), "the holder's own release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_releases_never_shut_down_a_server_another_match_was_given() {
    const SERVERS: usize = 24;
    let store = store_with_ready(SERVERS);
    let allocator = Arc::new(allocator(&store));
    let mut holders = Vec::new();
    for _ in 0..SERVERS {
        let status = allocated(&allocator, GameServerState::Ready).await;
        let id = status_allocation_id(&status).expect("exclusive").to_owned();
        holders.push((status.game_server_name, id));
    }

    // Every holder's match dissolves while as many other matches share Allocated servers.
    let barrier = Arc::new(tokio::sync::Barrier::new(2 * SERVERS));
    let releases: Vec<_> = holders
        .iter()
        .cloned()
        .map(|(name, id)| {
            let (allocator, barrier) = (allocator.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                allocator.release("default", &name, &id).await.expect("release");
            })
        })
        .collect();
    let shares: Vec<_> = (0..SERVERS)
        .map(|_| {
            let (allocator, barrier) = (allocator.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                allocator.allocate(from(GameServerState::Allocated)).await.expect("allocates")
            })
        })
        .collect();
    for release in releases {
        release.await.expect("release task");
    }
    let mut shared = HashSet::new();
    for share in shares {
        if let AllocationOutcome::Allocated(status) = share.await.expect("share task") {
            shared.insert(status.game_server_name);
        }
    }

    for (name, _) in &holders {
        let state = state_of(&store, name);
        if shared.contains(name) {
            assert_eq!(state, Some(GameServerState::Allocated), "{name} was handed to another match, then shut down");
        } else {
            assert_eq!(state, Some(GameServerState::Shutdown), "{name}: its only holder released it");
        }
    }
}

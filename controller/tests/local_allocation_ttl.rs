//! Component tests: the opt-in allocation TTL in the local runtime. An Allocated server nobody
//! plays on is shut down once its allocation is older than the TTL, and its fleet replaces it.

mod local_runtime;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use local_runtime::{apply, count, eventually, fleet_yaml, servers, test_config, with_runtime, with_runtime_config};
use stadion_controller::local::LocalRuntime;
use stadion_controller::local::runtime::RuntimeConfig;
use stadion_controller::local::store::{StoreError, WatchEvent};
use stadion_core::allocator::{Allocator, admit_allocation};
use stadion_crds::gameserver::PlayerStatus;
use stadion_crds::manifest::{Resource, parse_documents};
use stadion_crds::{GameServer, GameServerAllocation, GameServerState, labels};

const LIMIT: Duration = Duration::from_secs(20);

/// A fleet of the test game whose template carries `stadion.dev/allocation-ttl: <ttl>`, if any.
fn fleet(name: &str, replicas: i32, ttl: Option<&str>) -> String {
    let yaml = fleet_yaml(name, replicas, &[]);
    match ttl {
        Some(ttl) => yaml.replacen(
            "\n  template:\n    spec:",
            &format!(
                "\n  template:\n    metadata:\n      annotations:\n        {}: {ttl:?}\n    spec:",
                labels::ALLOCATION_TTL
            ),
            1,
        ),
        None => yaml,
    }
}

fn fleet_servers(runtime: &LocalRuntime, fleet: &str) -> Vec<Arc<GameServer>> {
    servers(runtime.store(), labels::FLEET, fleet)
}

/// Waits until `fleet` has exactly `ready` Ready and `allocated` Allocated servers.
async fn settled(runtime: &LocalRuntime, fleet: &str, ready: usize, allocated: usize) -> Vec<Arc<GameServer>> {
    let what = format!("fleet {fleet}: {ready} Ready and {allocated} Allocated, nothing else");
    eventually(LIMIT, &what, || {
        let all = fleet_servers(runtime, fleet);
        let done = count(&all, GameServerState::Ready) == ready
            && count(&all, GameServerState::Allocated) == allocated
            && all.len() == ready + allocated;
        done.then_some(all)
    })
    .await
}

/// Allocates a Ready server of `fleet`; returns its name.
async fn allocate_from(runtime: &LocalRuntime, fleet: &str) -> String {
    let yaml = format!(
        "apiVersion: allocation.agones.dev/v1\nkind: GameServerAllocation\nspec:\n  selectors:\n    - matchLabels:\n        {}: {fleet}\n",
        labels::FLEET
    );
    let request: GameServerAllocation = match parse_documents(&yaml, "gsa.yaml").expect("parses").pop() {
        Some(Resource::GameServerAllocation(gsa)) => *gsa,
        other => panic!("not an allocation: {other:?}"),
    };
    let outcome = runtime.allocator().allocate(admit_allocation(request).expect("valid")).await.expect("answers");
    outcome.allocated().expect("a Ready server to allocate").game_server_name
}

fn state_of(runtime: &LocalRuntime, name: &str) -> Option<GameServerState> {
    runtime.store().api::<GameServer>().try_get("default", name).and_then(|gs| gs.state())
}

/// Sets the connected players of `name`, as the sidecar does on PlayerConnect/PlayerDisconnect.
fn set_players(runtime: &LocalRuntime, name: &str, ids: &[&str]) {
    let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    runtime
        .store()
        .api::<GameServer>()
        .update_with::<StoreError>("default", name, |gs| {
            let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
            gs.status.get_or_insert_default().players = Some(PlayerStatus { count, capacity: 10, ids: ids.clone() });
            Ok(())
        })
        .expect("players recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_allocation_is_shut_down_and_replaced_and_no_ttl_means_no_lapse() {
    with_runtime(|runtime| async move {
        apply(&runtime, &(fleet("expiring", 2, Some("1s")) + "---\n" + &fleet("keeping", 1, None)));
        let before = settled(&runtime, "expiring", 2, 0).await;
        settled(&runtime, "keeping", 1, 0).await;
        for gs in &before {
            let ttl = gs.metadata.annotations.as_ref().and_then(|a| a.get(labels::ALLOCATION_TTL));
            assert_eq!(ttl.map(String::as_str), Some("1s"), "{}: the template's annotation", gs.name());
        }

        // A reader that keeps up (the store coalesces a lagging watcher's events per object).
        let mut changes = runtime.store().api::<GameServer>().watch().events;
        let history = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorder = tokio::spawn({
            let history = history.clone();
            async move {
                while let Some(event) = changes.recv().await {
                    let deleted = matches!(event, WatchEvent::Deleted(_));
                    let gs = event.object();
                    history.lock().unwrap().push((gs.name().to_owned(), gs.state(), deleted));
                }
            }
        });
        let allocated_at = Instant::now();
        let lapsing = allocate_from(&runtime, "expiring").await;
        let kept = allocate_from(&runtime, "keeping").await;
        assert_eq!(state_of(&runtime, &lapsing), Some(GameServerState::Allocated));

        // Back to two Ready servers, neither of them the one that was allocated.
        let after = eventually(LIMIT, "the lapsed server replaced", || {
            let all = fleet_servers(&runtime, "expiring");
            let replaced = count(&all, GameServerState::Ready) == 2
                && all.len() == 2
                && all.iter().all(|gs| gs.name() != lapsing.as_str());
            replaced.then_some(all)
        })
        .await;
        assert!(allocated_at.elapsed() >= Duration::from_secs(1), "lapsed before its TTL");
        let names = |list: &[Arc<GameServer>]| list.iter().map(|gs| gs.name().to_owned()).collect::<BTreeSet<_>>();
        assert_eq!(names(&after).len(), 2);

        // It went the way of SDK Shutdown: Allocated, then Shutdown, then deleted.
        recorder.abort();
        let mut seen = Vec::new();
        for (name, state, deleted) in history.lock().unwrap().iter() {
            if *name == lapsing && !deleted && seen.last() != Some(state) {
                seen.push(*state);
            }
        }
        let path = [Some(GameServerState::Allocated), Some(GameServerState::Shutdown)];
        assert!(seen.ends_with(&path), "{lapsing} went {seen:?}");

        // Without a TTL nothing lapses: the other fleet's server is still Allocated.
        tokio::time::sleep(Duration::from_secs(2).saturating_sub(allocated_at.elapsed())).await;
        assert_eq!(state_of(&runtime, &kept), Some(GameServerState::Allocated));
        settled(&runtime, "keeping", 0, 1).await;
        runtime
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_players_and_an_annotation_keep_a_server_past_the_runtime_default() {
    let config = RuntimeConfig { allocation_ttl: "1s".parse().expect("a TTL"), ..test_config() };
    with_runtime_config(config, |runtime| async move {
        apply(&runtime, &(fleet("playing", 1, None) + "---\n" + &fleet("opted-out", 1, Some("off"))));
        let ready = settled(&runtime, "playing", 1, 0).await;
        settled(&runtime, "opted-out", 1, 0).await;
        let playing = ready[0].name().to_owned();
        set_players(&runtime, &playing, &["alice"]);
        let allocated = allocate_from(&runtime, "playing").await;
        assert_eq!(allocated, playing);
        let opted_out = allocate_from(&runtime, "opted-out").await;

        // Well past the runtime's 1 s TTL: a connected player and `off` each keep their server.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(state_of(&runtime, &playing), Some(GameServerState::Allocated), "a player is connected");
        assert_eq!(state_of(&runtime, &opted_out), Some(GameServerState::Allocated), "the annotation says off");

        // The last player leaving after the deadline lets it lapse at once; the fleet replaces it.
        set_players(&runtime, &playing, &[]);
        eventually(LIMIT, "the server nobody plays on replaced", || {
            let all = fleet_servers(&runtime, "playing");
            let replaced = count(&all, GameServerState::Ready) == 1 && all.iter().all(|gs| gs.name() != playing);
            replaced.then_some(())
        })
        .await;
        assert_eq!(state_of(&runtime, &opted_out), Some(GameServerState::Allocated));
        runtime
    })
    .await;
}

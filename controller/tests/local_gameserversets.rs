//! Component tests: GameServerSets of real game processes in the local runtime.

mod local_runtime;

use std::time::Duration;

use local_runtime::{apply, count, eventually, servers, set_yaml, with_runtime};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use stadion_crds::{GameServer, GameServerSet, GameServerState, labels};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_of_five_becomes_five_ready_servers_with_addresses_and_ports() {
    with_runtime(|runtime| async move {
        apply(&runtime, &set_yaml("five", 5, &[]));
        let store = runtime.store().clone();
        let ready = eventually(Duration::from_secs(20), "5 Ready servers", || {
            let all = servers(&store, labels::GAMESERVERSET, "five");
            (count(&all, GameServerState::Ready) == 5).then_some(all)
        })
        .await;
        let mut ports = Vec::new();
        for gs in &ready {
            let status = gs.status.clone().expect("status");
            assert_eq!(status.address, "127.0.0.1");
            assert_eq!(status.node_name, "local");
            assert_eq!(status.ports.len(), 1);
            assert!((7000..=8000).contains(&status.ports[0].port));
            ports.push(status.ports[0].port);
            assert!(runtime.process_id("default", gs.name()).is_some());
        }
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 5, "host ports must be distinct");

        let set = eventually(Duration::from_secs(5), "set status", || {
            let set = store.api::<GameServerSet>().get("default", "five").ok()?;
            (set.status.as_ref()?.ready_replicas == 5).then_some(set)
        })
        .await;
        assert_eq!(set.status.as_ref().map(|s| s.replicas), Some(5));
        runtime
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_game_makes_its_server_unhealthy_and_the_set_replaces_it() {
    with_runtime(|runtime| async move {
        apply(&runtime, &set_yaml("phoenix", 2, &[]));
        let store = runtime.store().clone();
        let ready = eventually(Duration::from_secs(20), "2 Ready", || {
            let all = servers(&store, labels::GAMESERVERSET, "phoenix");
            (count(&all, GameServerState::Ready) == 2).then_some(all)
        })
        .await;
        let victim = ready[0].name().to_owned();
        let pid = runtime.process_id("default", &victim).expect("running");
        kill(Pid::from_raw(i32::try_from(pid).expect("pid")), Signal::SIGKILL).expect("kill");

        // It goes Unhealthy, the set deletes it, and a new server takes its place.
        eventually(Duration::from_secs(20), "victim gone and 2 Ready again", || {
            let all = servers(&store, labels::GAMESERVERSET, "phoenix");
            let replaced = store.api::<GameServer>().try_get("default", &victim).is_none();
            (replaced && count(&all, GameServerState::Ready) == 2).then_some(())
        })
        .await;
        runtime
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_that_stops_pinging_goes_unhealthy() {
    with_runtime(|runtime| async move {
        apply(&runtime, &set_yaml("silent", 1, &["--no-health"]));
        let store = runtime.store().clone();
        // Ready first (Ready does not need pings), then Unhealthy after 2 missed 1 s periods,
        // then replaced; seeing Unhealthy at least once is the point.
        let mut saw_unhealthy = false;
        let mut watch = store.api::<GameServer>().watch();
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(event) = watch.events.recv().await {
                if event.object().state() == Some(GameServerState::Unhealthy) {
                    saw_unhealthy = true;
                    break;
                }
            }
        })
        .await
        .expect("Unhealthy within 20 s");
        assert!(saw_unhealthy);
        runtime
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_that_cannot_start_is_an_error_not_a_crash() {
    with_runtime(|runtime| async move {
        let yaml = set_yaml("broken", 1, &[]).replace(&local_runtime::game(), "/no/such/game");
        apply(&runtime, &yaml);
        let store = runtime.store().clone();
        eventually(Duration::from_secs(10), "an Error server", || {
            let all = servers(&store, labels::GAMESERVERSET, "broken");
            (count(&all, GameServerState::Error) == 1).then_some(())
        })
        .await;
        runtime
    })
    .await;
}

//! Component tests: servers that fail or end do not hold on to what their neighbours need, and
//! a deleted server's game is stopped as a kubelet stops a deleted pod's container.

mod local_runtime;

use std::time::{Duration, Instant};

use local_runtime::{alive, apply, count, eventually, servers, set_yaml, test_config, with_runtime_config};
use stadion_controller::local::runtime::RuntimeConfig;
use stadion_core::ports::PortRanges;
use stadion_crds::{GameServer, GameServerState, labels};

/// A runtime with only `ports` host ports to hand out.
fn config_with_ports(min: i32, max: i32) -> RuntimeConfig {
    let port_ranges = PortRanges::new().with("default", min, max).expect("a valid range");
    RuntimeConfig { port_ranges, ..test_config() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_set_holding_error_servers_leaves_its_ports_to_a_healthy_one() {
    // Three host ports in all, and a broken set of three that takes one per server it tries.
    with_runtime_config(config_with_ports(21600, 21602), |runtime| async move {
        let broken = set_yaml("broken", 3, &[]).replace(&local_runtime::game(), "/no/such/game");
        apply(&runtime, &broken);
        let store = runtime.store().clone();
        eventually(Duration::from_secs(10), "3 Error servers", || {
            (count(&servers(&store, labels::GAMESERVERSET, "broken"), GameServerState::Error) == 3).then_some(())
        })
        .await;

        // The Error servers are held for 30 s, but their ports are free at once.
        let started = Instant::now();
        apply(&runtime, &set_yaml("healthy", 2, &[]));
        eventually(Duration::from_secs(15), "2 Ready servers in the healthy set", || {
            (count(&servers(&store, labels::GAMESERVERSET, "healthy"), GameServerState::Ready) == 2).then_some(())
        })
        .await;
        assert!(started.elapsed() < Duration::from_secs(20), "well before the 30 s hold ends");
        assert_eq!(servers(&store, labels::GAMESERVERSET, "broken").len(), 3, "the held servers are still there");
        runtime
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_servers_game_gets_its_template_grace_period_not_the_runtimes() {
    let config = RuntimeConfig { grace: Duration::from_secs(60), ..test_config() };
    with_runtime_config(config, |runtime| async move {
        // A game that ignores SIGTERM, with a 1 s grace period in its pod template.
        let yaml = r#"apiVersion: agones.dev/v1
kind: GameServer
metadata:
  name: stubborn
spec:
  ports:
    - name: default
      containerPort: 7654
  template:
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: game
          command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
"#;
        apply(&runtime, yaml);
        let store = runtime.store().clone();
        let pid =
            eventually(Duration::from_secs(10), "the game process", || runtime.process_id("default", "stubborn")).await;
        let deleted = Instant::now();
        store.api::<GameServer>().delete("default", "stubborn", None).expect("delete");
        eventually(Duration::from_secs(15), "the game killed after its grace period", || (!alive(pid)).then_some(()))
            .await;
        let took = deleted.elapsed();
        // One second for the deletion to reach it, one of grace, then SIGKILL; never the
        // runtime's 60 s.
        assert!(took >= Duration::from_millis(1900), "SIGKILL only after the grace period: {took:?}");
        assert!(took < Duration::from_secs(10), "the template's 1 s, not the runtime's 60 s: {took:?}");
        runtime
    })
    .await;
}

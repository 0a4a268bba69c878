//! Rolling updates with Allocated servers on a real API server (`KUBECONFIG`), Agones' most
//! reported stall: the update completes, Allocated servers are never deleted, and the
//! maxSurge / maxUnavailable bounds hold at every moment, sampled throughout.
//!
//! ```text
//! cargo test -p stadion-controller --test kube_rollout -- --ignored --test-threads=1
//! ```
//!
//! The controller runs in-process; the stand-in kubelet (`kubelet/`) runs simulated containers
//! (no processes) and plays the sidecar's SDK Ready through the kube backend, so only the
//! controller's and the scheduler's decisions are under test.

mod kubelet;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use stadion_crds::{Fleet, GameServer, GameServerSet, GameServerState};

use kubelet::Mode;
use kubelet::cluster::{World, allocate, eventually, in_state, live, rolling_fleet, servers};
use kubelet::sampler::{Samples, sample};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
#[ignore = "needs cluster"]
async fn a_rolling_update_completes_around_allocated_servers_within_its_bounds() {
    const REPLICAS: usize = 12;
    const ALLOCATED: usize = 3;
    // 25% of 12: maxSurge 3, maxUnavailable 3.
    const SURGE: usize = 3;
    const UNAVAILABLE: usize = 3;
    let world = World::new(3, 40, Mode::Simulated).await;
    let (stop, controller) = world.start_controller();
    let fleets: Api<Fleet> = Api::namespaced(world.client.clone(), &world.namespace);
    let gameservers: Api<GameServer> = Api::namespaced(world.client.clone(), &world.namespace);
    let sets: Api<GameServerSet> = Api::namespaced(world.client.clone(), &world.namespace);
    fleets.create(&PostParams::default(), &rolling_fleet(&world, "roll", REPLICAS as i32)).await.expect("fleet");
    eventually("all Ready", WAIT, || async {
        (in_state(&gameservers, GameServerState::Ready).await.len() == REPLICAS).then_some(())
    })
    .await;
    let names = allocate(&world, "roll", ALLOCATED).await;
    let mut allocated = Vec::new();
    for name in &names {
        allocated.push((name.clone(), gameservers.get(name).await.expect("allocated").uid().expect("uid")));
    }
    let old_sets: BTreeSet<String> =
        sets.list(&Default::default()).await.expect("sets").items.iter().map(|s| s.name_any()).collect();
    eventually("the fleet back to full strength", WAIT, || async {
        let ready = in_state(&gameservers, GameServerState::Ready).await.len();
        (ready == REPLICAS - ALLOCATED).then_some(())
    })
    .await;

    let samples = Arc::new(Mutex::new(Samples::default()));
    let sampler = sample(gameservers.clone(), allocated.clone(), Duration::from_millis(100), samples.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A new template: every unallocated server is replaced.
    let change = json!({"spec": {"template": {"metadata": {"labels": {"version": "2"}}}}});
    fleets.patch("roll", &PatchParams::default(), &Patch::Merge(&change)).await.expect("new template");

    eventually("the rollout complete", Duration::from_secs(90), || async {
        let all = live(servers(&gameservers).await);
        let new: Vec<_> = all.iter().filter(|gs| gs.labels().get("version").map(String::as_str) == Some("2")).collect();
        let new_ready = new.iter().filter(|gs| gs.state() == Some(GameServerState::Ready)).count();
        let old_unallocated = all
            .iter()
            .filter(|gs| gs.labels().get("version").is_none() && gs.state() != Some(GameServerState::Allocated));
        let status = fleets.get("roll").await.ok()?.status?;
        let done = new_ready == REPLICAS - ALLOCATED
            && old_unallocated.count() == 0
            && all.len() == REPLICAS
            && status.ready_replicas == (REPLICAS - ALLOCATED) as i32
            && status.allocated_replicas == ALLOCATED as i32;
        done.then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sampler.abort();
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    eprintln!("rollout samples: {samples:?}");
    assert!(samples.taken > 10, "sampled throughout: {samples:?}");
    // The sampler saw the rollout in flight: new servers surged in before old ones left.
    assert!(samples.max_live > REPLICAS, "the surge was observed: {samples:?}");
    assert!(samples.touched.is_empty(), "Allocated servers are never touched: {:?}", samples.touched);
    assert!(
        samples.max_live <= REPLICAS + SURGE,
        "maxSurge: at most {} servers at once: {samples:?}",
        REPLICAS + SURGE
    );
    let floor = REPLICAS - ALLOCATED - UNAVAILABLE;
    assert!(samples.min_ready >= floor, "maxUnavailable: at least {floor} Ready at all times: {samples:?}");

    // The old set keeps only its Allocated servers; when one ends it is not replaced from the
    // old template, and the set goes once its last server does.
    let sdk_shutdown = |name: String| {
        let client = world.client.clone();
        let namespace = world.namespace.clone();
        async move {
            let backend = stadion_controller::kube::sidecar::KubeBackend::connect(client, &namespace, &name)
                .await
                .expect("backend");
            stadion_sdk::server::Sidecar::new(Arc::new(backend.clone()), None).shutdown().await.expect("SDK Shutdown");
            backend.flush().await;
        }
    };
    for (name, _) in &allocated {
        sdk_shutdown(name.clone()).await;
    }
    eventually("the old set gone, 12 new-template servers Ready", WAIT, || async {
        let left: BTreeSet<String> =
            sets.list(&Default::default()).await.ok()?.items.iter().map(|s| s.name_any()).collect();
        let ready = in_state(&gameservers, GameServerState::Ready).await;
        let all_new = ready.iter().all(|gs| gs.labels().get("version").map(String::as_str) == Some("2"));
        (left.is_disjoint(&old_sets) && ready.len() == REPLICAS && all_new).then_some(())
    })
    .await;

    let _ = stop.send(());
    controller.await.expect("controller task").expect("controller ran cleanly");
    world.clean_up().await;
}

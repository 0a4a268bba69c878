//! Controller failover on a real API server (`KUBECONFIG`): two `stadion controller` processes
//! with leader election; the leader is SIGKILLed in the middle of a 500-server scale-up, and
//! restarted in the middle of a rolling update.
//!
//! ```text
//! cargo test -p stadion-controller --test kube_failover -- --ignored --test-threads=1
//! ```
//!
//! 500 real sidecar and game processes do not fit on a 2-core machine, so here the stand-in
//! kubelet (`kubelet/`) runs simulated containers: Pods are scheduled by the real kube-scheduler
//! and reported Running without a process, and each GameServer goes Ready through the SDK's
//! kube backend (the sidecar's code, in the test process). The controllers are the real binary
//! (`target/<profile>/stadion`, or `STADION_BIN`).

mod kubelet;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use stadion_controller::kube::lease::{DEFAULT_LEASE_DURATION, DEFAULT_RETRY_INTERVAL, LEASE_NAME};
use stadion_crds::{Fleet, GameServer, GameServerSet, GameServerState};

use kubelet::Mode;
use kubelet::cluster::{
    SIDECAR_IMAGE, World, allocate, eventually, in_state, kubeconfig_path, live, rolling_fleet, servers,
};
use kubelet::sampler::{Samples, sample};

/// One `stadion controller` replica, killed when dropped.
struct Replica {
    identity: String,
    child: Child,
}

impl Replica {
    fn start(world: &World, identity: &str, logs: &Path) -> Self {
        let log = std::fs::File::create(logs.join(format!("{identity}.log"))).expect("controller log");
        let child = Command::new(kubelet::cluster::stadion_binary())
            .args(["controller", "--leader-election", "--metrics-addr", "127.0.0.1:0", "--allocation-api-addr", "off"])
            .args(["--lease-namespace", &world.namespace, "--namespace", &world.namespace, "--identity", identity])
            .args(["--sidecar-image", SIDECAR_IMAGE])
            .env("KUBECONFIG", kubeconfig_path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start stadion controller");
        Self { identity: identity.to_owned(), child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt(LEASE_NAME).await.ok()??.spec?.holder_identity
}

/// Exactly `replicas` live servers, all Ready or Allocated, each with one Pod it owns, no Pod
/// without its server, one GameServerSet, and the fleet's status agreeing.
async fn converged(world: &World, fleet: &str, replicas: usize, allocated: usize) -> Option<()> {
    let gameservers: Api<GameServer> = Api::namespaced(world.client.clone(), &world.namespace);
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), &world.namespace);
    let sets: Api<GameServerSet> = Api::namespaced(world.client.clone(), &world.namespace);
    let all = servers(&gameservers).await;
    if all.len() != replicas || live(all.clone()).len() != replicas {
        return None;
    }
    let ready = all.iter().filter(|gs| gs.state() == Some(GameServerState::Ready)).count();
    let busy = all.iter().filter(|gs| gs.state() == Some(GameServerState::Allocated)).count();
    if ready != replicas - allocated || busy != allocated {
        return None;
    }
    let uids: BTreeMap<String, String> = all.iter().map(|gs| (gs.name_any(), gs.uid().unwrap_or_default())).collect();
    let pod_list = pods.list(&ListParams::default()).await.ok()?.items;
    if pod_list.len() != replicas {
        return None;
    }
    for pod in &pod_list {
        let owner = pod.owner_references().iter().find(|o| o.controller == Some(true))?;
        if uids.get(&owner.name) != Some(&owner.uid) {
            return None;
        }
    }
    if sets.list(&ListParams::default()).await.ok()?.items.len() != 1 {
        return None;
    }
    let status = Api::<Fleet>::namespaced(world.client.clone(), &world.namespace).get(fleet).await.ok()?.status?;
    let counts = (status.replicas as usize, status.ready_replicas as usize, status.allocated_replicas as usize);
    (counts == (replicas, replicas - allocated, allocated)).then_some(())
}

async fn allocated_with_uids(world: &World, fleet: &str, count: usize) -> Vec<(String, String)> {
    let gameservers: Api<GameServer> = Api::namespaced(world.client.clone(), &world.namespace);
    let mut out = Vec::new();
    for name in allocate(world, fleet, count).await {
        out.push((name.clone(), gameservers.get(&name).await.expect("allocated").uid().expect("uid")));
    }
    out
}

/// Kills the Lease holder; returns the survivor's identity and how long the takeover took.
async fn kill_leader(leases: &Api<Lease>, replicas: &mut [Replica]) -> (String, Duration) {
    let leader = holder(leases).await.expect("a leader");
    let replica = replicas.iter_mut().find(|r| r.identity == leader).expect("the leader is one of ours");
    let killed = Instant::now();
    replica.kill();
    let survivor = eventually("the other replica takes the Lease", Duration::from_secs(40), || async {
        holder(leases).await.filter(|h| *h != leader)
    })
    .await;
    (survivor, killed.elapsed())
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn the_standby_takes_over_mid_scale_up_and_the_fleet_converges_to_exactly_500() {
    const TARGET: usize = 500;
    const ALLOCATED: usize = 5;
    // Room for every Pod on any Node: this test is about failover, not about where host ports
    // fit when Packed Nodes fill up on Pod count (core/tests/ports.rs and the kube_scale bench).
    let world = World::new(6, 600, Mode::Simulated).await;
    let logs = std::env::temp_dir().join(format!("stadion-failover-{}", world.run));
    std::fs::create_dir_all(&logs).expect("log dir");
    let mut replicas = vec![Replica::start(&world, "replica-a", &logs), Replica::start(&world, "replica-b", &logs)];
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), &world.namespace);
    eventually("a leader", Duration::from_secs(30), || holder(&leases)).await;

    let fleets: Api<Fleet> = Api::namespaced(world.client.clone(), &world.namespace);
    let gameservers: Api<GameServer> = Api::namespaced(world.client.clone(), &world.namespace);
    fleets.create(&PostParams::default(), &rolling_fleet(&world, "big", 10)).await.expect("fleet");
    eventually("10 Ready", Duration::from_secs(60), || async {
        (in_state(&gameservers, GameServerState::Ready).await.len() == 10).then_some(())
    })
    .await;
    let allocated = allocated_with_uids(&world, "big", ALLOCATED).await;
    let samples = Arc::new(Mutex::new(Samples::default()));
    let sampler = sample(gameservers.clone(), allocated.clone(), Duration::from_millis(500), samples.clone());

    let scale = json!({"spec": {"replicas": TARGET}});
    fleets.patch_scale("big", &PatchParams::default(), &Patch::Merge(&scale)).await.expect("scale to 500");
    eventually("the scale-up under way", Duration::from_secs(60), || async {
        let count = servers(&gameservers).await.len();
        (count >= 100).then_some(())
    })
    .await;
    let before = servers(&gameservers).await.len();
    assert!(before < TARGET, "the leader dies mid-way ({before} servers so far)");
    let (survivor, took) = kill_leader(&leases, &mut replicas).await;
    let limit = DEFAULT_LEASE_DURATION + DEFAULT_RETRY_INTERVAL;
    assert!(took <= limit, "{survivor} took the Lease {took:?} after the kill, more than {limit:?}");

    eventually("exactly 500, no orphans, the allocated kept", Duration::from_secs(240), || {
        converged(&world, "big", TARGET, ALLOCATED)
    })
    .await;
    // And it stays there: nothing overshoots once the survivor has caught up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    converged(&world, "big", TARGET, ALLOCATED).await.expect("still exactly 500 a moment later");
    sampler.abort();
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    eprintln!("failover samples: {samples:?}, takeover after {took:?}");
    assert!(samples.touched.is_empty(), "no Allocated server touched: {:?}", samples.touched);
    assert!(samples.max_live <= TARGET, "never more than 500 at once: {samples:?}");
    let names: BTreeSet<String> = servers(&gameservers).await.iter().map(|gs| gs.name_any()).collect();
    assert_eq!(names.len(), TARGET);
    drop(replicas);
    world.clean_up().await;
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn a_controller_restart_mid_rollout_neither_stalls_it_nor_breaks_its_bounds() {
    const REPLICAS: usize = 20;
    const ALLOCATED: usize = 4;
    // 25% of 20: maxSurge 5, maxUnavailable 5.
    const SURGE: usize = 5;
    const UNAVAILABLE: usize = 5;
    let world = World::new(3, 60, Mode::Simulated).await;
    let logs = std::env::temp_dir().join(format!("stadion-failover-{}", world.run));
    std::fs::create_dir_all(&logs).expect("log dir");
    let mut replicas = vec![Replica::start(&world, "replica-a", &logs), Replica::start(&world, "replica-b", &logs)];
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), &world.namespace);
    eventually("a leader", Duration::from_secs(30), || holder(&leases)).await;
    let fleets: Api<Fleet> = Api::namespaced(world.client.clone(), &world.namespace);
    let gameservers: Api<GameServer> = Api::namespaced(world.client.clone(), &world.namespace);
    fleets.create(&PostParams::default(), &rolling_fleet(&world, "roll", REPLICAS as i32)).await.expect("fleet");
    eventually("all Ready", Duration::from_secs(60), || async {
        (in_state(&gameservers, GameServerState::Ready).await.len() == REPLICAS).then_some(())
    })
    .await;
    let allocated = allocated_with_uids(&world, "roll", ALLOCATED).await;
    eventually("back to full strength", Duration::from_secs(60), || async {
        (in_state(&gameservers, GameServerState::Ready).await.len() == REPLICAS - ALLOCATED).then_some(())
    })
    .await;

    let samples = Arc::new(Mutex::new(Samples::default()));
    let sampler = sample(gameservers.clone(), allocated.clone(), Duration::from_millis(100), samples.clone());
    let change = json!({"spec": {"template": {"metadata": {"labels": {"version": "2"}}}}});
    fleets.patch("roll", &PatchParams::default(), &Patch::Merge(&change)).await.expect("new template");
    let is_new = |gs: &GameServer| gs.labels().get("version").map(String::as_str) == Some("2");
    eventually("the rollout under way", Duration::from_secs(30), || async {
        servers(&gameservers).await.iter().any(is_new).then_some(())
    })
    .await;
    // The leader goes down mid-rollout and comes back as a standby; the other finishes.
    let leader = holder(&leases).await.expect("a leader");
    let (survivor, took) = kill_leader(&leases, &mut replicas).await;
    assert!(took <= DEFAULT_LEASE_DURATION + DEFAULT_RETRY_INTERVAL, "takeover took {took:?}");
    replicas.push(Replica::start(&world, &leader, &logs));

    eventually("the rollout complete", Duration::from_secs(120), || async {
        let all = live(servers(&gameservers).await);
        let new_ready = all.iter().filter(|gs| is_new(gs) && gs.state() == Some(GameServerState::Ready)).count();
        let old_unallocated =
            all.iter().filter(|gs| !is_new(gs) && gs.state() != Some(GameServerState::Allocated)).count();
        (new_ready == REPLICAS - ALLOCATED && old_unallocated == 0 && all.len() == REPLICAS).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sampler.abort();
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    eprintln!("restart-mid-rollout samples: {samples:?}; {survivor} took over after {took:?}");
    assert!(samples.touched.is_empty(), "Allocated servers are never touched: {:?}", samples.touched);
    assert!(samples.max_live <= REPLICAS + SURGE, "maxSurge held: {samples:?}");
    let floor = REPLICAS - ALLOCATED - UNAVAILABLE;
    assert!(samples.min_ready >= floor, "maxUnavailable held (at least {floor} Ready): {samples:?}");
    drop(replicas);
    world.clean_up().await;
}

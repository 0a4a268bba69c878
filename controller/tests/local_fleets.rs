//! Component tests: Fleets and FleetAutoscalers of real game processes in the local runtime.

mod local_runtime;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use local_runtime::{apply, count, eventually, fleet_yaml, servers, with_runtime};
use stadion_controller::local::LocalRuntime;
use stadion_controller::local::store::{Selector, StoreError};
use stadion_core::allocator::{AllocationOutcome, Allocator, admit_allocation};
use stadion_crds::allocation::GameServerAllocationSpec;
use stadion_crds::{Fleet, GameServer, GameServerAllocation, GameServerSet, GameServerState, labels};

const LIMIT: Duration = Duration::from_secs(20);

fn fleet_servers(runtime: &LocalRuntime, fleet: &str) -> Vec<Arc<GameServer>> {
    servers(runtime.store(), labels::FLEET, fleet)
}

async fn wait_for(runtime: &LocalRuntime, fleet: &str, ready: usize, allocated: usize) -> Vec<Arc<GameServer>> {
    let what = format!("fleet {fleet}: {ready} Ready and {allocated} Allocated, nothing else");
    eventually(LIMIT, &what, || {
        let all = fleet_servers(runtime, fleet);
        let settled = count(&all, GameServerState::Ready) == ready
            && count(&all, GameServerState::Allocated) == allocated
            && all.len() == ready + allocated;
        settled.then_some(all)
    })
    .await
}

async fn allocate(runtime: &LocalRuntime, n: usize) -> BTreeSet<String> {
    let allocator = runtime.allocator();
    let mut names = BTreeSet::new();
    for _ in 0..n {
        let status = allocator
            .allocate(admit_allocation(GameServerAllocation::new(GameServerAllocationSpec::default())).unwrap())
            .await;
        names.insert(
            status.ok().and_then(AllocationOutcome::allocated).expect("a Ready server to allocate").game_server_name,
        );
    }
    names
}

fn allocated_names(all: &[Arc<GameServer>]) -> BTreeSet<String> {
    all.iter().filter(|gs| gs.state() == Some(GameServerState::Allocated)).map(|gs| gs.name().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_five_becomes_five_ready_and_reports_it() {
    with_runtime(|runtime| async move {
        apply(&runtime, &fleet_yaml("simple", 5, &[]));
        wait_for(&runtime, "simple", 5, 0).await;
        let fleet = eventually(LIMIT, "fleet status 5 ready", || {
            let fleet = runtime.store().api::<Fleet>().get("default", "simple").ok()?;
            (fleet.status.as_ref()?.ready_replicas == 5).then_some(fleet)
        })
        .await;
        assert_eq!(fleet.status.as_ref().map(|s| s.replicas), Some(5));
        let snapshot = runtime.snapshot();
        assert_eq!(snapshot.fleets.len(), 1);
        assert_eq!((snapshot.fleets[0].desired, snapshot.fleets[0].ready), (5, 5));
        runtime
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_down_never_touches_allocated_servers() {
    with_runtime(|runtime| async move {
        apply(&runtime, &fleet_yaml("scaled", 5, &[]));
        wait_for(&runtime, "scaled", 5, 0).await;
        let allocated = allocate(&runtime, 2).await;

        apply(&runtime, &fleet_yaml("scaled", 3, &[]));
        let all = wait_for(&runtime, "scaled", 1, 2).await;
        assert_eq!(allocated_names(&all), allocated);

        // Below the allocated count: every Ready server goes, the Allocated ones stay.
        apply(&runtime, &fleet_yaml("scaled", 1, &[]));
        let all = wait_for(&runtime, "scaled", 0, 2).await;
        assert_eq!(allocated_names(&all), allocated);

        // And to zero, which Agones refuses and Stadion allows.
        apply(&runtime, &fleet_yaml("scaled", 0, &[]));
        let all = wait_for(&runtime, "scaled", 0, 2).await;
        assert_eq!(allocated_names(&all), allocated);
        let fleet = runtime.store().api::<Fleet>().get("default", "scaled").expect("fleet");
        assert_eq!(fleet.status.as_ref().and_then(|s| s.allocations), Some(2));
        runtime
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_autoscaler_keeps_two_ready_above_the_allocated() {
    with_runtime(|runtime| async move {
        let autoscaler = "apiVersion: autoscaling.agones.dev/v1\nkind: FleetAutoscaler\nmetadata:\n  name: buffered\nspec:\n  fleetName: buffered\n  policy:\n    type: Buffer\n    buffer:\n      bufferSize: 2\n      minReplicas: 0\n      maxReplicas: 10\n  sync:\n    type: FixedInterval\n    fixedInterval:\n      seconds: 1\n";
        apply(&runtime, &format!("{}---\n{autoscaler}", fleet_yaml("buffered", 1, &[])));
        wait_for(&runtime, "buffered", 2, 0).await;
        for allocated in 1..=3 {
            allocate(&runtime, 1).await;
            wait_for(&runtime, "buffered", 2, allocated).await;
        }
        let fleet = runtime.store().api::<Fleet>().get("default", "buffered").expect("fleet");
        assert_eq!(fleet.spec.replicas, 5);
        runtime
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaler_runs_on_its_interval_not_on_every_fleet_change() {
    with_runtime(|runtime| async move {
        // An hour between runs: the first run (the autoscaler is new) is the only one here.
        let autoscaler = "apiVersion: autoscaling.agones.dev/v1\nkind: FleetAutoscaler\nmetadata:\n  name: patient\nspec:\n  fleetName: patient\n  policy:\n    type: Buffer\n    buffer:\n      bufferSize: 2\n      minReplicas: 0\n      maxReplicas: 10\n  sync:\n    type: FixedInterval\n    fixedInterval:\n      seconds: 3600\n";
        apply(&runtime, &format!("{}---\n{autoscaler}", fleet_yaml("patient", 1, &[])));
        wait_for(&runtime, "patient", 2, 0).await;
        allocate(&runtime, 1).await;
        // The fleet's status changes (one Allocated) well within this wait; the autoscaler, as in
        // Agones, does not react until its next sync.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let fleet = runtime.store().api::<Fleet>().get("default", "patient").expect("fleet");
        assert_eq!(fleet.status.as_ref().map(|s| s.allocated_replicas), Some(1));
        assert_eq!(fleet.spec.replicas, 2, "not rescaled before the interval");
        runtime
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_replaces_ready_servers_and_waits_for_allocated_ones() {
    with_runtime(|runtime| async move {
        apply(&runtime, &fleet_yaml("rolling", 4, &[]));
        let before = wait_for(&runtime, "rolling", 4, 0).await;
        let old_set = before[0].metadata.labels.as_ref().and_then(|l| l.get(labels::GAMESERVERSET)).cloned();
        let allocated = allocate(&runtime, 2).await;

        // A new template: the Ready servers are replaced, the Allocated ones keep their session.
        apply(&runtime, &fleet_yaml("rolling", 4, &["--health-ms", "300"]));
        let all = eventually(LIMIT, "2 new Ready servers next to the 2 old Allocated", || {
            let all = fleet_servers(&runtime, "rolling");
            let new_ready = all
                .iter()
                .filter(|gs| gs.state() == Some(GameServerState::Ready))
                .filter(|gs| gs.metadata.labels.as_ref().and_then(|l| l.get(labels::GAMESERVERSET)) != old_set.as_ref())
                .count();
            (new_ready == 2 && all.len() == 4).then_some(all)
        })
        .await;
        assert_eq!(allocated_names(&all), allocated);

        // The matches end: each game calls SDK Shutdown and exits; the new set grows to 4 and
        // the drained old set is deleted.
        for name in &allocated {
            runtime
                .store()
                .api::<GameServer>()
                .update_with::<StoreError>("default", name, |gs| {
                    gs.metadata
                        .annotations
                        .get_or_insert_default()
                        .insert("stadion.test/shutdown".into(), "yes".into());
                    Ok(())
                })
                .expect("annotate");
        }
        wait_for(&runtime, "rolling", 4, 0).await;
        let sets = eventually(LIMIT, "only the new set left", || {
            let sets = runtime.store().api::<GameServerSet>().list(Some("default"), &Selector::everything());
            (sets.len() == 1).then_some(sets)
        })
        .await;
        assert_ne!(Some(sets[0].name()), old_set.as_deref());
        runtime
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_autoscaler_sets_the_replicas_its_endpoint_answers() {
    use axum::Json;
    use axum::routing::post;
    use serde_json::{Value, json};

    // The endpoint asks for 3 replicas and echoes the request's uid, as Agones' examples do.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let recorded = seen.clone();
    let app = axum::Router::new().route(
        "/scale",
        post(move |Json(review): Json<Value>| {
            let recorded = recorded.clone();
            async move {
                let uid = review["request"]["uid"].clone();
                recorded.lock().expect("lock").push(review);
                Json(json!({ "response": { "uid": uid, "scale": true, "replicas": 3 } }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/scale", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    with_runtime(|runtime| async move {
        let autoscaler = format!(
            "apiVersion: autoscaling.agones.dev/v1\nkind: FleetAutoscaler\nmetadata:\n  name: hooked\nspec:\n  fleetName: hooked\n  policy:\n    type: Webhook\n    webhook:\n      url: {url}\n  sync:\n    type: FixedInterval\n    fixedInterval:\n      seconds: 1\n"
        );
        apply(&runtime, &format!("{}---\n{autoscaler}", fleet_yaml("hooked", 1, &[])));
        wait_for(&runtime, "hooked", 3, 0).await;
        let review = seen.lock().expect("lock").first().cloned().expect("the webhook was called");
        assert_eq!(review["request"]["name"], "hooked");
        assert_eq!(review["request"]["namespace"], "default");
        let fas = runtime.store().api::<stadion_crds::FleetAutoscaler>().get("default", "hooked").expect("fas");
        assert!(fas.status.as_ref().is_some_and(|s| s.able_to_scale && s.desired_replicas == 3), "{:?}", fas.status);
        runtime
    })
    .await;
    server.abort();
}

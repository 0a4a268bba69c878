//! Mock-API tests of the compare-and-swap allocation.

use std::sync::Arc;

use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use stadion_core::allocator::{AdmittedAllocation, AllocateError, AllocationOutcome, Allocator, admit_allocation};
use stadion_crds::allocation::{GameServerAllocationSpec, GameServerAllocationState};
use stadion_crds::labels::ALLOCATION_ID;
use stadion_crds::{GameServer, GameServerAllocation, GameServerState};
use tokio::sync::watch;

use super::{KubeAllocator, track_capacity};
use crate::kube::fixtures::{ApiServer, Expect, gameserver, set_state};
use crate::kube::metrics::Metrics;

const GS_PATH: &str = "/apis/agones.dev/v1/namespaces/default/gameservers";

fn ready(name: &str, node: &str) -> GameServer {
    let mut gs = gameserver(name);
    set_state(&mut gs, GameServerState::Ready);
    let status = gs.status.get_or_insert_with(Default::default);
    status.node_name = node.into();
    status.address = "203.0.113.7".into();
    status.ports = vec![stadion_crds::gameserver::GameServerStatusPort { name: "default".into(), port: 7000 }];
    gs
}

fn allocator(client: kube::Client, servers: Vec<GameServer>) -> KubeAllocator {
    let mut writer: Writer<GameServer> = Writer::default();
    for gs in servers {
        writer.apply_watcher_event(&watcher::Event::Apply(gs));
    }
    let (capacity, _) = watch::channel(0);
    KubeAllocator::new(client, writer.as_reader(), capacity)
}

fn request() -> AdmittedAllocation {
    admit_allocation(GameServerAllocation::new(GameServerAllocationSpec::default())).expect("a valid request")
}

#[tokio::test]
async fn conflict_moves_on_to_the_next_candidate() {
    let (client, server) = ApiServer::start();
    let allocator = allocator(client, vec![ready("gs-a", "node-1"), ready("gs-b", "node-1")]);
    let script = server.run(vec![
        Expect::put(&format!("{GS_PATH}/gs-a"))
            .check(|gs| {
                assert_eq!(gs["status"]["state"], "Allocated");
                assert_eq!(gs["metadata"]["resourceVersion"], "1");
            })
            .respond_status(409),
        Expect::put(&format!("{GS_PATH}/gs-b"))
            .check(|gs| {
                assert_eq!(gs["status"]["state"], "Allocated");
                assert_eq!(gs["metadata"]["resourceVersion"], "1", "guarded by the cached version");
                assert!(gs["metadata"]["annotations"]["agones.dev/last-allocated"].is_string());
            })
            .respond_echo(),
    ]);
    let status = allocator.allocate(request()).await.unwrap().allocated().expect("allocated");
    script.await.unwrap();
    assert_eq!(status.state, GameServerAllocationState::Allocated);
    assert_eq!(status.game_server_name, "gs-b");
    assert_eq!(status.address, "203.0.113.7");
    assert_eq!(status.ports[0].port, 7000);
}

#[tokio::test]
async fn every_candidate_taken_is_contention() {
    let (client, server) = ApiServer::start();
    let metrics = Arc::new(Metrics::new());
    let allocator =
        allocator(client, vec![ready("gs-a", "node-1"), ready("gs-b", "node-1")]).with_metrics(metrics.clone());
    let script = server.run(vec![
        Expect::put(&format!("{GS_PATH}/gs-a")).respond_status(409),
        Expect::put(&format!("{GS_PATH}/gs-b")).respond_status(404),
    ]);
    let outcome = allocator.allocate(request()).await.unwrap();
    script.await.unwrap();
    assert_eq!(outcome, AllocationOutcome::Contention);
    // Counted as Contention, not as "no server".
    let text = metrics.encode();
    let contention = r#"agones_gameserver_allocations_duration_seconds_count{fleet_name="",status="Contention"} 1"#;
    assert!(text.contains(contention), "{text}");
    assert!(!text.contains(r#"status="UnAllocated""#), "{text}");
}

#[tokio::test]
async fn only_ready_servers_in_the_namespace_are_candidates() {
    let (client, server) = ApiServer::start();
    let mut allocated = ready("gs-a", "node-1");
    set_state(&mut allocated, GameServerState::Allocated);
    let mut elsewhere = ready("gs-b", "node-1");
    elsewhere.metadata.namespace = Some("other".into());
    let allocator = allocator(client, vec![allocated, elsewhere]);
    let script = server.run(vec![]);
    let outcome = allocator.allocate(request()).await.unwrap();
    script.await.unwrap();
    assert_eq!(outcome, AllocationOutcome::UnAllocated);
}

#[tokio::test]
async fn server_errors_are_backend_failures() {
    let (client, server) = ApiServer::start();
    let allocator = allocator(client, vec![ready("gs-a", "node-1")]);
    let script = server.run(vec![Expect::put(&format!("{GS_PATH}/gs-a")).respond_status(500)]);
    let error = allocator.allocate(request()).await.unwrap_err();
    script.await.unwrap();
    assert!(matches!(error, AllocateError::Backend(_)), "{error:?}");
}

#[tokio::test]
async fn capacity_bumps_when_a_server_turns_ready() {
    let (capacity, rx) = watch::channel(0);
    let capacity = Arc::new(capacity);
    let mut starting = gameserver("gs-a");
    set_state(&mut starting, GameServerState::Scheduled);
    let events = futures::stream::iter(vec![
        Ok(watcher::Event::Init),
        Ok(watcher::Event::InitApply(starting.clone())),
        Ok(watcher::Event::InitDone),
        Ok(watcher::Event::Apply(starting)),
        Ok(watcher::Event::Apply(ready("gs-a", "node-1"))),
        // Still Ready: no new capacity.
        Ok(watcher::Event::Apply(ready("gs-a", "node-1"))),
    ]);
    track_capacity(events, capacity).await;
    assert_eq!(*rx.borrow(), 2, "once for the initial list, once for gs-a turning Ready");
}

#[tokio::test]
async fn allocating_a_fleet_server_counts_it_on_the_fleet() {
    let (client, server) = ApiServer::start();
    let mut gs = ready("gs-a", "node-1");
    gs.metadata.labels = Some([("agones.dev/fleet".to_owned(), "f".to_owned())].into());
    let allocator = allocator(client, vec![gs]);
    let mut fleet = stadion_crds::Fleet::new("f", Default::default());
    fleet.metadata.namespace = Some("default".into());
    fleet.metadata.resource_version = Some("7".into());
    fleet.status = Some(stadion_crds::fleet::FleetStatus { allocations: Some(4), ..Default::default() });
    let fleet_path = "/apis/agones.dev/v1/namespaces/default/fleets/f";
    let script = server.run(vec![
        Expect::put(&format!("{GS_PATH}/gs-a")).respond_echo(),
        Expect::get(fleet_path).respond_json(&fleet),
        Expect::put(&format!("{fleet_path}/status"))
            .check(|f| {
                assert_eq!(f["metadata"]["resourceVersion"], "7");
                assert_eq!(f["status"]["allocations"], 5);
            })
            .respond_status(409),
        Expect::get(fleet_path).respond_json(&fleet),
        Expect::put(&format!("{fleet_path}/status")).respond_echo(),
    ]);
    let status = allocator.allocate(request()).await.unwrap().allocated().expect("allocated");
    assert_eq!(status.game_server_name, "gs-a");
    // The count is written off the allocation's path, after the conflicting first write.
    script.await.unwrap();
    eventually_nothing_pending(&allocator, "f").await;
}

async fn eventually_nothing_pending(allocator: &KubeAllocator, fleet: &str) {
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while allocator.pending_fleet_count("default", fleet) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the fleet count lands");
}

#[tokio::test]
async fn the_allocation_answers_after_one_write_and_the_fleet_count_follows() {
    let (client, server) = ApiServer::start();
    let mut gs = ready("gs-a", "node-1");
    gs.metadata.labels = Some([("agones.dev/fleet".to_owned(), "f".to_owned())].into());
    let allocator = allocator(client, vec![gs]);
    // Only the GameServer write is answered before the allocation must return.
    let script = server.run(vec![Expect::put(&format!("{GS_PATH}/gs-a")).respond_echo()]);
    let status = allocator.allocate(request()).await.unwrap().allocated().expect("allocated");
    assert_eq!(status.game_server_name, "gs-a");
    let mut server = script.await.unwrap();
    assert_eq!(allocator.pending_fleet_count("default", "f"), 1, "counted in memory, not yet written");

    let mut fleet = stadion_crds::Fleet::new("f", Default::default());
    fleet.metadata.namespace = Some("default".into());
    fleet.metadata.resource_version = Some("3".into());
    fleet.status = Some(stadion_crds::fleet::FleetStatus { allocations: Some(9), ..Default::default() });
    let fleet_path = "/apis/agones.dev/v1/namespaces/default/fleets/f";
    server.serve_one(0, Expect::get(fleet_path).respond_json(&fleet)).await;
    let put = Expect::put(&format!("{fleet_path}/status")).check(|f| {
        assert_eq!(f["metadata"]["resourceVersion"], "3", "guarded by the version read");
        assert_eq!(f["status"]["allocations"], 10);
    });
    server.serve_one(1, put.respond_echo()).await;
    eventually_nothing_pending(&allocator, "f").await;
    server.expect_quiet(std::time::Duration::from_millis(100)).await;
}

fn allocated(name: &str, resource_version: &str) -> GameServer {
    let mut gs = ready(name, "node-1");
    set_state(&mut gs, GameServerState::Allocated);
    gs.metadata.resource_version = Some(resource_version.into());
    gs.metadata.annotations.get_or_insert_default().insert(ALLOCATION_ID.to_owned(), "alloc-a".to_owned());
    gs
}

#[tokio::test]
async fn release_shuts_an_allocated_server_down_retrying_on_conflict() {
    let (client, server) = ApiServer::start();
    let allocator = allocator(client, vec![]);
    let script = server.run(vec![
        Expect::get(&format!("{GS_PATH}/gs-a")).respond_json(&allocated("gs-a", "5")),
        Expect::put(&format!("{GS_PATH}/gs-a"))
            .check(|gs| assert_eq!(gs["metadata"]["resourceVersion"], "5"))
            .respond_status(409),
        Expect::get(&format!("{GS_PATH}/gs-a")).respond_json(&allocated("gs-a", "6")),
        Expect::put(&format!("{GS_PATH}/gs-a"))
            .check(|gs| {
                assert_eq!(gs["metadata"]["resourceVersion"], "6", "guarded by the fresh version");
                assert_eq!(gs["status"]["state"], "Shutdown");
            })
            .respond_echo(),
    ]);
    allocator.release("default", "gs-a", "alloc-a").await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn release_leaves_a_server_another_allocation_holds_alone() {
    let (client, server) = ApiServer::start();
    let allocator = allocator(client, vec![]);
    let script = server.run(vec![Expect::get(&format!("{GS_PATH}/gs-a")).respond_json(&allocated("gs-a", "5"))]);
    allocator.release("default", "gs-a", "alloc-earlier").await.unwrap();
    let server = script.await.unwrap();
    server.expect_quiet(std::time::Duration::from_millis(200)).await;
}

#[tokio::test]
async fn release_leaves_a_server_that_is_no_longer_allocated_alone() {
    let (client, server) = ApiServer::start();
    let allocator = allocator(client, vec![]);
    let script = server.run(vec![Expect::get(&format!("{GS_PATH}/gs-a")).respond_json(&ready("gs-a", "node-1"))]);
    allocator.release("default", "gs-a", "alloc-a").await.unwrap();
    let server = script.await.unwrap();
    server.expect_quiet(std::time::Duration::from_millis(200)).await;
}

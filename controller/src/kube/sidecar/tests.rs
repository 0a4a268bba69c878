//! Mock-API tests of the coalesced, conflict-retried SDK writes.

use std::time::Duration;

use kube::Api;
use stadion_crds::{GameServer, GameServerState};
use stadion_sdk::server::{GameServerBackend, Mutation};

use super::KubeBackend;
use crate::kube::fixtures::{ApiServer, Expect, gameserver, set_state};

const GS_PATH: &str = "/apis/agones.dev/v1/namespaces/default/gameservers/gs-1";

fn scheduled() -> GameServer {
    let mut gs = gameserver("gs-1");
    set_state(&mut gs, GameServerState::Scheduled);
    gs
}

fn label(key: &'static str, value: &'static str) -> Mutation {
    Box::new(move |gs: &mut GameServer| {
        gs.metadata.labels.get_or_insert_default().insert(format!("agones.dev/sdk-{key}"), value.to_owned());
        Ok(())
    })
}

fn state(to: GameServerState) -> Mutation {
    Box::new(move |gs: &mut GameServer| {
        set_state(gs, to);
        Ok(())
    })
}

#[tokio::test]
async fn several_sdk_calls_within_the_window_make_one_write() {
    let (client, server) = ApiServer::start();
    let backend = KubeBackend::from_object(Api::namespaced(client, "default"), scheduled(), Duration::from_millis(500));
    let script = server.run(vec![
        Expect::put(GS_PATH)
            .check(|gs| {
                assert_eq!(gs["metadata"]["resourceVersion"], "1");
                assert_eq!(gs["metadata"]["labels"]["agones.dev/sdk-map"], "dust2");
                assert_eq!(gs["metadata"]["labels"]["agones.dev/sdk-mode"], "ranked");
                assert_eq!(gs["status"]["state"], "RequestReady");
            })
            .respond_echo(),
    ]);
    let started = tokio::time::Instant::now();
    backend.update(label("map", "dust2")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    backend.update(label("mode", "ranked")).await.unwrap();
    let seen = backend.update(state(GameServerState::RequestReady)).await.unwrap();
    // Calls return at once with the change visible, before anything is written.
    assert_eq!(seen.state(), Some(GameServerState::RequestReady));
    assert_eq!(backend.get().await.unwrap().state(), Some(GameServerState::RequestReady));
    assert!(started.elapsed() < Duration::from_millis(400));
    backend.flush().await;
    let server = script.await.unwrap();
    // Nothing else is written afterwards.
    server.expect_quiet(Duration::from_millis(800)).await;
    let view = backend.get().await.unwrap();
    assert_eq!(view.metadata.resource_version.as_deref(), Some("2"), "the written version is adopted");
}

#[tokio::test]
async fn conflict_reapplies_the_changes_on_a_fresh_copy() {
    let (client, server) = ApiServer::start();
    let backend = KubeBackend::from_object(Api::namespaced(client, "default"), scheduled(), Duration::from_millis(50));
    // Meanwhile the controller moved it on and someone added a label.
    let mut fresh = scheduled();
    fresh.metadata.resource_version = Some("5".into());
    fresh.metadata.labels.get_or_insert_default().insert("team".into(), "blue".into());
    let script = server.run(vec![
        Expect::put(GS_PATH).check(|gs| assert_eq!(gs["metadata"]["resourceVersion"], "1")).respond_status(409),
        Expect::get(GS_PATH).respond_json(&fresh),
        Expect::put(GS_PATH)
            .check(|gs| {
                assert_eq!(gs["metadata"]["resourceVersion"], "5");
                assert_eq!(gs["metadata"]["labels"]["team"], "blue", "their change is kept");
                assert_eq!(gs["status"]["state"], "Shutdown", "ours is re-applied");
            })
            .respond_echo(),
    ]);
    backend.update(state(GameServerState::Shutdown)).await.unwrap();
    backend.flush().await;
    script.await.unwrap();
    let view = backend.get().await.unwrap();
    assert_eq!(view.metadata.labels.unwrap()["team"], "blue");
    tokio::time::timeout(Duration::from_secs(1), backend.wait_for_shutdown()).await.unwrap();
}

#[tokio::test]
async fn unchanged_updates_write_nothing() {
    let (client, server) = ApiServer::start();
    let backend = KubeBackend::from_object(Api::namespaced(client, "default"), scheduled(), Duration::from_millis(50));
    backend.update(state(GameServerState::Scheduled)).await.unwrap();
    server.expect_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn follows_its_own_gameserver_with_a_name_scoped_watch() {
    let (client, server) = ApiServer::start();
    let mut allocated = scheduled();
    set_state(&mut allocated, GameServerState::Allocated);
    allocated.metadata.resource_version = Some("2".into());
    let event = serde_json::json!({ "type": "MODIFIED", "object": allocated });
    let script = server.run(vec![
        // connect: one read; the watch starts from its version without reading again.
        Expect::get(GS_PATH).respond_json(&scheduled()),
        // No list permission needed: a watch on the collection narrowed to this name.
        Expect::get("/apis/agones.dev/v1/namespaces/default/gameservers")
            .query("watch=true")
            .query("fieldSelector=metadata.name%3Dgs-1")
            .query("resourceVersion=1")
            .respond_json(&event),
    ]);
    let backend = KubeBackend::connect(client, "default", "gs-1").await.unwrap();
    let mut view = backend.watch();
    tokio::time::timeout(Duration::from_secs(2), view.wait_for(|gs| gs.state() == Some(GameServerState::Allocated)))
        .await
        .expect("the watched change reaches the SDK view")
        .unwrap();
    script.await.unwrap();
}

/// The sidecar's SDK calls over this backend: the core transitions run inside the guarded
/// write, so after a conflict they judge the server as it is now, not as it was.
fn sidecar(backend: &KubeBackend) -> stadion_sdk::server::Sidecar {
    stadion_sdk::server::Sidecar::new(std::sync::Arc::new(backend.clone()), None)
}

#[tokio::test]
async fn sdk_ready_racing_a_shutdown_does_not_revive_the_server() {
    let (client, server) = ApiServer::start();
    let backend = KubeBackend::from_object(Api::namespaced(client, "default"), scheduled(), Duration::from_millis(50));
    // Meanwhile scale-down chose this server.
    let mut shut = scheduled();
    set_state(&mut shut, GameServerState::Shutdown);
    shut.metadata.resource_version = Some("7".into());
    let script = server.run(vec![
        Expect::put(GS_PATH).check(|gs| assert_eq!(gs["status"]["state"], "RequestReady")).respond_status(409),
        Expect::get(GS_PATH).respond_json(&shut),
    ]);
    sidecar(&backend).ready().await.unwrap();
    assert_eq!(backend.get().await.unwrap().state(), Some(GameServerState::RequestReady), "the game sees it at once");
    backend.flush().await;
    // Re-run on the fresh copy, SDK Ready on a Shutdown server changes nothing: no second write.
    script.await.unwrap().expect_quiet(Duration::from_millis(300)).await;
    assert_eq!(backend.get().await.unwrap().state(), Some(GameServerState::Shutdown));
}

#[tokio::test]
async fn sdk_reserve_is_written_with_its_deadline_and_allocate_stamps_the_time() {
    let (client, server) = ApiServer::start();
    let backend = KubeBackend::from_object(Api::namespaced(client, "default"), scheduled(), Duration::from_millis(50));
    let script = server.run(vec![
        Expect::put(GS_PATH)
            .check(|gs| {
                assert_eq!(gs["status"]["state"], "Reserved");
                assert!(gs["status"]["reservedUntil"].is_string(), "{}", gs["status"]);
            })
            .respond_echo(),
        Expect::put(GS_PATH)
            .check(|gs| {
                assert_eq!(gs["metadata"]["resourceVersion"], "2", "guarded by the version the first write got");
                assert_eq!(gs["status"]["state"], "Allocated");
                assert!(gs["status"]["reservedUntil"].is_null(), "Allocate cancels the reservation");
                assert!(gs["metadata"]["annotations"]["agones.dev/last-allocated"].is_string());
            })
            .respond_echo(),
    ]);
    let sdk = sidecar(&backend);
    sdk.reserve(30).await.unwrap();
    backend.flush().await;
    sdk.allocate().await.unwrap();
    backend.flush().await;
    script.await.unwrap().expect_quiet(Duration::from_millis(200)).await;
}

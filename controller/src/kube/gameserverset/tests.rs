//! Mock-API tests of carrying out GameServerSet plans.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use stadion_crds::gameserverset::{GameServerSetSpec, GameServerSetStatus, GameServerTemplateSpec};
use stadion_crds::{GameServer, GameServerSet, GameServerState};

use super::reconcile;
use crate::kube::fixtures::{ApiServer, Expect, context, gameserver, set_state};

const GS_PATH: &str = "/apis/agones.dev/v1/namespaces/default/gameservers";
const SET_PATH: &str = "/apis/agones.dev/v1/namespaces/default/gameserversets/set-1";

fn set(replicas: i32) -> GameServerSet {
    let mut spec = gameserver("x").spec;
    // A template's Dynamic port has no host port yet (setting one is invalid).
    spec.ports[0].host_port = None;
    let template = GameServerTemplateSpec { metadata: Default::default(), spec };
    let mut set = GameServerSet::new("set-1", GameServerSetSpec { replicas, template, ..Default::default() });
    set.metadata.namespace = Some("default".into());
    set.metadata.uid = Some("uid-set-1".into());
    set.metadata.resource_version = Some("1".into());
    set.apply_defaults();
    set
}

fn member(name: &str, state: GameServerState) -> GameServer {
    let mut gs = gameserver(name);
    set_state(&mut gs, state);
    gs.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "agones.dev/v1".into(),
        kind: "GameServerSet".into(),
        name: "set-1".into(),
        uid: "uid-set-1".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    gs
}

fn created() -> Expect {
    Expect::post(GS_PATH)
        .check(|gs| {
            assert_eq!(gs["metadata"]["labels"]["agones.dev/gameserverset"], "set-1");
            assert_eq!(gs["metadata"]["ownerReferences"][0]["uid"], "uid-set-1");
            assert_eq!(gs["status"]["state"], "PortAllocation");
        })
        .respond_echo()
}

#[tokio::test]
async fn creates_missing_servers_once_despite_a_stale_cache() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let script = server.run(vec![
        created(),
        created(),
        Expect::event("SuccessfulCreate"),
        Expect::put(&format!("{SET_PATH}/status"))
            .check(|put| {
                assert_eq!(put["status"]["replicas"], 0);
                // Guarded by the version the pass read.
                assert_eq!(put["metadata"]["resourceVersion"], "1");
            })
            .respond_json(&set(2)),
    ]);
    reconcile(Arc::new(set(2)), ctx.clone()).await.unwrap();
    let server = script.await.unwrap();
    // The cache still shows nothing; our own creations count, so nothing is created again.
    let script = server.run(vec![
        Expect::put(&format!("{SET_PATH}/status"))
            .check(|patch| assert_eq!(patch["status"]["replicas"], 2))
            .respond_json(&set(2)),
    ]);
    reconcile(Arc::new(set(2)), ctx).await.unwrap();
    script.await.unwrap().expect_quiet(std::time::Duration::from_millis(100)).await;
}

#[tokio::test]
async fn scale_down_shuts_down_a_ready_server_never_an_allocated_one() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    caches.gameserver(member("set-1-a", GameServerState::Allocated));
    caches.gameserver(member("set-1-b", GameServerState::Ready));
    let script = server.run(vec![
        Expect::put(&format!("{GS_PATH}/set-1-b"))
            .check(|gs| {
                assert_eq!(gs["status"]["state"], "Shutdown");
                assert_eq!(gs["metadata"]["resourceVersion"], "1");
            })
            .respond_echo(),
        Expect::put(&format!("{SET_PATH}/status"))
            .check(|patch| {
                assert_eq!(patch["status"]["replicas"], 2);
                assert_eq!(patch["status"]["allocatedReplicas"], 1);
                assert_eq!(patch["status"]["readyReplicas"], 1);
            })
            .respond_json(&set(1)),
    ]);
    reconcile(Arc::new(set(1)), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn unhealthy_servers_are_deleted_and_replaced() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    caches.gameserver(member("set-1-a", GameServerState::Unhealthy));
    let script = server.run(vec![
        created(),
        Expect::event("SuccessfulCreate"),
        Expect::delete(&format!("{GS_PATH}/set-1-a")).respond_json(&member("set-1-a", GameServerState::Unhealthy)),
        Expect::event("SuccessfulDelete"),
        Expect::put(&format!("{SET_PATH}/status")).respond_json(&set(1)),
    ]);
    reconcile(Arc::new(set(1)), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn undefaulted_set_is_defaulted_first() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let mut raw = set(1);
    raw.spec.scheduling = None;
    let script =
        server.run(vec![Expect::put(SET_PATH).check(|s| assert_eq!(s["spec"]["scheduling"], "Packed")).respond_echo()]);
    reconcile(Arc::new(raw), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn invalid_set_reports_valid_false_once_and_creates_nothing() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let mut bad = set(2);
    bad.metadata.generation = Some(3);
    bad.spec.replicas = -1;
    let written = Arc::new(std::sync::Mutex::new(None));
    let keep = written.clone();
    // The condition is written first; the Event reports what was recorded.
    let script = server.run(vec![
        Expect::put(&format!("{SET_PATH}/status"))
            .check(move |patch| {
                let valid = &patch["status"]["conditions"][0];
                assert_eq!(valid["type"], "Valid");
                assert_eq!(valid["status"], "False");
                assert_eq!(valid["observedGeneration"], 3);
                assert!(valid["message"].as_str().unwrap().contains("spec.replicas"), "{patch}");
                *keep.lock().unwrap() = Some(patch["status"]["conditions"].clone());
            })
            .respond_json(&set(2)),
        Expect::event("ValidationFailed"),
    ]);
    reconcile(Arc::new(bad.clone()), ctx.clone()).await.unwrap();
    let server = script.await.unwrap();

    let conditions = written.lock().unwrap().take().unwrap();
    bad.status =
        Some(GameServerSetStatus { conditions: serde_json::from_value(conditions).unwrap(), ..Default::default() });
    reconcile(Arc::new(bad), ctx).await.unwrap();
    server.expect_quiet(std::time::Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_valid_set_says_so_in_its_status() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let script = server.run(vec![
        Expect::put(&format!("{SET_PATH}/status"))
            .check(|patch| {
                let valid = &patch["status"]["conditions"][0];
                assert_eq!(valid["type"], "Valid");
                assert_eq!(valid["status"], "True");
            })
            .respond_json(&set(0)),
    ]);
    reconcile(Arc::new(set(0)), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn a_refused_create_aborts_the_pass_with_a_warning_and_backs_off() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let script = server.run(vec![
        Expect::post(GS_PATH).respond_status(500),
        Expect::post(&crate::kube::fixtures::events_path("default"))
            .check(|e| {
                assert_eq!(e["reason"], "FailedCreate");
                assert_eq!(e["type"], "Warning");
                assert!(e["note"].as_str().unwrap().contains("GameServer default/set-1-"), "{e}");
            })
            .respond_echo(),
    ]);
    let error = reconcile(Arc::new(set(2)), ctx.clone()).await.expect_err("aborts");
    assert_eq!(error.operation, crate::executor::Operation::Create);
    assert_eq!(
        super::error_policy(Arc::new(set(2)), &error, ctx.clone()),
        kube::runtime::controller::Action::requeue(crate::executor::ERROR_BACKOFF)
    );
    // Nothing after the failed create: no second create, no status.
    script.await.unwrap().expect_quiet(std::time::Duration::from_millis(100)).await;
    let metrics = ctx.metrics.encode();
    assert!(
        metrics.contains(r#"stadion_reconcile_errors_total{controller="gameserverset",error="create_failed"} 1"#),
        "{metrics}"
    );
}

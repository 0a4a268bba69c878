//! Mock-API tests of carrying out Fleet plans.

use std::sync::Arc;

use stadion_crds::fleet::FleetSpec;
use stadion_crds::gameserverset::{GameServerSetStatus, GameServerTemplateSpec};
use stadion_crds::{Fleet, GameServerSet};

use super::reconcile;
use crate::kube::fixtures::{ApiServer, Expect, context, gameserver};

const SETS: &str = "/apis/agones.dev/v1/namespaces/default/gameserversets";
const FLEET: &str = "/apis/agones.dev/v1/namespaces/default/fleets/f";

fn fleet(replicas: i32) -> Fleet {
    let mut spec = gameserver("x").spec;
    spec.ports[0].host_port = None;
    let template = GameServerTemplateSpec { metadata: Default::default(), spec };
    let mut fleet = Fleet::new("f", FleetSpec { replicas, template, ..Default::default() });
    fleet.metadata.namespace = Some("default".into());
    fleet.metadata.uid = Some("uid-f".into());
    fleet.metadata.resource_version = Some("1".into());
    fleet.apply_defaults();
    fleet
}

#[tokio::test]
async fn new_fleet_gets_an_active_set_then_scaling_resizes_it() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let created = Arc::new(std::sync::Mutex::new(None));
    let keep = created.clone();
    let script = server.run(vec![
        Expect::post(SETS)
            .check(move |set| {
                assert_eq!(set["spec"]["replicas"], 3);
                assert_eq!(set["metadata"]["labels"]["agones.dev/fleet"], "f");
                assert_eq!(set["metadata"]["ownerReferences"][0]["uid"], "uid-f");
                *keep.lock().unwrap() = Some(set.clone());
            })
            .respond_echo(),
        Expect::event("CreatingGameServerSet"),
        Expect::put(&format!("{FLEET}/status")).respond_json(&fleet(3)),
    ]);
    reconcile(Arc::new(fleet(3)), ctx.clone()).await.unwrap();
    let server = script.await.unwrap();

    // The set is cached now, with its servers Ready; the fleet is scaled to 5.
    let body = created.lock().unwrap().take().unwrap();
    let mut set: GameServerSet = serde_json::from_value(body).unwrap();
    let fleet = |n| {
        let mut f = fleet(n);
        f.status = Some(stadion_crds::fleet::FleetStatus { allocations: Some(9), ..Default::default() });
        f
    };
    set.metadata.resource_version = Some("2".into());
    set.status = Some(GameServerSetStatus { replicas: 3, ready_replicas: 3, ..Default::default() });
    let set_name = set.name().to_owned();
    caches.gameserverset(set);
    let script = server.run(vec![
        Expect::put(&format!("{SETS}/{set_name}"))
            .check(|set| {
                assert_eq!(set["spec"]["replicas"], 5);
                assert_eq!(set["metadata"]["resourceVersion"], "2");
            })
            .respond_echo(),
        Expect::event("ScalingGameServerSet"),
        Expect::put(&format!("{FLEET}/status"))
            .check(|patch| {
                assert_eq!(patch["status"]["replicas"], 3);
                assert_eq!(patch["status"]["readyReplicas"], 3);
                // The allocator owns that count: it is written back as read, guarded by the
                // version it was read at, so a newer count makes the write conflict.
                assert_eq!(patch["status"]["allocations"], 9);
                assert_eq!(patch["metadata"]["resourceVersion"], "1");
            })
            .respond_json(&fleet(5)),
    ]);
    reconcile(Arc::new(fleet(5)), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn invalid_fleet_gets_a_warning_and_a_false_valid_condition_once() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let mut bad = fleet(1);
    bad.metadata.generation = Some(4);
    bad.spec.template.spec.ports[0].host_port = Some(7000);
    let written = Arc::new(std::sync::Mutex::new(None));
    let keep = written.clone();
    // Counts it had before its template was broken stay as they are.
    bad.status = Some(stadion_crds::fleet::FleetStatus { replicas: 2, ..Default::default() });
    let script = server.run(vec![
        Expect::put(&format!("{FLEET}/status"))
            .check(move |patch| {
                let conditions = &patch["status"]["conditions"];
                assert_eq!(conditions.as_array().unwrap().len(), 1, "{patch}");
                let valid = &conditions[0];
                assert_eq!(valid["type"], "Valid");
                assert_eq!(valid["status"], "False");
                assert_eq!(valid["reason"], "ValidationFailed");
                assert_eq!(valid["observedGeneration"], 4);
                assert!(valid["message"].as_str().unwrap().contains("spec.template.spec.ports[0].hostPort"));
                assert!(valid["lastTransitionTime"].is_string());
                assert_eq!(patch["status"]["replicas"], 2, "only the conditions change");
                *keep.lock().unwrap() = Some(conditions.clone());
            })
            .respond_json(&fleet(1)),
        Expect::post(&crate::kube::fixtures::events_path("default"))
            .check(|e| {
                assert_eq!(e["reason"], "ValidationFailed");
                assert_eq!(e["type"], "Warning");
                assert!(e["note"].as_str().unwrap().contains("spec.template.spec.ports[0].hostPort"), "{e}");
            })
            .respond_echo(),
    ]);
    let action = reconcile(Arc::new(bad.clone()), ctx.clone()).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    let server = script.await.unwrap();

    // The watch brings the fleet back with the condition: nothing more is written or reported.
    let conditions = written.lock().unwrap().take().unwrap();
    bad.status = Some(stadion_crds::fleet::FleetStatus {
        conditions: serde_json::from_value(conditions).unwrap(),
        ..Default::default()
    });
    let action = reconcile(Arc::new(bad), ctx).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    server.expect_quiet(std::time::Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_fixed_fleet_turns_valid_in_its_status() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let mut fixed = fleet(0);
    fixed.status = Some(stadion_crds::fleet::FleetStatus {
        conditions: vec![stadion_core::conditions::validity(
            &{
                let mut e = stadion_crds::FieldErrors::default();
                e.push("spec.replicas", "was bad");
                e
            },
            Some(1),
        )],
        ..Default::default()
    });
    fixed.metadata.generation = Some(2);
    let script = server.run(vec![
        Expect::post(SETS).respond_echo(),
        Expect::event("CreatingGameServerSet"),
        Expect::put(&format!("{FLEET}/status"))
            .check(|patch| {
                let valid = &patch["status"]["conditions"][0];
                assert_eq!(valid["type"], "Valid");
                assert_eq!(valid["status"], "True");
                assert_eq!(valid["reason"], "Validated");
                assert_eq!(valid["observedGeneration"], 2);
            })
            .respond_json(&fleet(0)),
    ]);
    reconcile(Arc::new(fixed), ctx).await.unwrap();
    script.await.unwrap();
}

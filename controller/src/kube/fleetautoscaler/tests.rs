//! Mock-API tests of the autoscaler: the fleet read from the watch cache and resized with a
//! guarded write, the status through the status subresource.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stadion_crds::fleet::{FleetSpec, FleetStatus};
use stadion_crds::fleetautoscaler::{
    BufferPolicy, FleetAutoscalerPolicy, FleetAutoscalerPolicyType, FleetAutoscalerSpec,
};
use stadion_crds::{Fleet, FleetAutoscaler};

use super::reconcile;
use crate::kube::fixtures::{ApiServer, Expect, context};

const FLEET: &str = "/apis/agones.dev/v1/namespaces/default/fleets/f";
const FAS: &str = "/apis/autoscaling.agones.dev/v1/namespaces/default/fleetautoscalers/fas";

fn autoscaler() -> FleetAutoscaler {
    let policy = FleetAutoscalerPolicy {
        type_: FleetAutoscalerPolicyType::Buffer,
        buffer: Some(BufferPolicy { buffer_size: IntOrString::Int(2), min_replicas: 0, max_replicas: 10 }),
        ..Default::default()
    };
    let mut fas = FleetAutoscaler::new("fas", FleetAutoscalerSpec { fleet_name: "f".into(), policy, sync: None });
    fas.metadata.namespace = Some("default".into());
    fas.metadata.uid = Some("uid-fas".into());
    fas.apply_defaults();
    fas
}

#[tokio::test]
async fn buffer_policy_scales_the_fleet_it_decided_from() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let mut fleet = Fleet::new("f", FleetSpec { replicas: 1, ..Default::default() });
    fleet.metadata.namespace = Some("default".into());
    fleet.metadata.resource_version = Some("4".into());
    fleet.status = Some(FleetStatus { replicas: 1, allocated_replicas: 1, ..Default::default() });
    // Read from the watch cache, not fetched.
    caches.fleet(fleet);
    let script = server.run(vec![
        Expect::put(FLEET)
            .check(|put| {
                assert_eq!(put["spec"]["replicas"], 3, "1 allocated + buffer 2");
                // Guarded by the version the decision was made from.
                assert_eq!(put["metadata"]["resourceVersion"], "4");
            })
            .respond_echo(),
        Expect::event("AutoScalingFleet"),
        Expect::patch(&format!("{FAS}/status"))
            .check(|patch| {
                assert_eq!(patch["status"]["desiredReplicas"], 3);
                assert_eq!(patch["status"]["currentReplicas"], 1);
                assert_eq!(patch["status"]["ableToScale"], true);
            })
            .respond_json(&autoscaler()),
    ]);
    let action = reconcile(Arc::new(autoscaler()), ctx).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(30)));
    script.await.unwrap();
}

#[tokio::test]
async fn missing_fleet_is_reported_not_scaled() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    // No fleet in the cache.
    let script = server.run(vec![
        Expect::post(&crate::kube::fixtures::events_path("default"))
            .check(|e| assert_eq!(e["reason"], "AutoScalingFleetError"))
            .respond_echo(),
        Expect::patch(&format!("{FAS}/status"))
            .check(|patch| assert_eq!(patch["status"]["ableToScale"], false))
            .respond_json(&autoscaler()),
    ]);
    reconcile(Arc::new(autoscaler()), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn invalid_policy_is_reported_in_an_event_and_the_status() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let mut fas = autoscaler();
    fas.spec.policy.buffer = None;
    let script = server.run(vec![
        Expect::patch(&format!("{FAS}/status"))
            .check(|patch| assert_eq!(patch["status"]["ableToScale"], false))
            .respond_json(&autoscaler()),
        Expect::post(&crate::kube::fixtures::events_path("default"))
            .check(|e| {
                assert_eq!(e["reason"], "ValidationFailed");
                assert_eq!(e["type"], "Warning");
            })
            .respond_echo(),
    ]);
    let action = reconcile(Arc::new(fas), ctx).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    script.await.unwrap();
}

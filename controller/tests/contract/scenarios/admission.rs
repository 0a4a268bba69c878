//! Admission, as Agones' webhooks would do it: the stored object shows its defaults, and an
//! invalid Fleet is stored but reported (`Valid=False` naming the field) and gets no servers.

use std::time::Duration;

use serde_json::json;
use stadion_crds::labels;

use super::super::manifests::SetYaml;
use super::super::observe::{LIMIT, fleet_condition, fleet_servers, settle, until};
use super::super::runtime::Runtime;

/// A Fleet applied without strategy or scheduling reads back with Agones' defaults, and so do
/// its servers.
pub async fn defaults_stored(rt: &impl Runtime) {
    let who = rt.name();
    rt.apply(&SetYaml::fleet("plain", 1).render()).await.unwrap_or_else(|e| panic!("[{who}] apply: {e}"));
    // The kube runtime writes defaults back on its first reconcile: allow it a moment.
    let fleet = until(rt, Duration::from_secs(10), "fleet plain stored with a strategy", async || {
        let fleet = rt.fleet("plain").await.ok_or("no fleet")?;
        if fleet.spec.strategy.is_some() { Ok(fleet) } else { Err(format!("spec {:?}", fleet.spec.strategy)) }
    })
    .await;
    let spec = serde_json::to_value(&fleet.spec).expect("a fleet spec serializes");
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        "[{who}] a Fleet applied without a strategy is stored with RollingUpdate 25%/25%"
    );
    assert_eq!(spec["scheduling"], "Packed", "[{who}] a Fleet applied without scheduling is stored Packed");
    let template = &spec["template"]["spec"];
    assert_eq!(template["ports"][0]["portPolicy"], "Dynamic", "[{who}] template port policy defaulted: {template}");
    assert_eq!(template["ports"][0]["protocol"], "UDP", "[{who}] template port protocol defaulted: {template}");

    let valid = until(rt, LIMIT, "fleet plain Valid=True", async || {
        let fleet = rt.fleet("plain").await.ok_or("no fleet")?;
        fleet_condition(&fleet, "Valid").ok_or_else(|| format!("conditions {:?}", fleet.status.map(|s| s.conditions)))
    })
    .await;
    assert_eq!(valid.0, "True", "[{who}] a valid fleet is Valid=True: {valid:?}");

    let servers = settle(rt, "plain", 1, 0, 0).await;
    let gs = serde_json::to_value(&servers[0]).expect("a GameServer serializes");
    let gs_spec = &gs["spec"];
    assert_eq!(gs_spec["container"], "game", "[{who}] the only container is the game container: {gs_spec}");
    assert_eq!(gs_spec["scheduling"], "Packed", "[{who}] GameServer scheduling defaulted: {gs_spec}");
    assert_eq!(gs_spec["ports"][0]["portPolicy"], "Dynamic", "[{who}] GameServer port defaulted: {gs_spec}");
    assert_eq!(gs_spec["ports"][0]["protocol"], "UDP", "[{who}] GameServer port defaulted: {gs_spec}");
    assert_eq!(
        gs_spec["sdkServer"],
        json!({"logLevel": "Info", "grpcPort": 9357, "httpPort": 9358}),
        "[{who}] GameServer sdkServer defaulted"
    );
    let finalizers = servers[0].metadata.finalizers.clone().unwrap_or_default();
    assert!(
        finalizers.iter().any(|f| f == labels::FINALIZER),
        "[{who}] finalizer {} on every GameServer: {finalizers:?}",
        labels::FINALIZER
    );
}

/// A schema-valid but invalid Fleet (a Dynamic port with a host port) that reached the store is
/// reported `Valid=False` naming the field, and gets nothing.
pub async fn invalid_fleet_reported(rt: &impl Runtime) {
    let who = rt.name();
    rt.store_unchecked(&SetYaml::fleet("invalid", 1).host_port(7000).render())
        .await
        .unwrap_or_else(|e| panic!("[{who}] an invalid Fleet that reached the store is reported, not lost: {e}"));
    let (status, _, message) = until(rt, LIMIT, "fleet invalid with a Valid condition", async || {
        let fleet = rt.fleet("invalid").await.ok_or("no fleet")?;
        fleet_condition(&fleet, "Valid").ok_or_else(|| format!("conditions {:?}", fleet.status.map(|s| s.conditions)))
    })
    .await;
    assert_eq!(status, "False", "[{who}] the invalid fleet is Valid=False");
    assert!(message.contains("spec.template.spec.ports[0].hostPort"), "[{who}] Valid=False names the field: {message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sets = rt.gameserversets().await;
    let of_invalid = sets
        .iter()
        .filter(|s| s.metadata.labels.as_ref().and_then(|l| l.get(labels::FLEET)).is_some_and(|f| f == "invalid"))
        .count();
    assert_eq!(of_invalid, 0, "[{who}] an invalid fleet gets no GameServerSet");
    assert!(fleet_servers(rt, "invalid").await.is_empty(), "[{who}] an invalid fleet gets no GameServers");

    // And the same check passes a valid one.
    rt.apply(&SetYaml::fleet("valid", 0).render()).await.unwrap_or_else(|e| panic!("[{who}] apply: {e}"));
    let valid = until(rt, LIMIT, "fleet valid with a Valid condition", async || {
        let fleet = rt.fleet("valid").await.ok_or("no fleet")?;
        fleet_condition(&fleet, "Valid").ok_or_else(|| format!("conditions {:?}", fleet.status.map(|s| s.conditions)))
    })
    .await;
    assert_eq!(valid.0, "True", "[{who}] a valid fleet is Valid=True: {valid:?}");
}

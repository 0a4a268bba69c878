//! Refuses to start without the CRDs: a controller that watched missing resources would just log
//! 404s forever, so we check once at start-up and exit with a message that says what to do.

use kube::Client;

use super::{Error, Result, api_status};

/// Every resource the controller watches, as (group/version, plural, Kind).
pub const REQUIRED: [(&str, &str, &str); 4] = [
    ("agones.dev/v1", "gameservers", "GameServer"),
    ("agones.dev/v1", "gameserversets", "GameServerSet"),
    ("agones.dev/v1", "fleets", "Fleet"),
    ("autoscaling.agones.dev/v1", "fleetautoscalers", "FleetAutoscaler"),
];

/// Checks through API discovery that every [`REQUIRED`] resource is served. Returns
/// [`Error::CrdsMissing`] naming each missing one; other API failures pass through.
pub async fn ensure_crds_installed(client: &Client) -> Result<()> {
    let mut missing = Vec::new();
    let mut group_versions: Vec<&str> = REQUIRED.iter().map(|(gv, _, _)| *gv).collect();
    group_versions.dedup();
    for group_version in group_versions {
        let served: Vec<String> = match client.list_api_group_resources(group_version).await {
            Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
            Err(e) if api_status(&e) == Some(404) => Vec::new(),
            Err(e) => return Err(Error::Kube(e)),
        };
        for (gv, plural, kind) in REQUIRED.iter().filter(|(gv, _, _)| *gv == group_version) {
            if !served.iter().any(|name| name == plural) {
                missing.push(format!("{kind} ({plural}.{gv})"));
            }
        }
    }
    if missing.is_empty() { Ok(()) } else { Err(Error::CrdsMissing { missing }) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::fixtures::{ApiServer, Expect};
    use serde_json::json;

    fn resources(names: &[&str]) -> serde_json::Value {
        json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "agones.dev/v1",
            "resources": names.iter().map(|n| json!({
                "name": n, "singularName": "", "namespaced": true, "kind": "X", "verbs": ["get"]
            })).collect::<Vec<_>>(),
        })
    }

    #[tokio::test]
    async fn all_present() {
        let (client, server) = ApiServer::start();
        let script = server.run(vec![
            Expect::get("/apis/agones.dev/v1").respond_json(&resources(&[
                "gameservers",
                "gameserversets",
                "gameserversets/status",
                "fleets",
            ])),
            Expect::get("/apis/autoscaling.agones.dev/v1").respond_json(&resources(&["fleetautoscalers"])),
        ]);
        ensure_crds_installed(&client).await.unwrap();
        script.await.unwrap();
    }

    #[tokio::test]
    async fn missing_group_is_named_in_the_error() {
        let (client, server) = ApiServer::start();
        let script = server.run(vec![
            Expect::get("/apis/agones.dev/v1").respond_json(&resources(&["gameservers"])),
            Expect::get("/apis/autoscaling.agones.dev/v1").respond_status(404),
        ]);
        let error = ensure_crds_installed(&client).await.unwrap_err();
        script.await.unwrap();
        let Error::CrdsMissing { missing } = &error else { panic!("unexpected {error}") };
        assert_eq!(missing.len(), 3, "{missing:?}");
        assert!(error.to_string().contains("FleetAutoscaler (fleetautoscalers.autoscaling.agones.dev/v1)"));
        assert!(error.to_string().contains("kubectl apply"));
        assert_eq!(error.kind(), "crds_missing");
    }
}

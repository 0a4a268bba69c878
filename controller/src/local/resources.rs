//! Read-only views of the stored objects on the admin address, whole, as the API server would
//! return them: what `stadion get` reads.
//!
//! - `GET /api/fleetautoscalers`: every FleetAutoscaler, as a JSON array (beside the summaries
//!   `/api/fleets`, `/api/gameservers` and `/api/gameserversets` of [`super::admin`]).
//! - `GET /apis/agones.dev/v1/{gameservers,gameserversets,fleets}` and
//!   `GET /apis/autoscaling.agones.dev/v1/fleetautoscalers`: a Kubernetes `…List` of every object
//!   of the kind in every namespace, as `kubectl get -A -o json` shows it.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};

use super::store::{Selector, Store, StoreObject};

/// The read-only object routes over `store`.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/api/fleetautoscalers", get(array::<FleetAutoscaler>))
        .route("/apis/agones.dev/v1/gameservers", get(list::<GameServer>))
        .route("/apis/agones.dev/v1/gameserversets", get(list::<GameServerSet>))
        .route("/apis/agones.dev/v1/fleets", get(list::<Fleet>))
        .route("/apis/autoscaling.agones.dev/v1/fleetautoscalers", get(list::<FleetAutoscaler>))
        .with_state(store)
}

fn everything<K: StoreObject + serde::Serialize>(store: &Store) -> Vec<Value> {
    let objects: Vec<Arc<K>> = store.api::<K>().list(None, &Selector::everything());
    // Serializing a resource into a Value cannot fail (string keys, no non-finite floats).
    objects.iter().filter_map(|o| serde_json::to_value(o.as_ref()).ok()).collect()
}

async fn array<K: StoreObject + serde::Serialize>(State(store): State<Store>) -> Json<Vec<Value>> {
    Json(everything::<K>(&store))
}

async fn list<K: StoreObject + serde::Serialize>(State(store): State<Store>) -> Json<Value> {
    let items = everything::<K>(&store);
    let api_version = <K as k8s_openapi::Resource>::API_VERSION;
    let kind = format!("{}List", <K as k8s_openapi::Resource>::KIND);
    Json(json!({ "apiVersion": api_version, "kind": kind, "metadata": {}, "items": items }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stadion_crds::fleetautoscaler::FleetAutoscalerSpec;

    #[tokio::test]
    async fn lists_whole_objects() {
        let store = Store::new();
        let fas = FleetAutoscaler::new("fas-1", FleetAutoscalerSpec { fleet_name: "f".into(), ..Default::default() });
        store.api::<FleetAutoscaler>().create(fas).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, router(store)).await });
        let list: Value = reqwest::get(format!("{base}/apis/autoscaling.agones.dev/v1/fleetautoscalers"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["kind"], "FleetAutoscalerList");
        assert_eq!(list["apiVersion"], "autoscaling.agones.dev/v1");
        assert_eq!(list["items"][0]["spec"]["fleetName"], "f");
        assert_eq!(list["items"][0]["metadata"]["name"], "fas-1");
        let array: Value = reqwest::get(format!("{base}/api/fleetautoscalers")).await.unwrap().json().await.unwrap();
        assert_eq!(array[0]["kind"], "FleetAutoscaler");
        let sets: Value =
            reqwest::get(format!("{base}/apis/agones.dev/v1/gameserversets")).await.unwrap().json().await.unwrap();
        assert_eq!((&sets["kind"], &sets["items"]), (&json!("GameServerSetList"), &json!([])));
        server.abort();
    }
}

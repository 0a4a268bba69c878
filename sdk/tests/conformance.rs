//! In the spirit of Agones' SDK conformance suite: a client runs a fixed sequence of calls, once
//! over gRPC and once over REST, and the sidecar checks it received exactly that set of calls with
//! exactly those values.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use stadion_crds::GameServerState;
use stadion_sdk::proto::beta;
use stadion_sdk::server::SdkCall;

/// What the sidecar must have seen, given the server's creation timestamp and uid.
fn expected(creation: &str, uid: &str) -> BTreeSet<SdkCall> {
    let s = |v: &str| v.to_owned();
    BTreeSet::from([
        SdkCall::WatchGameServer,
        SdkCall::Ready,
        SdkCall::Reserve { seconds: 5 },
        SdkCall::Allocate,
        SdkCall::Health,
        SdkCall::GetGameServer,
        SdkCall::SetLabel { key: s("creation"), value: s(creation) },
        SdkCall::SetAnnotation { key: s("uid"), value: s(uid) },
        SdkCall::GetCounter { name: s("rooms") },
        SdkCall::UpdateCounter { name: s("rooms"), count: None, capacity: None, diff: 2 },
        SdkCall::UpdateCounter { name: s("rooms"), count: Some(0), capacity: Some(5), diff: 0 },
        SdkCall::GetList { name: s("players") },
        SdkCall::AddListValue { name: s("players"), value: s("p9") },
        SdkCall::RemoveListValue { name: s("players"), value: s("a") },
        SdkCall::UpdateList { name: s("players"), paths: vec![s("capacity")], capacity: 7, values: vec![] },
        SdkCall::Shutdown,
    ])
}

fn identity(gs: &stadion_crds::GameServer) -> (String, String) {
    let creation = gs.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()).expect("creation time");
    (creation.to_string(), gs.metadata.uid.clone().expect("uid"))
}

fn check(sidecar: &support::Sidecar, creation: &str, uid: &str) {
    let seen: BTreeSet<SdkCall> = sidecar.calls().into_iter().collect();
    let want = expected(creation, uid);
    let missing: Vec<_> = want.difference(&seen).collect();
    let extra: Vec<_> = seen.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}; unexpected {extra:?}");
}

#[tokio::test]
async fn grpc_client_sequence() {
    let sidecar = support::start(support::game_server()).await;
    let sdk = sidecar.client().await;

    let mut watch = sdk.watch_game_server().await.expect("watch");
    let first = watch.next().await.expect("current").expect("ok");
    sdk.ready().await.expect("ready");
    sdk.reserve(Duration::from_secs(5)).await.expect("reserve");
    sdk.allocate().await.expect("allocate");
    let health = sdk.health();
    health.ping().await.expect("ping");
    health.close().await.expect("health closes");
    let gs = sdk.game_server().await.expect("get");
    let meta = gs.object_meta.expect("meta");
    assert_eq!(Some(meta.uid.clone()), first.object_meta.map(|m| m.uid), "watch and get agree");
    sdk.set_label("creation", meta.creation_timestamp.to_string()).await.expect("label");
    sdk.set_annotation("uid", meta.uid.clone()).await.expect("annotation");
    let beta = sdk.beta();
    beta.get_counter("rooms").await.expect("counter");
    beta.increment_counter("rooms", 2).await.expect("increment");
    let set = beta::CounterUpdateRequest { name: "rooms".into(), count: Some(0), capacity: Some(5), count_diff: 0 };
    beta.update_counter(set).await.expect("set count and capacity");
    beta.get_list("players").await.expect("list");
    beta.add_list_value("players", "p9").await.expect("add");
    beta.remove_list_value("players", "a").await.expect("remove");
    beta.set_list_capacity("players", 7).await.expect("capacity");
    sdk.shutdown().await.expect("shutdown");

    let gs = sidecar.game_server().await;
    assert_eq!(gs.state(), Some(GameServerState::Shutdown));
    let (creation, uid) = identity(&gs);
    assert_eq!(creation, meta.creation_timestamp.to_string());
    check(&sidecar, &creation, &uid);
}

#[tokio::test]
async fn rest_client_sequence() {
    let sidecar = support::start(support::game_server()).await;
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, body: &str| {
        let request = http.request(method, sidecar.http(path)).header("content-type", "application/json");
        let request = if body.is_empty() { request } else { request.body(body.to_owned()) };
        async move {
            let response = request.send().await.expect("request");
            assert!(response.status().is_success(), "{}: {}", response.url(), response.status());
            response.json::<Value>().await.expect("JSON response")
        }
    };
    use reqwest::Method as M;

    let watch = http.get(sidecar.http("/watch/gameserver")).send().await.expect("watch");
    let mut chunks = watch.bytes_stream();
    let first = chunks.next().await.expect("first chunk").expect("ok");
    assert!(first.ends_with(b"\n"));
    send(M::POST, "/ready", "{}").await;
    send(M::POST, "/reserve", r#"{"seconds": "5"}"#).await;
    send(M::POST, "/allocate", "{}").await;
    send(M::POST, "/health", "{}").await;
    let gs = send(M::GET, "/gameserver", "").await;
    let creation = gs["object_meta"]["creation_timestamp"].as_str().expect("int64 string").to_owned();
    let uid = gs["object_meta"]["uid"].as_str().expect("uid").to_owned();
    send(M::PUT, "/metadata/label", &serde_json::json!({"key": "creation", "value": creation}).to_string()).await;
    send(M::PUT, "/metadata/annotation", &serde_json::json!({"key": "uid", "value": uid}).to_string()).await;
    send(M::GET, "/v1beta1/counters/rooms", "").await;
    send(M::PATCH, "/v1beta1/counters/rooms", r#"{"countDiff": "2"}"#).await;
    send(M::PATCH, "/v1beta1/counters/rooms", r#"{"count": "0", "capacity": "5"}"#).await;
    send(M::GET, "/v1beta1/lists/players", "").await;
    send(M::POST, "/v1beta1/lists/players:addValue", r#"{"value": "p9"}"#).await;
    send(M::POST, "/v1beta1/lists/players:removeValue", r#"{"value": "a"}"#).await;
    send(M::PATCH, "/v1beta1/lists/players", r#"{"capacity": "7"}"#).await;
    send(M::POST, "/shutdown", "{}").await;

    let stored = sidecar.game_server().await;
    assert_eq!(stored.state(), Some(GameServerState::Shutdown));
    let (stored_creation, stored_uid) = identity(&stored);
    assert_eq!((stored_creation.as_str(), stored_uid.as_str()), (creation.as_str(), uid.as_str()));
    check(&sidecar, &creation, &uid);
}

//! The REST gateway over real HTTP: every path, status codes, and grpc-gateway's JSON shapes.

mod support;

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stadion_crds::GameServerState;

/// One client for the whole test binary: building one per request costs TLS setup each time.
static HTTP: std::sync::LazyLock<reqwest::Client> = std::sync::LazyLock::new(reqwest::Client::new);

async fn call(method: reqwest::Method, url: String, body: Option<&str>) -> (StatusCode, Value) {
    let mut request = HTTP.request(method, url);
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_owned());
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn get(url: String) -> (StatusCode, Value) {
    call(reqwest::Method::GET, url, None).await
}

async fn post(url: String, body: &str) -> (StatusCode, Value) {
    call(reqwest::Method::POST, url, Some(body)).await
}

async fn put(url: String, body: &str) -> (StatusCode, Value) {
    call(reqwest::Method::PUT, url, Some(body)).await
}

async fn patch(url: String, body: &str) -> (StatusCode, Value) {
    call(reqwest::Method::PATCH, url, Some(body)).await
}

#[tokio::test]
async fn gameserver_json_has_every_field_snake_case_with_int64_strings() {
    let sidecar = support::start(support::game_server()).await;
    let (status, gs) = get(sidecar.http("/gameserver")).await;
    assert_eq!(status, StatusCode::OK);
    let meta = &gs["object_meta"];
    assert_eq!(meta["name"], "local");
    assert_eq!(meta["namespace"], "default");
    assert!(meta["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(meta["resource_version"].is_string());
    assert_eq!(meta["generation"], "0", "int64 as a string, emitted even when 0");
    assert!(meta["creation_timestamp"].as_str().and_then(|s| s.parse::<i64>().ok()).is_some_and(|t| t > 0));
    assert_eq!(meta["deletion_timestamp"], "0");
    assert_eq!(meta["labels"], json!({}));
    assert_eq!(meta["annotations"], json!({}));
    assert_eq!(
        gs["spec"]["health"],
        json!({"disabled": true, "period_seconds": 5, "failure_threshold": 3, "initial_delay_seconds": 5}),
        "int32 stays a number"
    );
    let status = &gs["status"];
    assert_eq!(status["state"], "Ready");
    assert_eq!(status["address"], "127.0.0.1");
    assert_eq!(status["ports"], json!([{"name": "default", "port": 7777}]));
    assert_eq!(status["players"], json!({"count": "0", "capacity": "2", "ids": []}));
    assert_eq!(status["counters"], json!({"rooms": {"count": "1", "capacity": "10"}}));
    assert_eq!(status["lists"], json!({"players": {"capacity": "3", "values": ["a"]}}));
    assert_eq!(status["addresses"], json!([]));
}

#[tokio::test]
async fn state_paths_and_metadata() {
    let sidecar = support::start(support::game_server()).await;
    assert_eq!(post(sidecar.http("/allocate"), "{}").await, (StatusCode::OK, json!({})));
    assert_eq!(sidecar.game_server().await.state(), Some(GameServerState::Allocated));
    // An Empty body may be omitted, and unknown fields are ignored.
    assert_eq!(post(sidecar.http("/ready"), "").await, (StatusCode::OK, json!({})));
    assert_eq!(post(sidecar.http("/ready"), r#"{"unknown": 1}"#).await, (StatusCode::OK, json!({})));
    assert_eq!(sidecar.game_server().await.state(), Some(GameServerState::Ready));

    assert_eq!(post(sidecar.http("/reserve"), r#"{"seconds": "1"}"#).await.0, StatusCode::OK);
    assert_eq!(sidecar.game_server().await.state(), Some(GameServerState::Reserved));
    let back = support::eventually(Duration::from_secs(3), || async {
        sidecar.game_server().await.state() == Some(GameServerState::Ready)
    })
    .await;
    assert!(back, "reservation from REST expires too");
    assert_eq!(post(sidecar.http("/reserve"), r#"{"seconds": 0}"#).await.0, StatusCode::OK, "numbers accepted too");
    // As in Agones, an Allocated server can be Reserved (backfill), and Ready returns it.
    assert_eq!(post(sidecar.http("/allocate"), "{}").await.0, StatusCode::OK);
    assert_eq!(post(sidecar.http("/reserve"), r#"{"seconds": "60"}"#).await.0, StatusCode::OK);
    assert_eq!(sidecar.game_server().await.state(), Some(GameServerState::Reserved), "Allocated -> Reserved");
    let (status, error) = post(sidecar.http("/reserve"), r#"{"seconds": "9223372036854775807"}"#).await;
    assert_eq!((status, &error["code"]), (StatusCode::BAD_REQUEST, &json!(3)), "no time that far ahead: {error}");
    let reserved = sidecar.game_server().await;
    assert_eq!(reserved.state(), Some(GameServerState::Reserved), "a refused Reserve changes nothing");
    assert!(reserved.status.and_then(|s| s.reserved_until).is_some(), "the 60 s reservation stands");
    assert_eq!(post(sidecar.http("/ready"), "{}").await.0, StatusCode::OK);
    assert_eq!(sidecar.game_server().await.state(), Some(GameServerState::Ready));

    let (status, body) = put(sidecar.http("/metadata/label"), r#"{"key": "mode", "value": "ranked"}"#).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(
        put(sidecar.http("/metadata/annotation"), r#"{"key": "motd", "value": "hi there"}"#).await.0,
        StatusCode::OK
    );
    let (_, gs) = get(sidecar.http("/gameserver")).await;
    assert_eq!(gs["object_meta"]["labels"]["agones.dev/sdk-mode"], "ranked");
    assert_eq!(gs["object_meta"]["annotations"]["agones.dev/sdk-motd"], "hi there");

    let (status, error) = put(sidecar.http("/metadata/label"), r#"{"key": "bad key", "value": "v"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], 3, "INVALID_ARGUMENT");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("bad key")), "{error}");
    assert_eq!(error["details"], json!([]));

    assert_eq!(post(sidecar.http("/shutdown"), "{}").await, (StatusCode::OK, json!({})));
    assert_eq!(sidecar.game_server().await.state(), Some(GameServerState::Shutdown));
    // A game that reads its state right after Shutdown gets an answer, in the gateway's shape.
    let (status, gs) = get(sidecar.http("/gameserver")).await;
    assert_eq!((status, &gs["status"]["state"]), (StatusCode::OK, &json!("Shutdown")), "{gs}");
    assert_eq!(post(sidecar.http("/health"), "{}").await.0, StatusCode::OK, "health pings after Shutdown are harmless");
}

#[tokio::test]
async fn health_requires_a_json_object_body() {
    let sidecar = support::start(support::game_server()).await;
    let (status, error) = post(sidecar.http("/health"), "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["message"].as_str().is_some_and(|m| m.contains("{}")), "{error}");
    assert_eq!(post(sidecar.http("/health"), "[]").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(post(sidecar.http("/health"), "{}").await, (StatusCode::OK, json!({})));
    assert_eq!(post(sidecar.http("/health"), "{}\n{}").await.0, StatusCode::OK, "a stream of pings");
    let pings = sidecar.calls().iter().filter(|c| **c == stadion_sdk::server::SdkCall::Health).count();
    assert_eq!(pings, 3);
}

#[tokio::test]
async fn bad_json_is_a_400_with_a_message() {
    let sidecar = support::start(support::game_server()).await;
    for (path, body) in [("/metadata/label", "{not json"), ("/reserve", r#"{"seconds": "#), ("/ready", "nope")] {
        let (status, error) = call(
            if path == "/metadata/label" { reqwest::Method::PUT } else { reqwest::Method::POST },
            sidecar.http(path),
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(error["code"], 3, "{path}");
        assert!(error["message"].as_str().is_some_and(|m| m.contains("invalid JSON")), "{path}: {error}");
    }
    // Wrong types for known fields.
    let (status, error) = post(sidecar.http("/reserve"), r#"{"seconds": "soon"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["message"].as_str().is_some_and(|m| m.contains("Duration.seconds")), "{error}");
    let (status, _) = put(sidecar.http("/metadata/label"), r#"{"key": 5, "value": "v"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = put(sidecar.http("/metadata/label"), r#"["key", "value"]"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = patch(sidecar.http("/v1beta1/counters/rooms"), r#"{"countDiff": true}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = patch(sidecar.http("/v1beta1/lists/players"), r#"{"values": [1, 2]}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(get(sidecar.http("/gameserver")).await.0, StatusCode::OK, "still serving");
}

#[tokio::test]
async fn watch_streams_newline_delimited_results() {
    let sidecar = support::start(support::game_server()).await;
    let response = HTTP.get(sidecar.http("/watch/gameserver")).send().await.expect("watch");
    assert_eq!(response.status(), StatusCode::OK);
    let mut chunks = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut results: Vec<Value> = Vec::new();
    let mut changed = false;
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = chunks.next().await {
            buffer.extend_from_slice(&chunk.expect("chunk"));
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let value: Value = serde_json::from_slice(&line).expect("each line is one JSON object");
                results.push(value["result"].clone());
                if !changed {
                    changed = true;
                    assert_eq!(
                        put(sidecar.http("/metadata/label"), r#"{"key": "k", "value": "v"}"#).await.0,
                        StatusCode::OK
                    );
                }
            }
            if results.iter().any(|r| r["object_meta"]["labels"]["agones.dev/sdk-k"] == "v") {
                return;
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "saw the change on the stream: {results:?}");
    assert_eq!(results[0]["status"]["state"], "Ready", "the current object comes first");
    assert!(results[0]["object_meta"]["generation"].is_string());
}

#[tokio::test]
async fn alpha_player_paths() {
    let sidecar = support::start(support::game_server()).await;
    assert_eq!(get(sidecar.http("/alpha/player/capacity")).await, (StatusCode::OK, json!({"count": "2"})));
    assert_eq!(put(sidecar.http("/alpha/player/capacity"), r#"{"count": "3"}"#).await, (StatusCode::OK, json!({})));
    assert_eq!(get(sidecar.http("/alpha/player/capacity")).await.1, json!({"count": "3"}));
    assert_eq!(
        post(sidecar.http("/alpha/player/connect"), r#"{"playerID": "p1"}"#).await,
        (StatusCode::OK, json!({"bool": true}))
    );
    assert_eq!(post(sidecar.http("/alpha/player/connect"), r#"{"playerID": "p1"}"#).await.1, json!({"bool": false}));
    assert_eq!(post(sidecar.http("/alpha/player/connect"), r#"{"playerID": "p2"}"#).await.1, json!({"bool": true}));
    assert_eq!(get(sidecar.http("/alpha/player/count")).await, (StatusCode::OK, json!({"count": "2"})));
    assert_eq!(get(sidecar.http("/alpha/player/connected/p2")).await, (StatusCode::OK, json!({"bool": true})));
    assert_eq!(get(sidecar.http("/alpha/player/connected/zz")).await.1, json!({"bool": false}));
    assert_eq!(get(sidecar.http("/alpha/player/connected")).await, (StatusCode::OK, json!({"list": ["p1", "p2"]})));
    assert_eq!(post(sidecar.http("/alpha/player/disconnect"), r#"{"playerID": "p1"}"#).await.1, json!({"bool": true}));
    assert_eq!(post(sidecar.http("/alpha/player/disconnect"), r#"{"playerID": "p1"}"#).await.1, json!({"bool": false}));
    put(sidecar.http("/alpha/player/capacity"), r#"{"count": "1"}"#).await;
    let (status, error) = post(sidecar.http("/alpha/player/connect"), r#"{"playerID": "p3"}"#).await;
    assert_eq!((status, error["code"].clone()), (StatusCode::BAD_REQUEST, json!(11)), "OUT_OF_RANGE at capacity");
}

#[tokio::test]
async fn beta_counter_and_list_paths() {
    let sidecar = support::start(support::game_server()).await;
    let counter = |count: &str, capacity: &str| json!({"name": "rooms", "count": count, "capacity": capacity});
    assert_eq!(get(sidecar.http("/v1beta1/counters/rooms")).await, (StatusCode::OK, counter("1", "10")));
    assert_eq!(
        patch(sidecar.http("/v1beta1/counters/rooms"), r#"{"countDiff": "2"}"#).await,
        (StatusCode::OK, counter("3", "10"))
    );
    assert_eq!(patch(sidecar.http("/v1beta1/counters/rooms"), r#"{"count": "7"}"#).await.1, counter("7", "10"));
    assert_eq!(patch(sidecar.http("/v1beta1/counters/rooms"), r#"{"capacity": "8"}"#).await.1, counter("7", "8"));
    let (status, error) = patch(sidecar.http("/v1beta1/counters/rooms"), r#"{"countDiff": "5"}"#).await;
    assert_eq!((status, error["code"].clone()), (StatusCode::BAD_REQUEST, json!(11)), "OUT_OF_RANGE");
    let (status, error) = get(sidecar.http("/v1beta1/counters/nope")).await;
    assert_eq!((status, error["code"].clone()), (StatusCode::NOT_FOUND, json!(5)));

    let list = |capacity: &str, values: &[&str]| json!({"name": "players", "capacity": capacity, "values": values});
    assert_eq!(get(sidecar.http("/v1beta1/lists/players")).await, (StatusCode::OK, list("3", &["a"])));
    assert_eq!(
        post(sidecar.http("/v1beta1/lists/players:addValue"), r#"{"value": "b"}"#).await,
        (StatusCode::OK, list("3", &["a", "b"]))
    );
    let (status, error) = post(sidecar.http("/v1beta1/lists/players:addValue"), r#"{"value": "b"}"#).await;
    assert_eq!((status, error["code"].clone()), (StatusCode::CONFLICT, json!(6)), "ALREADY_EXISTS");
    assert_eq!(
        post(sidecar.http("/v1beta1/lists/players:removeValue"), r#"{"value": "a"}"#).await.1,
        list("3", &["b"])
    );
    let (status, error) = post(sidecar.http("/v1beta1/lists/players:removeValue"), r#"{"value": "a"}"#).await;
    assert_eq!((status, error["code"].clone()), (StatusCode::NOT_FOUND, json!(5)));
    // The mask comes from the body's fields, or from ?update_mask=.
    assert_eq!(
        patch(sidecar.http("/v1beta1/lists/players"), r#"{"capacity": "10"}"#).await,
        (StatusCode::OK, list("10", &["b"]))
    );
    let (status, body) =
        patch(sidecar.http("/v1beta1/lists/players?update_mask=values"), r#"{"capacity": "1", "values": ["x", "y"]}"#)
            .await;
    assert_eq!((status, body), (StatusCode::OK, list("10", &["x", "y"])));
    let (status, error) = patch(sidecar.http("/v1beta1/lists/players?update_mask=bogus"), r#"{}"#).await;
    assert_eq!((status, error["code"].clone()), (StatusCode::BAD_REQUEST, json!(3)));
    let (status, _) = post(sidecar.http("/v1beta1/lists/players:explode"), r#"{"value": "a"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(sidecar.http("/v1beta1/lists/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn healthz_unknown_paths_and_methods() {
    let sidecar = support::start(support::game_server()).await;
    let response = HTTP.get(sidecar.http("/healthz")).send().await.expect("healthz");
    assert_eq!(response.status(), StatusCode::OK);
    let (status, error) = get(sidecar.http("/no/such/path")).await;
    assert_eq!((status, error["code"].clone()), (StatusCode::NOT_FOUND, json!(5)));
    let (status, error) = get(sidecar.http("/ready")).await;
    assert_eq!((status, error["code"].clone()), (StatusCode::METHOD_NOT_ALLOWED, json!(12)));
}

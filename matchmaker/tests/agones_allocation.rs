//! Agones' allocation API on the matchmaker's listener: the generated tonic client over a real
//! loopback socket (HTTP/2 prior knowledge) and REST with reqwest, against an in-memory fleet.

mod support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use stadion_crds::gameserver::GameServerState;
use stadion_sdk::allocation as pb;
use stadion_sdk::allocation::allocation_service_client::AllocationServiceClient;
use support::{DUEL, FakeFleet, TestServer, config};
use tonic::transport::Channel;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

async fn grpc_client(server: &TestServer) -> AllocationServiceClient<Channel> {
    AllocationServiceClient::connect(server.base.clone()).await.expect("gRPC connects over h2c")
}

async fn post_rest(server: &TestServer, body: &str) -> (u16, Value) {
    let response = server
        .client
        .post(server.url("/gameserverallocation"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn allocates_over_grpc_and_rest_on_the_matchmaker_port() {
    let fleet = FakeFleet::new(2);
    let server = TestServer::start(config(DUEL), fleet.clone()).await;

    let mut first = pb::GameServerSelector {
        match_labels: labels(&[("agones.dev/fleet", "blue")]),
        game_server_state: pb::game_server_selector::GameServerState::Allocated as i32,
        ..Default::default()
    };
    first.counters.insert("rooms".into(), pb::CounterSelector { min_available: 1, ..Default::default() });
    let second =
        pb::GameServerSelector { match_labels: labels(&[("agones.dev/fleet", "green")]), ..Default::default() };
    let mut request = pb::AllocationRequest {
        namespace: "games".into(),
        game_server_selectors: vec![first, second],
        metadata: Some(pb::MetaPatch { labels: labels(&[("match", "m-1")]), annotations: labels(&[("map", "dust2")]) }),
        ..Default::default()
    };
    request.counters.insert(
        "rooms".into(),
        pb::CounterAction { action: Some("Increment".into()), amount: Some(1), capacity: None },
    );
    let response = grpc_client(&server).await.allocate(request).await.expect("allocated").into_inner();
    assert_eq!(response.game_server_name, "gs-0");
    assert_eq!(response.ports.len(), 1);
    assert_eq!((response.ports[0].name.as_str(), response.ports[0].port), ("default", 7000));
    assert_eq!(response.address, "10.0.0.7");
    assert_eq!(response.node_name, "node-a");
    assert_eq!(response.source, "local");
    assert_eq!(response.metadata.map(|m| m.labels), Some(labels(&[("match", "m-1")])));

    let seen = fleet.requests.lock().unwrap()[0].clone();
    assert_eq!(seen.metadata.namespace.as_deref(), Some("games"));
    let selectors = &seen.spec.selectors;
    assert_eq!(selectors.len(), 2);
    assert_eq!(selectors[0].label_selector.match_labels, Some(labels(&[("agones.dev/fleet", "blue")])));
    assert_eq!(selectors[0].game_server_state, Some(GameServerState::Allocated));
    assert_eq!(selectors[0].counters["rooms"].min_available, 1);
    assert_eq!(selectors[1].label_selector.match_labels, Some(labels(&[("agones.dev/fleet", "green")])));
    assert_eq!(selectors[1].game_server_state, Some(GameServerState::Ready));
    assert_eq!(seen.spec.metadata.clone().unwrap_or_default().annotations, labels(&[("map", "dust2")]));
    assert_eq!(seen.spec.counters["rooms"].amount, Some(1));

    let (status, body) = post_rest(
        &server,
        r#"{"gameServerSelectors": [{"matchLabels": {"agones.dev/fleet": "green"}, "gameServerState": "READY"}],
            "scheduling": "Distributed", "metadata": {"labels": {"match": "m-2"}}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["gameServerName"], "gs-1");
    assert_eq!(body["ports"], json!([{"name": "default", "port": 7001}]));
    assert_eq!(body["address"], "10.0.0.7");
    assert_eq!(body["nodeName"], "node-a");
    assert_eq!(body["source"], "local");
    assert_eq!(body["metadata"]["labels"]["match"], "m-2");
    assert_eq!(body["addresses"], json!([]));
    let seen = fleet.requests.lock().unwrap()[1].clone();
    assert_eq!(seen.metadata.namespace.as_deref(), Some("default"));

    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"stadion_matchmaker_allocations_total{source="agones"} 2"#), "{metrics}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_free_server_is_resource_exhausted_and_429() {
    let server = TestServer::start(config(DUEL), FakeFleet::new(0)).await;
    let status = grpc_client(&server).await.allocate(pb::AllocationRequest::default()).await.expect_err("none free");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    let (code, body) = post_rest(&server, r#"{"namespace": "default"}"#).await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["code"], 8);
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(body["message"].as_str().unwrap_or_default().contains("no game server"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_requests_are_invalid_argument_and_400_naming_the_field() {
    let fleet = FakeFleet::new(1);
    let server = TestServer::start(config(DUEL), fleet.clone()).await;
    let mut client = grpc_client(&server).await;

    let request = pb::AllocationRequest {
        game_server_selectors: vec![pb::GameServerSelector { game_server_state: 4, ..Default::default() }],
        ..Default::default()
    };
    let status = client.allocate(request).await.expect_err("unknown enum");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("gameServerSelectors[0].gameServerState"), "{}", status.message());

    let request = pb::AllocationRequest {
        multi_cluster_setting: Some(pb::MultiClusterSetting { enabled: true, policy_selector: None }),
        ..Default::default()
    };
    let status = client.allocate(request).await.expect_err("multi-cluster");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("multiClusterSetting.enabled"), "{}", status.message());

    for (body, field) in [
        (
            r#"{"gameServerSelectors": [{"matchLabels": {"bad key!": "x"}}]}"#,
            "gameServerSelectors[0].matchLabels[bad key!]",
        ),
        (r#"{"gameServerSelectors": [{"gameServerState": "SLEEPING"}]}"#, "gameServerSelectors[0].gameServerState"),
        (r#"{"multiClusterSetting": {"enabled": true}}"#, "multiClusterSetting.enabled"),
        (r#"{"lists": {"players": {"capacity": 5000}}}"#, "lists[players].capacity"),
        (r#"{"metadata": {"labels": {"k": "not valid!"}}}"#, "metadata.labels"),
    ] {
        let (code, response) = post_rest(&server, body).await;
        assert_eq!(code, 400, "{body} → {response}");
        assert_eq!(response["code"], 3, "{response}");
        let named = response["error"]["field"].as_str().unwrap_or_default();
        assert!(named.starts_with(field), "{body} → {response}");
        assert!(response["error"]["message"].as_str().unwrap_or_default().contains(field), "{response}");
    }
    let (code, response) = post_rest(&server, r#"{"gameServerSelectors": ["#).await;
    assert_eq!(code, 400, "{response}");
    assert_eq!(response["error"]["code"], "malformed_body");

    // A misspelt key anywhere is refused with its path instead of widening the choice.
    for (body, field) in [
        (
            r#"{"gameServerSelectors": [{"matchLabel": {"agones.dev/fleet": "blue"}}]}"#,
            "gameServerSelectors[0].matchLabel",
        ),
        (r#"{"namespace": "default", "unknownField": 1}"#, "unknownField"),
        (
            r#"{"gameServerSelectors": [{"counters": {"rooms": {"minCnt": 1}}}]}"#,
            "gameServerSelectors[0].counters.rooms.minCnt",
        ),
        (r#"{"metadata": {"label": {"match": "m"}}}"#, "metadata.label"),
        (r#"{"priorities": [{"type": "Counter", "key": "rooms", "ordr": "Ascending"}]}"#, "priorities[0].ordr"),
    ] {
        let (code, response) = post_rest(&server, body).await;
        assert_eq!(code, 422, "{body} → {response}");
        assert_eq!(response["code"], 3, "{response}");
        assert_eq!(response["error"]["field"], field, "{body} → {response}");
        assert!(response["message"].as_str().unwrap_or_default().contains("unknown field"), "{response}");
    }

    assert_eq!(fleet.request_count(), 0, "invalid requests reached the allocator");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bearer_auth_covers_grpc_metadata_and_rest() {
    let mut config = config(DUEL);
    config.http.tokens = vec!["s3cret".to_owned()];
    let server = TestServer::start(config, FakeFleet::new(2)).await;
    let mut client = grpc_client(&server).await;

    let status = client.allocate(pb::AllocationRequest::default()).await.expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let mut request = tonic::Request::new(pb::AllocationRequest::default());
    request.metadata_mut().insert("authorization", "Bearer s3cret".parse().unwrap());
    let response = client.allocate(request).await.expect("token accepted").into_inner();
    assert_eq!(response.game_server_name, "gs-0");

    let (code, _) = post_rest(&server, "{}").await;
    assert_eq!(code, 401);
    let response = server
        .client
        .post(server.url("/gameserverallocation"))
        .bearer_auth("s3cret")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_match_expression_operator_arrives_over_grpc_as_agones_encodes_it() {
    use pb::label_match_expressions::Operator;
    let fleet = FakeFleet::new(1);
    let server = TestServer::start(config(DUEL), fleet.clone()).await;
    let expression = |key: &str, operator: Operator, values: &[&str]| pb::LabelMatchExpressions {
        key: key.into(),
        operator: operator as i32,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    };
    let selector = pb::GameServerSelector {
        match_expressions: vec![
            // In is 0: on the wire it is the field left out, and must still mean In.
            expression("tier", Operator::In, &["gold"]),
            expression("region", Operator::NotIn, &["eu"]),
            expression("map", Operator::Exists, &[]),
            expression("canary", Operator::DoesNotExist, &[]),
        ],
        ..Default::default()
    };
    let request = pb::AllocationRequest { game_server_selectors: vec![selector], ..Default::default() };
    grpc_client(&server).await.allocate(request).await.expect("allocated");
    let seen = fleet.requests.lock().unwrap().clone();
    let expressions = seen[0].spec.selectors[0].label_selector.match_expressions.clone().expect("expressions");
    let operators: Vec<&str> = expressions.iter().map(|e| e.operator.as_str()).collect();
    assert_eq!(operators, ["In", "NotIn", "Exists", "DoesNotExist"]);

    // An operator number Agones does not have is refused, naming the field.
    let bad = pb::GameServerSelector {
        match_expressions: vec![pb::LabelMatchExpressions { key: "x".into(), operator: 7, values: vec![] }],
        ..Default::default()
    };
    let request = pb::AllocationRequest { game_server_selectors: vec![bad], ..Default::default() };
    let status = grpc_client(&server).await.allocate(request).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("matchExpressions[0].operator"), "{}", status.message());
}

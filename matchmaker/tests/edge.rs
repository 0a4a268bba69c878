//! The HTTP edge over real sockets: every error code, auth, limits, direct allocation,
//! health, metrics, OpenAPI and graceful shutdown.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{DUEL, FakeFleet, TestServer, config, solo};

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{body}");
    (status, body["error"].clone())
}

#[tokio::test]
async fn malformed_json_is_400() {
    let server = TestServer::start(config(DUEL), FakeFleet::new(0)).await;
    let response = server
        .client
        .post(server.url("/v1/tickets"))
        .header("content-type", "application/json")
        .body("{\"queue\": ")
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "malformed_body");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_tickets_are_422_naming_the_field() {
    let server = TestServer::start(config(DUEL), FakeFleet::new(0)).await;
    let cases = [
        (json!({"queue": "nope", "players": [{"id": "a"}]}), "queue"),
        (json!({"queue": "duel", "players": []}), "players"),
        (json!({"queue": "duel", "players": [{"id": "a"}]}), "players[0].attributes.mmr"),
        (
            json!({"queue": "duel", "players": [{"id": "a", "attributes": {"mmr": "high"}}]}),
            "players[0].attributes.mmr",
        ),
        (
            json!({"queue": "duel", "players": [{"id": "a", "attributes": {"mmr": 1}}, {"id": "b", "attributes": {"mmr": 1}}, {"id": "c", "attributes": {"mmr": 1}}]}),
            "players",
        ),
        (json!({"queue": "duel", "players": "everyone"}), "players"),
        (json!({"queue": "duel", "players": [{"id": "a", "attributes": {"mmr": 1}}], "extra": 1}), "extra"),
        (json!({"queue": "duel", "players": [{"id": "a", "attribute": {"mmr": 1}}]}), "players[0].attribute"),
        (
            json!({"queue": "duel", "players": [{"id": "a", "attributes": {"mmr": 1}}], "idempotencyKy": "k"}),
            "idempotencyKy",
        ),
    ];
    for (body, field) in cases {
        let response = server.client.post(server.url("/v1/tickets")).json(&body).send().await.unwrap();
        let (status, error) = error_of(response).await;
        assert_eq!(status, 422, "{body} → {error}");
        assert_eq!(error["code"], "invalid");
        if !field.is_empty() {
            assert_eq!(error["field"], field, "{body} → {error}");
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_tickets_and_routes_are_404() {
    let server = TestServer::start(config(DUEL), FakeFleet::new(0)).await;
    for path in ["/v1/tickets/not-a-uuid", "/v1/tickets/6a1c7c1e-2b0a-4d8e-9f6e-000000000000", "/nowhere"] {
        let (status, error) = error_of(server.client.get(server.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(error["code"], "not_found");
    }
    let response =
        server.client.delete(server.url("/v1/tickets/6a1c7c1e-2b0a-4d8e-9f6e-000000000000")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let events =
        server.client.get(server.url("/v1/tickets/6a1c7c1e-2b0a-4d8e-9f6e-000000000000/events")).send().await.unwrap();
    assert_eq!(events.status(), 404);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_player_with_a_live_ticket_is_409() {
    let server = TestServer::start(config(DUEL), FakeFleet::new(0)).await;
    assert_eq!(server.post_ticket(&solo("duel", "uma", 1.0)).await.0, 201);
    let (status, body) = server.post_ticket(&solo("duel", "uma", 1.0)).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["field"], "players[0].id");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let cfg = config(&format!("http: {{maxBodyBytes: 2048}}\n{DUEL}"));
    let server = TestServer::start(cfg, FakeFleet::new(0)).await;
    let mut body = solo("duel", "vic", 1.0);
    body["players"][0]["attributes"]["bio"] = json!("x".repeat(4096));
    let (status, error) =
        error_of(server.client.post(server.url("/v1/tickets")).json(&body).send().await.unwrap()).await;
    assert_eq!(status, 413);
    assert_eq!(error["code"], "payload_too_large");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn direct_allocation_returns_a_server_then_429_when_none_is_free() {
    let fleet = FakeFleet::new(1);
    let server = TestServer::start(config(DUEL), fleet.clone()).await;
    let body = json!({
        "apiVersion": "allocation.agones.dev/v1",
        "kind": "GameServerAllocation",
        "spec": {"selectors": [{"matchLabels": {"agones.dev/fleet": "arena"}}], "metadata": {"labels": {"mode": "custom"}}}
    });
    let response = server.client.post(server.url("/v1/allocations")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let status: Value = response.json().await.unwrap();
    assert_eq!(status["gameServerName"], "gs-0");
    assert_eq!(status["address"], "10.0.0.7");
    assert_eq!(status["ports"][0]["port"], 7000);
    assert_eq!(status["nodeName"], "node-a");
    assert_eq!(status["state"], "Allocated");
    assert_eq!(status["metadata"]["labels"]["mode"], "custom");
    let sent = fleet.requests.lock().unwrap()[0].clone();
    assert_eq!(
        sent.spec.selectors[0].game_server_state,
        Some(stadion_crds::GameServerState::Ready),
        "defaults applied"
    );

    let response = server.client.post(server.url("/v1/allocations")).json(&body).send().await.unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(status, 429);
    assert_eq!(error["code"], "unavailable");

    fleet.backend_failures.store(1, std::sync::atomic::Ordering::SeqCst);
    let response = server.client.post(server.url("/v1/allocations")).json(&body).send().await.unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(status, 503);
    assert_eq!(error["code"], "backend");

    let wrong_kind = json!({"kind": "Fleet", "spec": {}});
    let (status, error) =
        error_of(server.client.post(server.url("/v1/allocations")).json(&wrong_kind).send().await.unwrap()).await;
    assert_eq!(status, 422);
    assert_eq!(error["field"], "kind");
    let wrong_shape = json!({"spec": {"selectors": "all"}});
    let (status, error) =
        error_of(server.client.post(server.url("/v1/allocations")).json(&wrong_shape).send().await.unwrap()).await;
    assert_eq!(status, 422);
    assert_eq!(error["field"], "spec.selectors");
    let before = fleet.request_count();
    for (typo, field) in [
        (
            json!({"spec": {"selectors": [{"matchLabel": {"agones.dev/fleet": "arena"}}]}}),
            "spec.selectors[0].matchLabel",
        ),
        (json!({"spec": {"selector": [{"matchLabels": {"agones.dev/fleet": "arena"}}]}}), "spec.selector"),
        (json!({"spec": {"metadata": {"label": {"mode": "x"}}}}), "spec.metadata.label"),
        (json!({"specs": {}}), "specs"),
    ] {
        let response = server.client.post(server.url("/v1/allocations")).json(&typo).send().await.unwrap();
        let (status, error) = error_of(response).await;
        assert_eq!(status, 422, "{typo} → {error}");
        assert_eq!(error["code"], "invalid", "{error}");
        assert_eq!(error["field"], field, "{typo} → {error}");
    }
    assert_eq!(fleet.request_count(), before, "a body with unknown fields reached the allocator");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bearer_auth_guards_the_api_but_not_health_metrics_or_openapi() {
    let dir = std::env::temp_dir().join(format!("stadion-mm-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tokens"), "# ops\ns3cret\n\n").unwrap();
    std::fs::write(dir.join("mm.yaml"), format!("tickInterval: 20ms\nhttp:\n  auth: {{tokensFile: tokens}}\n{DUEL}"))
        .unwrap();
    let cfg = stadion_matchmaker::MatchmakerConfig::from_yaml_file(dir.join("mm.yaml")).unwrap();
    let server = TestServer::start(cfg, FakeFleet::new(0)).await;

    let response = server.client.post(server.url("/v1/tickets")).json(&solo("duel", "w", 1.0)).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, error) = error_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(error["code"], "unauthorized");
    let wrong = server.client.get(server.url("/v1/tickets/x")).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = server
        .client
        .post(server.url("/v1/tickets"))
        .bearer_auth("s3cret")
        .json(&solo("duel", "w", 1.0))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    for open in ["/healthz", "/metrics", "/openapi.json"] {
        assert_eq!(server.client.get(server.url(open)).send().await.unwrap().status(), 200, "{open}");
    }
    server.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn health_openapi_and_metrics() {
    // Two servers: probing `POST /gameserverallocation` below allocates one (an empty body is
    // a valid Agones request), and the duel needs the other.
    let server = TestServer::start(config(DUEL), FakeFleet::new(2)).await;
    let health: Value = server.client.get(server.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");

    let doc: Value = server.client.get(server.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    for (method, path) in stadion_matchmaker::http::ROUTES {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        // Every documented route answers (not with the 404 fallback or 405).
        let request = server.client.request(
            method.to_uppercase().parse().unwrap(),
            server.url(&path.replace("{id}", "00000000-0000-0000-0000-000000000000")),
        );
        let status = request.send().await.unwrap().status().as_u16();
        let answered = status != 405 && (status != 404 || path.contains("{id}"));
        assert!(answered, "{method} {path} → {status}");
    }

    let (_, a) = server.post_ticket(&solo("duel", "xia", 1.0)).await;
    server.post_ticket(&solo("duel", "yan", 1.0)).await;
    server.wait_for_state(a["id"].as_str().unwrap(), "assigned").await;
    let response = server.client.get(server.url("/metrics")).send().await.unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    for expected in [
        r#"stadion_matchmaker_tickets{queue="duel",state="assigned"} 2"#,
        r#"stadion_matchmaker_tickets{queue="duel",state="searching"} 0"#,
        r#"stadion_matchmaker_matches_total{queue="duel"} 1"#,
        r#"stadion_matchmaker_time_to_match_seconds_count{queue="duel"} 2"#,
        r#"stadion_matchmaker_time_to_assign_seconds_count{queue="duel"} 2"#,
        r#"stadion_matchmaker_allocations_total{source="match"} 1"#,
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_answers_in_flight_requests_and_ends_event_streams() {
    let fleet = FakeFleet::new(1);
    *fleet.delay.lock().unwrap() = Duration::from_millis(300);
    let server = TestServer::start(config(DUEL), fleet.clone()).await;
    let (_, lone) = server.post_ticket(&solo("duel", "zed", 1.0)).await;
    let stream = server
        .client
        .get(server.url(&format!("/v1/tickets/{}/events", lone["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    let in_flight = tokio::spawn({
        let request = server.client.post(server.url("/v1/allocations")).json(&json!({"spec": {}}));
        async move { request.send().await.unwrap().status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown().await.unwrap();
    assert_eq!(in_flight.await.unwrap(), 200, "the in-flight allocation is answered");
    let events = support::read_events(stream).await;
    assert_eq!(events[0]["state"], "searching", "the stream closed cleanly after its first event");
}

//! The matchmaker's listener against hostile or careless clients: timeouts, JSON errors for
//! unknown routes and methods, JSON-only bodies, and the Bearer scheme in any case.

mod support;

use std::time::Duration;

use serde_json::Value;
use stadion_sdk::http_server::HttpTimeouts;
use stadion_sdk::http_server::probe::until_closed;
use support::{DUEL, FakeFleet, TestServer, config, solo};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn server() -> TestServer {
    TestServer::start_with(config(DUEL), FakeFleet::new(1), HttpTimeouts::all(Duration::from_secs(1))).await
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    (status, body["error"].clone())
}

fn host(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn half_open_connections_are_closed_and_a_missing_body_is_408() {
    let server = server().await;
    let mut silent = TcpStream::connect(host(&server)).await.expect("connect");
    let (_, closed) = until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(closed.is_some_and(|c| c < Duration::from_secs(3)), "closed after {closed:?}");

    let mut client = TcpStream::connect(host(&server)).await.expect("connect");
    let head = "POST /v1/tickets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 80\r\n\r\n";
    client.write_all(format!("{head}{{\"queue\":").as_bytes()).await.expect("write");
    let (seen, closed) = until_closed(&mut client, Duration::from_secs(5)).await;
    assert!(seen.starts_with("HTTP/1.1 408") && seen.contains(r#""code":"request_timeout""#), "{seen}");
    assert!(closed.is_some_and(|c| c < Duration::from_secs(3)), "closed after {closed:?}");
    // Still serving.
    let (status, _) = server.post_ticket(&solo("duel", "p1", 1.0)).await;
    assert_eq!(status, 201);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let server = server().await;
    let (status, error) = error_of(server.client.get(server.url("/v2/nothing")).send().await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")));
    for (method, path) in [
        (reqwest::Method::PUT, "/v1/tickets"),
        (reqwest::Method::GET, "/v1/allocations"),
        (reqwest::Method::POST, "/v1/tickets/abc"),
        (reqwest::Method::DELETE, "/healthz"),
    ] {
        let response = server.client.request(method.clone(), server.url(path)).send().await.unwrap();
        let (status, error) = error_of(response).await;
        assert_eq!((status, error["code"].as_str()), (405, Some("method_not_allowed")), "{method} {path}");
    }
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn post_bodies_must_be_json() {
    let server = server().await;
    let body = serde_json::to_string(&solo("duel", "p1", 1.0)).unwrap();
    for path in ["/v1/tickets", "/v1/allocations", "/gameserverallocation"] {
        for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
            let mut request = server.client.post(server.url(path)).body(body.clone());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let (status, error) = error_of(request.send().await.unwrap()).await;
            assert_eq!(
                (status, error["code"].as_str()),
                (415, Some("unsupported_media_type")),
                "{path} {content_type:?}"
            );
            assert!(error["message"].as_str().is_some_and(|m| m.contains("application/json")), "{error}");
        }
    }
    let response = server
        .client
        .post(server.url("/v1/tickets"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let dir = std::env::temp_dir().join(format!("stadion-mm-bearer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tokens"), "s3cret\n").unwrap();
    std::fs::write(dir.join("mm.yaml"), format!("tickInterval: 20ms\nhttp:\n  auth: {{tokensFile: tokens}}\n{DUEL}"))
        .unwrap();
    let cfg = stadion_matchmaker::MatchmakerConfig::from_yaml_file(dir.join("mm.yaml")).unwrap();
    let server = TestServer::start(cfg, FakeFleet::new(0)).await;
    for (n, scheme) in ["Bearer", "bearer", "BEARER", "bEaReR"].into_iter().enumerate() {
        let response = server
            .client
            .post(server.url("/v1/tickets"))
            .header("authorization", format!("{scheme} s3cret"))
            .json(&solo("duel", &format!("p{n}"), 1.0))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{scheme}");
    }
    for value in ["Basic s3cret", "bearer guess", "s3cret"] {
        let response = server
            .client
            .post(server.url("/v1/tickets"))
            .header("authorization", value)
            .json(&solo("duel", "x", 1.0))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{value}");
    }
    server.shutdown().await.expect("shutdown");
    let _ = std::fs::remove_dir_all(dir);
}

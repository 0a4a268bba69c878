//! The sidecar's two ports against hostile or broken clients: timeouts, JSON-only bodies,
//! browser refusal, and a watch that never buffers more than the latest state.

mod support;

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use stadion_sdk::http_server::probe::until_closed;
use stadion_sdk::server::{HttpTimeouts, ServeOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn sidecar() -> support::Sidecar {
    let options = ServeOptions { timeouts: HttpTimeouts::all(Duration::from_secs(1)), ..ServeOptions::default() };
    support::start_with(support::game_server(), options).await
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {text:?}")))
}

#[tokio::test]
async fn half_open_connections_on_both_ports_are_closed_after_the_header_timeout() {
    let sidecar = sidecar().await;
    for addr in [sidecar.handle.http_addr(), sidecar.handle.grpc_addr()] {
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        let (_, closed) = until_closed(&mut silent, Duration::from_secs(5)).await;
        assert!(closed.is_some_and(|c| c < Duration::from_secs(3)), "{addr}: closed after {closed:?}");
    }
    // The official clients still work on both ports.
    let sdk = sidecar.client().await;
    sdk.set_label("after", "timeouts").await.expect("gRPC serves");
    let (status, _) = send(reqwest::Client::new().get(sidecar.http("/gameserver"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_rest_body_that_never_arrives_is_answered_408() {
    let sidecar = sidecar().await;
    let mut client = TcpStream::connect(sidecar.handle.http_addr()).await.expect("connect");
    let head =
        "PUT /metadata/label HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n";
    client.write_all(format!("{head}{{\"key\":").as_bytes()).await.expect("write");
    let (seen, closed) = until_closed(&mut client, Duration::from_secs(5)).await;
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
    // grpc-gateway's error shape, with DEADLINE_EXCEEDED.
    let body = seen.split("\r\n\r\n").nth(1).unwrap_or_default();
    let error: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON error body: {seen}"));
    assert_eq!(error["code"], 4, "{error}");
    assert!(closed.is_some_and(|c| c < Duration::from_secs(3)), "closed after {closed:?}");
}

#[tokio::test]
async fn only_json_bodies_are_accepted_and_an_empty_post_needs_no_type() {
    let sidecar = sidecar().await;
    let http = reqwest::Client::new();
    // What Agones' docs tell users to run, and what SDK REST clients send.
    let (status, body) =
        send(http.post(sidecar.http("/ready")).header("content-type", "application/json").body("{}")).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!({})));
    let (status, _) = send(
        http.put(sidecar.http("/metadata/label"))
            .header("content-type", "application/json; charset=utf-8")
            .body(r#"{"key":"a","value":"b"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // `curl -X POST …/allocate`: no body, no type.
    let (status, _) = send(http.post(sidecar.http("/allocate"))).await;
    assert_eq!(status, StatusCode::OK);
    // `curl -d '{}' …/shutdown` sends application/x-www-form-urlencoded: refused, and nothing happens.
    for content_type in ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"] {
        let (status, error) =
            send(http.post(sidecar.http("/shutdown")).header("content-type", content_type).body("{}")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        assert_eq!(error["code"], 3, "{error}");
        assert!(error["message"].as_str().is_some_and(|m| m.contains("application/json")), "{error}");
    }
    let (status, _) = send(http.post(sidecar.http("/shutdown")).body("{}")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "a body without a Content-Type");
    assert_eq!(sidecar.game_server().await.state(), Some(stadion_crds::GameServerState::Allocated));
}

#[tokio::test]
async fn requests_from_browsers_are_refused_403() {
    let sidecar = sidecar().await;
    let http = reqwest::Client::new();
    let (status, error) = send(
        http.post(sidecar.http("/shutdown"))
            .header("origin", "https://evil.example")
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], 7, "PERMISSION_DENIED: {error}");
    let (status, _) = send(http.get(sidecar.http("/gameserver")).header("origin", "null")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_ne!(sidecar.game_server().await.state(), Some(stadion_crds::GameServerState::Shutdown));
}

#[tokio::test]
async fn a_watcher_that_never_reads_holds_only_the_latest_state() {
    let sidecar = sidecar().await;
    let mut unread = Box::pin(sidecar.handle.sidecar().watch_game_server());
    for n in 0..3000 {
        sidecar.handle.sidecar().set_label("n".into(), n.to_string()).await.expect("label");
    }
    let latest = unread.next().await.expect("a state");
    let labels = latest.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("agones.dev/sdk-n").map(String::as_str), Some("2999"));
    // Nothing else was queued behind it.
    let more = tokio::time::timeout(Duration::from_millis(200), unread.next()).await;
    assert!(more.is_err(), "only one pending state, got another");
}

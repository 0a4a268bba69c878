//! `stadion up`'s admin API on a real loopback socket: JSON errors, JSON-only bodies and the
//! serve path's timeouts.

use std::time::Duration;

use serde_json::Value;
use stadion_controller::local::admin;
use stadion_controller::local::allocator::LocalAllocator;
use stadion_controller::local::store::Store;
use stadion_sdk::http_server::HttpTimeouts;
use stadion_sdk::http_server::probe::until_closed;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

async fn start() -> std::net::SocketAddr {
    let listener = admin::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let store = Store::new();
    let allocator = LocalAllocator::new(store.clone(), tokio::sync::watch::channel(0).0);
    tokio::spawn(admin::serve_with(
        listener,
        admin::AdminState::new(store, allocator),
        HttpTimeouts::all(Duration::from_secs(1)),
        async {
            std::future::pending::<()>().await;
        },
    ));
    addr
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["code"], status, "{body}");
    assert!(body["error"].is_string(), "{body}");
    (status, body)
}

#[tokio::test]
async fn unknown_paths_and_methods_and_non_json_bodies_are_json_errors() {
    let addr = start().await;
    let http = reqwest::Client::new();
    let ok = http.get(format!("http://{addr}/api/fleets")).send().await.expect("send");
    assert_eq!(ok.status(), 200);
    let (status, body) = error_of(http.get(format!("http://{addr}/api/nothing")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().is_some_and(|e| e.contains("/api/nothing")), "{body}");
    let (status, _) = error_of(http.delete(format!("http://{addr}/api/gameservers")).send().await.unwrap()).await;
    assert_eq!(status, 405);
    let post = http.post(format!("http://{addr}/api/fleets")).header("content-type", "application/json").body("{}");
    assert_eq!(error_of(post.send().await.unwrap()).await.0, 405);
    let form = http.post(format!("http://{addr}/api/fleets")).header("content-type", "text/plain").body("{}");
    assert_eq!(error_of(form.send().await.unwrap()).await.0, 415);
    // The Kubernetes-style allocation route takes JSON only, as `stadion allocate -f` sends it.
    let allocations = format!("http://{addr}/apis/allocation.agones.dev/v1/namespaces/default/gameserverallocations");
    let yaml = http.post(&allocations).header("content-type", "application/yaml").body("apiVersion: x");
    assert_eq!(error_of(yaml.send().await.unwrap()).await.0, 415);
    let json = http.post(&allocations).header("content-type", "application/json").body("{}");
    assert_ne!(json.send().await.unwrap().status(), 415);
}

#[tokio::test]
async fn half_open_connections_are_closed_and_a_missing_body_is_408() {
    let addr = start().await;
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let (_, closed) = until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(closed.is_some_and(|c| c < Duration::from_secs(3)), "closed after {closed:?}");

    let mut client = TcpStream::connect(addr).await.expect("connect");
    let head = "POST /api/fleets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{";
    client.write_all(head.as_bytes()).await.expect("write");
    let (seen, closed) = until_closed(&mut client, Duration::from_secs(5)).await;
    // The route has no POST, so the answer may come before the body deadline; either way the
    // connection does not stay open.
    assert!(seen.starts_with("HTTP/1.1 405") || seen.starts_with("HTTP/1.1 408"), "{seen}");
    assert!(closed.is_some_and(|c| c < Duration::from_secs(3)), "closed after {closed:?}");
}

/// Reads the event stream's frames until `done` holds for what was read, or `limit` passes.
async fn read_events(response: &mut reqwest::Response, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + limit;
    while !done(&seen) {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    seen
}

#[tokio::test]
async fn the_dashboard_page_and_its_live_stream_outlast_the_idle_timeout_and_end_at_shutdown() {
    use stadion_crds::GameServer;
    use stadion_crds::gameserver::GameServerSpec;
    let listener = admin::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let store = Store::new();
    let allocator = LocalAllocator::new(store.clone(), tokio::sync::watch::channel(0).0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(admin::serve_with(
        listener,
        admin::AdminState::new(store.clone(), allocator),
        HttpTimeouts::all(Duration::from_secs(1)),
        async {
            let _ = stopped.await;
        },
    ));
    let http = reqwest::Client::new();
    let page = http.get(format!("http://{addr}/")).send().await.expect("page");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("dashboard/app.js"));
    for asset in ["dashboard/app.js", "dashboard/style.css"] {
        assert_eq!(http.get(format!("http://{addr}/{asset}")).send().await.unwrap().status(), 200, "{asset}");
    }

    let mut events = http.get(format!("http://{addr}/api/dashboard/events")).send().await.expect("stream");
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let first = read_events(&mut events, Duration::from_secs(2), |s| s.contains("\n\n")).await;
    assert!(first.starts_with("event: snapshot\ndata: {"), "{first}");
    assert!(first.contains("\"gameservers\":[]"), "{first}");
    // Past the 1 s idle timeout, a change still arrives, as a delta, within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let created = Instant::now();
    store.api::<GameServer>().create(GameServer::new("gs-live", GameServerSpec::default())).expect("created");
    let delta = read_events(&mut events, Duration::from_secs(2), |s| s.contains("gs-live")).await;
    assert!(delta.contains("event: delta") && delta.contains("\"key\":\"default/gs-live\""), "{delta}");
    assert!(created.elapsed() < Duration::from_secs(1), "arrived after {:?}", created.elapsed());

    let snapshot: Value =
        http.get(format!("http://{addr}/api/dashboard/snapshot")).send().await.unwrap().json().await.unwrap();
    assert_eq!(snapshot["gameservers"][0]["name"], "gs-live");
    let details: Value = http
        .get(format!("http://{addr}/api/dashboard/gameservers/default/gs-live"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(details, serde_json::json!({"events": [], "output": []}));

    // An open tab does not hold the server up.
    stop.send(()).expect("still serving");
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("stopped in time").expect("no panic");
}

//! End to end on `stadion up`: its three HTTP servers (the admin API, the matchmaker and a
//! game's sidecar) close half-open connections, answer unknown routes and methods with JSON,
//! take JSON bodies only, and the sidecar refuses requests from browsers.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Scratch, Up, eventually, up_with_matchmaker};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const SETTLE: Duration = Duration::from_secs(60);

/// The sidecar ports a running game was given (read from its environment).
fn sidecar_ports(scratch: &Scratch) -> Option<(u16, u16)> {
    scratch.marked_processes().into_iter().find_map(|pid| {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let var = |name: &str| {
            environ
                .split(|b| *b == 0)
                .find_map(|v| std::str::from_utf8(v).ok()?.strip_prefix(&format!("{name}="))?.parse::<u16>().ok())
        };
        Some((var("AGONES_SDK_HTTP_PORT")?, var("AGONES_SDK_GRPC_PORT")?))
    })
}

async fn ready_server(up: &Up) -> String {
    eventually(SETTLE, "one Ready server", || async {
        let all = support::get_json(&up.http, &format!("{}/api/gameservers", up.admin)).await?;
        all.as_array()?.iter().find(|gs| gs["state"] == "Ready").and_then(|gs| gs["name"].as_str().map(str::to_owned))
    })
    .await
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn stadion_up_http_servers_refuse_what_they_should_and_close_half_open_connections() {
    let scratch = Scratch::new("up-http-hardening");
    let up = up_with_matchmaker(&scratch, 1, "21900-21949");
    let name = ready_server(&up).await;
    let (rest, grpc) = eventually(SETTLE, "the game's sidecar ports", || async { sidecar_ports(&scratch) }).await;
    let sidecar = format!("http://127.0.0.1:{rest}");
    let admin_addr: SocketAddr = up.admin.trim_start_matches("http://").parse().expect("admin addr");
    let api_addr: SocketAddr = up.api.trim_start_matches("http://").parse().expect("api addr");

    // Half-open connections to every server, closed by the default 10 s header-read timeout.
    let started = Instant::now();
    let targets =
        [admin_addr, api_addr, SocketAddr::from(([127, 0, 0, 1], rest)), SocketAddr::from(([127, 0, 0, 1], grpc))];
    let mut silent = Vec::new();
    for addr in targets {
        silent.push((addr, TcpStream::connect(addr).await.expect("connect")));
    }

    // The sidecar: browsers are refused, bodies must be JSON, and nothing changed.
    let browser = up.http.post(format!("{sidecar}/shutdown")).header("origin", "http://evil.example");
    let (status, error) =
        json_of(browser.header("content-type", "application/json").body("{}").send().await.unwrap()).await;
    assert_eq!(status, 403, "{error}");
    let form = up.http.post(format!("{sidecar}/shutdown")).header("content-type", "application/x-www-form-urlencoded");
    let (status, error) = json_of(form.body("{}").send().await.unwrap()).await;
    assert_eq!(status, 415, "{error}");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("application/json")), "{error}");
    assert_eq!(up.state_of(&name).await.as_deref(), Some("Ready"));
    let (status, _) = json_of(up.http.delete(format!("{sidecar}/gameserver")).send().await.unwrap()).await;
    assert_eq!(status, 405);

    // The matchmaker and the admin API.
    let text = up.http.post(format!("{}/v1/tickets", up.api)).header("content-type", "text/plain").body("{}");
    let (status, error) = json_of(text.send().await.unwrap()).await;
    assert_eq!((status, error["error"]["code"].as_str()), (415, Some("unsupported_media_type")), "{error}");
    let (status, error) = json_of(up.http.put(format!("{}/v1/tickets", up.api)).send().await.unwrap()).await;
    assert_eq!((status, error["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{error}");
    let (status, error) = json_of(up.http.get(format!("{}/api/nothing", up.admin)).send().await.unwrap()).await;
    assert_eq!((status, error["code"].as_u64()), (404, Some(404)), "{error}");
    let (status, error) = json_of(up.http.post(format!("{}/api/fleets", up.admin)).send().await.unwrap()).await;
    assert_eq!((status, error["code"].as_u64()), (405, Some(405)), "{error}");

    for (addr, mut stream) in silent {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "{addr}: a half-open connection was not closed");
        assert!(started.elapsed() >= Duration::from_secs(5), "{addr}: closed before the timeout");
    }
    assert!(started.elapsed() < Duration::from_secs(20), "closed after {:?}", started.elapsed());
}

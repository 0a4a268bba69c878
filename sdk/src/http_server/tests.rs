//! The serve path on real loopback sockets, with 1 s timeouts.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::probe::until_closed as read_to_close;
use super::{HttpServer, HttpTimeouts};

const TIMEOUT: Duration = Duration::from_secs(1);

async fn start() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let router = Router::new()
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/slow-stream",
            get(|| async {
                let chunks = futures::stream::unfold(0u8, |n| async move {
                    if n == 3 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(700)).await;
                    Some((Ok::<_, std::convert::Infallible>(Bytes::from(format!("{n}\n"))), n + 1))
                });
                Body::from_stream(chunks)
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = HttpServer::new("test", |status, message| {
        (status, axum::Json(serde_json::json!({"status": status.as_u16(), "message": message}))).into_response()
    })
    .timeouts(HttpTimeouts::all(TIMEOUT));
    let task = tokio::spawn(server.serve(listener, router, async {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let (addr, _stop, _task) = start().await;
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let (_, closed) = read_to_close(&mut silent, Duration::from_secs(5)).await;
    let closed = closed.expect("the server closes a silent connection");
    assert!(closed >= Duration::from_millis(900) && closed < Duration::from_secs(3), "closed after {closed:?}");
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    let (addr, _stop, _task) = start().await;
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let (_, closed) = read_to_close(&mut slow, Duration::from_secs(5)).await;
    assert!(closed.is_some_and(|c| c < Duration::from_secs(3)), "closed after {closed:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let (addr, _stop, _task) = start().await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let (seen, closed) = read_to_close(&mut client, Duration::from_secs(5)).await;
    assert!(seen.starts_with("HTTP/1.1 200") && seen.ends_with("hello"), "{seen}");
    assert!(closed.is_some_and(|c| c < Duration::from_secs(3)), "idle keep-alive closed after {closed:?}");

    // A response that streams for 2.1 s (longer than every timeout) is not cut.
    let mut streaming = TcpStream::connect(addr).await.expect("connect");
    streaming.write_all(b"GET /slow-stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let (seen, _) = read_to_close(&mut streaming, Duration::from_secs(6)).await;
    assert!(seen.contains("0\n") && seen.contains("1\n") && seen.contains("2\n"), "{seen}");
}

#[tokio::test]
async fn a_keep_alive_connection_in_use_past_every_timeout_stays_open() {
    let (addr, _stop, _task) = start().await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    // A request every 50 ms for three times the timeouts, on the one connection: each moment
    // it is idle is far shorter than any timeout, so none may close it.
    let started = std::time::Instant::now();
    let mut served = 0;
    while started.elapsed() < 3 * TIMEOUT {
        client.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        let mut response = Vec::new();
        while !response.ends_with(b"hello") {
            let mut chunk = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(2), client.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("request {served}: no answer in 2 s"))
                .expect("read");
            assert!(read > 0, "request {served}, {:?} after the connect: closed", started.elapsed());
            response.extend_from_slice(&chunk[..read]);
        }
        let response = String::from_utf8_lossy(&response).to_lowercase();
        assert!(response.starts_with("http/1.1 200"), "{response}");
        assert!(!response.contains("connection: close"), "request {served}, {:?}: {response}", started.elapsed());
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served > 20, "{served} requests");
}

#[tokio::test]
async fn a_body_that_never_arrives_is_answered_408_in_the_server_shape() {
    let (addr, _stop, _task) = start().await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":",
        )
        .await
        .expect("write");
    let (seen, closed) = read_to_close(&mut client, Duration::from_secs(5)).await;
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
    assert!(seen.contains(r#""status":408"#) && seen.contains("did not arrive"), "{seen}");
    assert!(closed.is_some_and(|c| c < Duration::from_secs(3)), "closed after {closed:?}");
}

#[tokio::test]
async fn requests_are_served_over_keep_alive_and_bodies_that_arrive_in_time_pass() {
    let (addr, _stop, _task) = start().await;
    let http = reqwest::Client::new();
    for n in 0..3 {
        let echoed =
            http.post(format!("http://{addr}/echo")).body(format!("{{\"n\":{n}}}")).send().await.expect("send");
        assert_eq!(echoed.text().await.expect("body"), format!("{{\"n\":{n}}}"));
    }
}

#[tokio::test]
async fn shutdown_ends_the_server_even_with_silent_connections_open() {
    let (addr, stop, task) = start().await;
    let _silent = TcpStream::connect(addr).await.expect("connect");
    let mut half = TcpStream::connect(addr).await.expect("connect");
    half.write_all(b"GET /hello HTTP/1.1\r\n").await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(4), task).await.expect("the server stops").expect("no panic");
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

//! Bad input never takes the sidecar down: oversize bodies and messages, unknown rpcs, malformed
//! protobuf, wrong JSON types all get an error response, and the sidecar keeps serving.

mod support;

use bytes::{Buf, BufMut};
use reqwest::StatusCode;
use stadion_sdk::server::ServeOptions;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};

/// Sends and receives raw bytes, so a test can put anything on the wire.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

async fn raw_call(channel: &Channel, path: &'static str, payload: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(payload), path, RawCodec).await.map(tonic::Response::into_inner)
}

async fn small_limit_sidecar() -> support::Sidecar {
    support::start_with(support::game_server(), ServeOptions { body_limit: 1024, ..ServeOptions::default() }).await
}

#[tokio::test]
async fn grpc_garbage_gets_statuses_and_the_server_keeps_serving() {
    let sidecar = small_limit_sidecar().await;
    let channel = Endpoint::from_shared(format!("http://{}", sidecar.handle.grpc_addr()))
        .expect("uri")
        .connect()
        .await
        .expect("connect");

    // Field 1 (length-delimited) claims 127 bytes and delivers two.
    let truncated = raw_call(&channel, "/agones.dev.sdk.SDK/SetLabel", vec![0x0a, 0x7f, b'a', b'b']).await;
    assert_eq!(truncated.map_err(|s| s.code()), Err(Code::Internal));
    // A string field holding invalid UTF-8.
    let not_utf8 = raw_call(&channel, "/agones.dev.sdk.SDK/SetLabel", vec![0x0a, 0x02, 0xff, 0xfe]).await;
    assert_eq!(not_utf8.map_err(|s| s.code()), Err(Code::Internal));
    // A varint that never ends.
    let endless = raw_call(&channel, "/agones.dev.sdk.SDK/Reserve", vec![0x08, 0xff, 0xff, 0xff]).await;
    assert_eq!(endless.map_err(|s| s.code()), Err(Code::Internal));
    let unknown_rpc = raw_call(&channel, "/agones.dev.sdk.SDK/Explode", Vec::new()).await;
    assert_eq!(unknown_rpc.map_err(|s| s.code()), Err(Code::Unimplemented));
    let unknown_service = raw_call(&channel, "/agones.dev.sdk.gamma.SDK/Ready", Vec::new()).await;
    assert_eq!(unknown_service.map_err(|s| s.code()), Err(Code::Unimplemented));
    // Larger than the 1 KiB limit: field 2 of KeyValue with 4 KiB of 'x'.
    let mut oversize = vec![0x12, 0x80, 0x20];
    oversize.extend(std::iter::repeat_n(b'x', 4096));
    let too_big = raw_call(&channel, "/agones.dev.sdk.SDK/SetLabel", oversize).await;
    assert!(too_big.is_err(), "oversize message refused");
    // Unknown fields in a well-formed message are ignored, as protobuf requires.
    let with_unknown = raw_call(&channel, "/agones.dev.sdk.SDK/Ready", vec![0x78, 0x01]).await;
    assert_eq!(with_unknown.map_err(|s| s.code()), Ok(Vec::new()));

    let sdk = sidecar.client().await;
    sdk.set_label("still", "alive").await.expect("still serving gRPC");
    let labels = sidecar.game_server().await.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("agones.dev/sdk-still").map(String::as_str), Some("alive"));
    assert!(!labels.keys().any(|k| k.ends_with("ab")), "the malformed call stored nothing");
}

/// The REST gateway takes JSON bodies only (its guard answers anything else 415).
const JSON: &str = "application/json";

#[tokio::test]
async fn rest_garbage_gets_error_responses_and_the_server_keeps_serving() {
    let sidecar = small_limit_sidecar().await;
    let http = reqwest::Client::new();

    let big = format!(r#"{{"key": "k", "value": "{}"}}"#, "x".repeat(4096));
    let response =
        http.put(sidecar.http("/metadata/label")).header("content-type", JSON).body(big).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error: serde_json::Value = response.json().await.expect("JSON error");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("1024")), "{error}");

    let bodies: [&[u8]; 6] =
        [b"\xff\xfe\x00", b"{\"seconds\": {}}", b"null", b"[", b"{\"seconds\": 1e400}", b"\"str\""];
    for body in bodies {
        let response = http
            .post(sidecar.http("/reserve"))
            .header("content-type", JSON)
            .body(body.to_vec())
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(body));
        let error: serde_json::Value = response.json().await.expect("JSON error");
        assert_eq!(error["code"], 3);
    }
    let response = http
        .post(sidecar.http("/alpha/player/connect"))
        .header("content-type", JSON)
        .body(r#"{"playerID": ["a"]}"#)
        .send()
        .await;
    assert_eq!(response.expect("send").status(), StatusCode::BAD_REQUEST);
    let response = http
        .patch(sidecar.http("/v1beta1/lists/players?update_mask=%ff"))
        .header("content-type", JSON)
        .body("{}")
        .send()
        .await;
    assert!(response.expect("send").status().is_client_error());

    let response = http.get(sidecar.http("/gameserver")).send().await.expect("still serving REST");
    assert_eq!(response.status(), StatusCode::OK);
}

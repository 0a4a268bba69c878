//! The REST gateway on the HTTP port: the same paths, verbs and JSON as Agones' grpc-gateway, so
//! REST-only games (and `curl`) work unchanged. Errors are grpc-gateway's
//! `{"code", "message", "details"}` with the matching HTTP status.

pub mod json;

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures::StreamExt;
use serde_json::Value;
use stadion_crds::common::ListStatus;
use tokio::sync::watch;
use tonic::Code;

use self::json::Fields;
use super::convert::to_proto;
use super::error::http_status;
use super::grpc::{counter_message, list_message, stopped};
use super::tracking::CounterUpdate;
use super::{SdkError, Sidecar};
use crate::http_server::RequestGuard;

#[derive(Clone)]
struct Gateway {
    sidecar: Sidecar,
    shutdown: watch::Receiver<bool>,
    body_limit: usize,
}

/// A grpc-gateway style error response.
#[derive(Debug)]
struct RestError {
    status: StatusCode,
    code: Code,
    message: String,
}

impl RestError {
    fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
}

impl From<SdkError> for RestError {
    fn from(error: SdkError) -> Self {
        Self::new(http_status(error.code()), error.code(), error.to_string())
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"code": self.code as i32, "message": self.message, "details": []});
        (self.status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

type RestResult = Result<Response, RestError>;

/// The gateway's error body for a refusal made before routing (timeouts, the request guard),
/// with the gRPC code grpc-gateway pairs with that status.
pub(crate) fn refusal(status: StatusCode, message: String) -> Response {
    let code = match status {
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::REQUEST_TIMEOUT => Code::DeadlineExceeded,
        StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
        StatusCode::METHOD_NOT_ALLOWED => Code::Unimplemented,
        _ => Code::InvalidArgument,
    };
    RestError::new(status, code, message).into_response()
}

fn ok(value: Value) -> RestResult {
    Ok(([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response())
}

/// The routes, built once: every server's sidecar (a thousand in a large fleet, each started
/// while the others start) only hands them its state.
static ROUTES: LazyLock<Router<Gateway>> = LazyLock::new(|| {
    Router::new()
        .route("/ready", post(ready))
        .route("/allocate", post(allocate))
        .route("/shutdown", post(shutdown))
        .route("/health", post(health))
        .route("/gameserver", get(game_server))
        .route("/watch/gameserver", get(watch_game_server))
        .route("/metadata/label", put(set_label))
        .route("/metadata/annotation", put(set_annotation))
        .route("/reserve", post(reserve))
        .route("/alpha/player/connect", post(player_connect))
        .route("/alpha/player/disconnect", post(player_disconnect))
        .route("/alpha/player/capacity", put(set_player_capacity).get(get_player_capacity))
        .route("/alpha/player/count", get(get_player_count))
        .route("/alpha/player/connected", get(get_connected_players))
        .route("/alpha/player/connected/{player_id}", get(is_player_connected))
        .route("/v1beta1/counters/{name}", get(get_counter).patch(update_counter))
        // `POST /v1beta1/lists/{name}:addValue` and `:removeValue` share the segment with the name.
        .route("/v1beta1/lists/{name}", get(get_list).patch(update_list).post(list_value))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { RestError::new(StatusCode::NOT_FOUND, Code::NotFound, "Not Found") })
        .method_not_allowed_fallback(|| async {
            RestError::new(StatusCode::METHOD_NOT_ALLOWED, Code::Unimplemented, "Method Not Allowed")
        })
});

/// Builds the gateway's router. `body_limit` caps request bodies (413 above it). Bodies must be
/// `application/json` (415), and requests from browsers (with an `Origin`) are refused (403):
/// see [`RequestGuard`].
pub fn router(sidecar: Sidecar, stop: watch::Receiver<bool>, body_limit: usize) -> Router {
    let gateway = Gateway { sidecar, shutdown: stop, body_limit };
    let routes = ROUTES.clone().layer(DefaultBodyLimit::max(body_limit)).with_state(gateway);
    RequestGuard::json_only(Arc::new(refusal))
        .refuse_browsers()
        .wrap(routes)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// The request body as JSON. Empty bodies count as `{}` when `allow_empty` (grpc-gateway accepts a
/// missing body for messages without fields).
fn body_json(gateway: &Gateway, body: Result<Bytes, BytesRejection>, allow_empty: bool) -> Result<Value, RestError> {
    let bytes = body.map_err(|rejection| body_error(gateway, &rejection))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return if allow_empty {
            Ok(Value::Object(Default::default()))
        } else {
            Err(RestError::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, "a JSON body is required, e.g. {}"))
        };
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| RestError::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, format!("invalid JSON body: {e}")))
}

fn body_error(gateway: &Gateway, rejection: &BytesRejection) -> RestError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        RestError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            format!("request body is larger than {} bytes", gateway.body_limit),
        )
    } else {
        RestError::new(rejection.status(), Code::InvalidArgument, rejection.body_text())
    }
}

/// An Empty request body: absent, or a JSON object (its keys are ignored).
fn empty_body(gateway: &Gateway, body: Result<Bytes, BytesRejection>) -> Result<(), RestError> {
    let value = body_json(gateway, body, true)?;
    Fields::of("Empty", &value)?;
    Ok(())
}

async fn ready(State(g): State<Gateway>, body: Result<Bytes, BytesRejection>) -> RestResult {
    empty_body(&g, body)?;
    g.sidecar.ready().await?;
    ok(json::empty())
}

async fn allocate(State(g): State<Gateway>, body: Result<Bytes, BytesRejection>) -> RestResult {
    empty_body(&g, body)?;
    g.sidecar.allocate().await?;
    ok(json::empty())
}

async fn shutdown(State(g): State<Gateway>, body: Result<Bytes, BytesRejection>) -> RestResult {
    empty_body(&g, body)?;
    g.sidecar.shutdown().await?;
    ok(json::empty())
}

/// POST /health: a client stream over REST, so the body is one or more JSON objects (`{}`), each
/// one ping. An empty body is rejected: it would be a health call that pings nothing.
async fn health(State(g): State<Gateway>, body: Result<Bytes, BytesRejection>) -> RestResult {
    let bytes = body.map_err(|rejection| body_error(&g, &rejection))?;
    let mut pings = 0usize;
    for item in serde_json::Deserializer::from_slice(&bytes).into_iter::<Value>() {
        let value = item.map_err(|e| {
            RestError::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, format!("invalid JSON body: {e}"))
        })?;
        Fields::of("Empty", &value)?;
        pings += 1;
    }
    if pings == 0 {
        return Err(RestError::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, "a JSON body is required: {}"));
    }
    for _ in 0..pings {
        g.sidecar.health_ping();
    }
    ok(json::empty())
}

async fn game_server(State(g): State<Gateway>) -> RestResult {
    let gs = g.sidecar.get_game_server().await?;
    ok(json::game_server(&to_proto(&gs)))
}

/// Newline-delimited `{"result": GameServer}` objects: the current one at once, then each change.
async fn watch_game_server(State(g): State<Gateway>) -> Response {
    let lines = g
        .sidecar
        .watch_game_server()
        .map(|gs| {
            let line = serde_json::json!({"result": json::game_server(&to_proto(&gs))});
            Ok::<_, Infallible>(Bytes::from(format!("{line}\n")))
        })
        .take_until(stopped(g.shutdown.clone()));
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(lines)).into_response()
}

fn key_value(g: &Gateway, body: Result<Bytes, BytesRejection>) -> Result<(String, String), RestError> {
    let value = body_json(g, body, false)?;
    let fields = Fields::of("KeyValue", &value)?;
    Ok((fields.string(&["key"])?, fields.string(&["value"])?))
}

async fn set_label(State(g): State<Gateway>, body: Result<Bytes, BytesRejection>) -> RestResult {
    let (key, value) = key_value(&g, body)?;
    g.sidecar.set_label(key, value).await?;
    ok(json::empty())
}

async fn set_annotation(State(g): State<Gateway>, body: Result<Bytes, BytesRejection>) -> RestResult {
    let (key, value) = key_value(&g, body)?;
    g.sidecar.set_annotation(key, value).await?;
    ok(json::empty())
}

async fn reserve(State(g): State<Gateway>, body: Result<Bytes, BytesRejection>) -> RestResult {
    let value = body_json(&g, body, false)?;
    let seconds = Fields::of("Duration", &value)?.int64(&["seconds"])?.unwrap_or(0);
    g.sidecar.reserve(seconds).await?;
    ok(json::empty())
}

fn player_id(g: &Gateway, body: Result<Bytes, BytesRejection>) -> Result<String, RestError> {
    let value = body_json(g, body, false)?;
    Ok(Fields::of("PlayerID", &value)?.string(&["playerID", "player_id"])?)
}

async fn player_connect(State(g): State<Gateway>, body: Result<Bytes, BytesRejection>) -> RestResult {
    let id = player_id(&g, body)?;
    ok(json::boolean(g.sidecar.player_connect(id).await?))
}

async fn player_disconnect(State(g): State<Gateway>, body: Result<Bytes, BytesRejection>) -> RestResult {
    let id = player_id(&g, body)?;
    ok(json::boolean(g.sidecar.player_disconnect(id).await?))
}

async fn set_player_capacity(State(g): State<Gateway>, body: Result<Bytes, BytesRejection>) -> RestResult {
    let value = body_json(&g, body, false)?;
    let capacity = Fields::of("Count", &value)?.int64(&["count"])?.unwrap_or(0);
    g.sidecar.set_player_capacity(capacity).await?;
    ok(json::empty())
}

async fn get_player_capacity(State(g): State<Gateway>) -> RestResult {
    ok(json::count(g.sidecar.get_player_capacity().await?))
}

async fn get_player_count(State(g): State<Gateway>) -> RestResult {
    ok(json::count(g.sidecar.get_player_count().await?))
}

async fn is_player_connected(State(g): State<Gateway>, Path(player_id): Path<String>) -> RestResult {
    ok(json::boolean(g.sidecar.is_player_connected(player_id).await?))
}

async fn get_connected_players(State(g): State<Gateway>) -> RestResult {
    ok(json::player_ids(&g.sidecar.get_connected_players().await?))
}

async fn get_counter(State(g): State<Gateway>, Path(name): Path<String>) -> RestResult {
    let counter = g.sidecar.get_counter(name.clone()).await?;
    ok(json::counter(&counter_message(name, counter)))
}

/// PATCH /v1beta1/counters/{name}: the body is the CounterUpdateRequest; the name comes from the
/// path.
async fn update_counter(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> RestResult {
    let value = body_json(&g, body, false)?;
    let fields = Fields::of("CounterUpdateRequest", &value)?;
    let update = CounterUpdate {
        count: fields.int64(&["count"])?,
        capacity: fields.int64(&["capacity"])?,
        diff: fields.int64(&["countDiff", "count_diff"])?.unwrap_or(0),
    };
    let counter = g.sidecar.update_counter(name.clone(), update).await?;
    ok(json::counter(&counter_message(name, counter)))
}

async fn get_list(State(g): State<Gateway>, Path(name): Path<String>) -> RestResult {
    let list = g.sidecar.get_list(name.clone()).await?;
    ok(json::list(&list_message(name, list)))
}

/// PATCH /v1beta1/lists/{name}: the body is the List. The field mask comes from the
/// `update_mask` query parameter (comma-separated) or, as grpc-gateway does for PATCH, from the
/// fields present in the body.
async fn update_list(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    body: Result<Bytes, BytesRejection>,
) -> RestResult {
    let value = body_json(&g, body, false)?;
    let fields = Fields::of("List", &value)?;
    let list = ListStatus { capacity: fields.int64(&["capacity"])?.unwrap_or(0), values: fields.strings(&["values"])? };
    let mut paths: Vec<String> = query
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "update_mask" | "updateMask" | "update_mask.paths" | "updateMask.paths"))
        .flat_map(|(_, v)| v.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect::<Vec<_>>())
        .collect();
    if paths.is_empty()
        && let Value::Object(map) = &value
    {
        paths = map.keys().cloned().collect();
    }
    let updated = g.sidecar.update_list(name.clone(), paths, list).await?;
    ok(json::list(&list_message(name, updated)))
}

/// POST /v1beta1/lists/{name}:addValue and :removeValue.
async fn list_value(
    State(g): State<Gateway>,
    Path(segment): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> RestResult {
    let Some((name, action)) = segment.rsplit_once(':') else {
        return Err(RestError::new(StatusCode::METHOD_NOT_ALLOWED, Code::Unimplemented, "Method Not Allowed"));
    };
    let (name, action) = (name.to_owned(), action.to_owned());
    if action != "addValue" && action != "removeValue" {
        return Err(RestError::new(StatusCode::NOT_FOUND, Code::NotFound, "Not Found"));
    }
    let value = body_json(&g, body, false)?;
    let item = Fields::of("ListValueRequest", &value)?.string(&["value"])?;
    let list = if action == "addValue" {
        g.sidecar.add_list_value(name.clone(), item).await?
    } else {
        g.sidecar.remove_list_value(name.clone(), item).await?
    };
    ok(json::list(&list_message(name, list)))
}

//! `POST …/namespaces/{namespace}/gameserverallocations`: read the GameServerAllocation, admit
//! it (the core's defaults and validation, once), allocate through the runtime's allocator,
//! and answer 201 with the object and its status, as Agones does for every outcome of an
//! allocation, `UnAllocated` and `Contention` included.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stadion_core::allocator::{AllocateError, admit_allocation};
use stadion_crds::GameServerAllocation;
use stadion_crds::allocation::GameServerAllocationState;
use tracing::{info, warn};

use super::status::ApiError;
use super::{ApiState, GROUP_VERSION, KIND};

/// The one `dryRun` value Kubernetes accepts.
const DRY_RUN_ALL: &str = "All";

/// Handles a create; every failure is a Kubernetes `Status`.
pub async fn create(
    State(state): State<ApiState>,
    Path(namespace): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match create_allocation(&state, &namespace, query, &headers, body).await {
        Ok(gsa) => (StatusCode::CREATED, Json(gsa)).into_response(),
        Err(error) => {
            if error.code.is_server_error() {
                warn!(namespace, code = error.code.as_u16(), message = %error.message, "allocation request failed");
            }
            error.into_response()
        }
    }
}

async fn create_allocation(
    state: &ApiState,
    namespace: &str,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<GameServerAllocation, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let dry_run = dry_run(&params)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(e.body_text()),
        _ => ApiError::bad_request(e.body_text()),
    })?;
    let mut gsa = decode(headers, &body)?;
    check_type(&gsa)?;
    match gsa.metadata.namespace.as_deref() {
        Some(ns) if !ns.is_empty() && ns != namespace => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ => gsa.metadata.namespace = Some(namespace.to_owned()),
    }
    gsa.status = None;
    let name = gsa.metadata.name.clone().unwrap_or_default();
    // The one admission of this request: defaults, then every rule, in core.
    let admitted = admit_allocation(gsa).map_err(|errors| ApiError::invalid(&name, &errors))?;
    let mut gsa = admitted.request().clone();
    gsa.metadata.creation_timestamp = Some(Time(Timestamp::now()));
    if dry_run {
        return Ok(gsa);
    }
    state.wait_until_synced().await?;
    let status = match state.allocator.allocate(admitted).await {
        Ok(outcome) => outcome.into_status(),
        Err(AllocateError::Invalid(errors)) => return Err(ApiError::invalid(&name, &errors)),
        Err(AllocateError::Backend(message)) => {
            return Err(ApiError::unavailable(format!(
                "allocation failed, the Kubernetes API is unavailable: {message}"
            )));
        }
    };
    // Like Agones: an allocated GameServerAllocation is named after its server.
    if status.state == GameServerAllocationState::Allocated && gsa.metadata.name.is_none() {
        gsa.metadata.name = Some(status.game_server_name.clone());
    }
    info!(namespace, state = ?status.state, gameserver = %status.game_server_name, "GameServerAllocation created");
    gsa.status = Some(status);
    Ok(gsa)
}

/// `dryRun=All` (repeatable); any other value is refused, as Kubernetes does.
fn dry_run(params: &[(String, String)]) -> Result<bool, ApiError> {
    let mut dry = false;
    for (key, value) in params.iter().filter(|(k, _)| k == "dryRun") {
        if value != DRY_RUN_ALL {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {value:?}: supported values: \"{DRY_RUN_ALL}\" ({key})"
            )));
        }
        dry = true;
    }
    Ok(dry)
}

/// JSON (what kubectl sends) or YAML, chosen by `Content-Type`.
fn decode(headers: &HeaderMap, body: &[u8]) -> Result<GameServerAllocation, ApiError> {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty: send a GameServerAllocation"));
    }
    match media.as_str() {
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_saphyr::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not a GameServerAllocation: {e}"))),
        "application/json" | "" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not a GameServerAllocation: {e}"))),
        _ => Err(ApiError::unsupported_media_type(content_type)),
    }
}

/// A body that names a type names this one.
fn check_type(gsa: &GameServerAllocation) -> Result<(), ApiError> {
    if !gsa.kind.is_empty() && gsa.kind != KIND {
        return Err(ApiError::bad_request(format!("the body is a {}, not a {KIND}", gsa.kind)));
    }
    if !gsa.api_version.is_empty() && gsa.api_version != GROUP_VERSION {
        return Err(ApiError::bad_request(format!(
            "apiVersion {} is not served here: use {GROUP_VERSION}",
            gsa.api_version
        )));
    }
    Ok(())
}

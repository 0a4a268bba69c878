//! Agones' allocation service, for game backends written against Agones: gRPC
//! `allocation.AllocationService/Allocate` and REST `POST /gameserverallocation`, answered on
//! the matchmaker's own listener (HTTP/1.1, and HTTP/2 with prior knowledge for gRPC) and behind
//! its bearer auth when that is configured.
//!
//! A request becomes a GameServerAllocation (`request`), is admitted (defaulted and validated)
//! like any other, goes to the same [`Allocator`] the matchmaker uses, and the status comes back as an
//! `AllocationResponse` (`response`); REST reads and writes the protobuf JSON mapping (`json`).
//! Errors:
//!
//! | what | gRPC | REST |
//! |---|---|---|
//! | no server free | RESOURCE_EXHAUSTED | 429 |
//! | bad request (unknown enum, invalid selector or metadata, multi-cluster enabled, malformed JSON) | INVALID_ARGUMENT | 400 |
//! | missing or wrong bearer token | UNAUTHENTICATED | 401 |
//! | servers matched but were all taken first | ABORTED | 409 |
//! | body larger than `http.maxBodyBytes` | RESOURCE_EXHAUSTED | 413 |
//! | store or API server unreachable | UNAVAILABLE | 503 |
//!
//! The gRPC message and the REST body name every bad field by its request path
//! (`gameServerSelectors[0].matchLabels`). The REST error body carries gRPC-gateway's
//! `code` (the gRPC code number), `message` and `details`, which Agones clients read, plus the
//! matchmaker's usual `error` object (`code`, `message`, `field`, `details`).

mod json;
mod request;
mod response;
pub(crate) mod schema;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use stadion_sdk::allocation as pb;
use stadion_sdk::allocation::allocation_service_server::{AllocationService, AllocationServiceServer, SERVICE_NAME};

pub use request::DEFAULT_NAMESPACE;

use crate::metrics::Metrics;
use crate::{AllocateError, AllocationOutcome, Allocator, Error};
use stadion_core::allocator::admit_allocation;

/// REST path of Allocate (body: `AllocationRequest` as JSON).
pub const REST_PATH: &str = "/gameserverallocation";
/// gRPC path of Allocate.
pub const GRPC_PATH: &str = "/allocation.AllocationService/Allocate";
/// The `source` label of this API's allocations in the matchmaker's metrics.
pub const METRICS_SOURCE: &str = "agones";

/// Agones' allocation API over an [`Allocator`]: the gRPC service, the REST handler, and the
/// conversions both share.
#[derive(Clone)]
pub struct AgonesAllocationService {
    allocator: Arc<dyn Allocator>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AgonesAllocationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgonesAllocationService").finish_non_exhaustive()
    }
}

impl AgonesAllocationService {
    /// A service allocating through `allocator` and counting into `metrics`.
    pub fn new(allocator: Arc<dyn Allocator>, metrics: Arc<Metrics>) -> Self {
        Self { allocator, metrics }
    }

    /// Answers one Agones allocation request (both transports end here).
    #[tracing::instrument(name = "agones_allocate", skip_all, fields(namespace = %request.namespace))]
    pub async fn allocate_request(&self, request: pb::AllocationRequest) -> Result<pb::AllocationResponse, Error> {
        let result = self.allocate_converted(request).await;
        match &result {
            Ok(response) => {
                self.metrics.allocation(METRICS_SOURCE);
                tracing::info!(gameserver = %response.game_server_name, "allocated through the Agones allocation API");
            }
            Err(error) => self.count_failure(error),
        }
        result
    }

    async fn allocate_converted(&self, request: pb::AllocationRequest) -> Result<pb::AllocationResponse, Error> {
        let request::Converted { allocation, metadata_source } =
            request::to_allocation(request).map_err(Error::Invalid)?;
        let renamed = |errors| Error::Invalid(request::request_paths(errors, metadata_source));
        // This API's one admission of the request: defaults and every rule, in core.
        let admitted = admit_allocation(allocation).map_err(renamed)?;
        let outcome = self.allocator.allocate(admitted).await.map_err(|error| match error {
            AllocateError::Invalid(errors) => renamed(errors),
            AllocateError::Backend(message) => Error::Backend(message),
        })?;
        match outcome {
            AllocationOutcome::Allocated(status) => Ok(response::to_response(status)),
            AllocationOutcome::UnAllocated => Err(Error::Unavailable),
            AllocationOutcome::Contention => Err(Error::Contention),
        }
    }

    /// Answers a REST body: parses it, allocates, and writes the JSON response.
    pub async fn allocate_json(&self, body: &[u8]) -> Result<Value, Error> {
        let request = json::parse_request(body).inspect_err(|error| self.count_failure(error))?;
        let response = self.allocate_request(request).await?;
        Ok(json::response_body(&response))
    }

    fn count_failure(&self, error: &Error) {
        let reason = match error {
            Error::Unavailable => "unavailable",
            Error::Backend(_) => "backend",
            Error::Conflict { .. } | Error::Contention => "contention",
            _ => "invalid",
        };
        self.metrics.allocation_failure(METRICS_SOURCE, reason);
    }

    /// The two routes: `POST /gameserverallocation` and the gRPC service at
    /// `/allocation.AllocationService/*`. Bodies and messages are limited to `max_body_bytes`.
    pub fn router<S: Clone + Send + Sync + 'static>(&self, max_body_bytes: usize) -> Router<S> {
        let service = self.clone();
        let rest = post(move |body: Result<Bytes, BytesRejection>| {
            let service = service.clone();
            async move { rest_allocate(&service, body, max_body_bytes).await }
        });
        let grpc = AllocationServiceServer::new(self.clone()).max_decoding_message_size(max_body_bytes);
        // Every method path of the service goes to tonic, which answers unknown ones UNIMPLEMENTED.
        Router::new().route(REST_PATH, rest).route_service(&format!("/{SERVICE_NAME}/{{*method}}"), grpc)
    }
}

#[tonic::async_trait]
impl AllocationService for AgonesAllocationService {
    async fn allocate(
        &self,
        request: tonic::Request<pb::AllocationRequest>,
    ) -> Result<tonic::Response<pb::AllocationResponse>, tonic::Status> {
        self.allocate_request(request.into_inner())
            .await
            .map(tonic::Response::new)
            .map_err(|error| tonic::Status::new(grpc_code(&error), error.to_string()))
    }
}

async fn rest_allocate(
    service: &AgonesAllocationService,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Response {
    let result = match body {
        Ok(bytes) => service.allocate_json(&bytes).await,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Error::PayloadTooLarge { limit }),
        Err(rejection) => Err(Error::MalformedBody(rejection.body_text())),
    };
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(error) => rest_error(&error),
    }
}

/// The gRPC code Agones' allocator answers with for `error`.
pub fn grpc_code(error: &Error) -> tonic::Code {
    match error {
        Error::Invalid(_) | Error::UnknownFields(_) | Error::MalformedBody(_) => tonic::Code::InvalidArgument,
        Error::Unavailable | Error::PayloadTooLarge { .. } => tonic::Code::ResourceExhausted,
        Error::Backend(_) | Error::Store(_) => tonic::Code::Unavailable,
        Error::Conflict { .. } | Error::Contention => tonic::Code::Aborted,
        Error::Unauthorized => tonic::Code::Unauthenticated,
        Error::NotFound(_) => tonic::Code::NotFound,
        Error::Refused { status: 408, .. } => tonic::Code::DeadlineExceeded,
        Error::Refused { status: 405, .. } => tonic::Code::Unimplemented,
        Error::Refused { .. } => tonic::Code::InvalidArgument,
        Error::ConfigRead { .. } | Error::ConfigParse { .. } | Error::Config(_) | Error::Serve { .. } => {
            tonic::Code::Internal
        }
    }
}

/// The HTTP status of `error` on the REST route: as elsewhere in the matchmaker, except that a
/// well-formed but invalid request is 400, as in Agones, rather than 422. Unknown fields stay
/// 422 (Agones' gateway drops them silently, which let a typo allocate an arbitrary server).
pub fn http_status(error: &Error) -> StatusCode {
    match error {
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        other => other.status(),
    }
}

fn rest_error(error: &Error) -> Response {
    let status = http_status(error);
    if status.is_server_error() {
        tracing::error!(%error, kind = error.kind(), "allocation request failed");
    } else {
        tracing::debug!(%error, kind = error.kind(), "allocation request refused");
    }
    let mut body = error.body();
    body["code"] = Value::from(grpc_code(error) as i32);
    body["message"] = Value::from(error.to_string());
    body["details"] = Value::Array(Vec::new());
    (status, axum::Json(body)).into_response()
}

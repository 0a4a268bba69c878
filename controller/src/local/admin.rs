//! The read-only JSON admin endpoint of `stadion up`: what runs, where players connect.
//!
//! - `GET /api/fleets`: every fleet with desired/current/ready/allocated/reserved counts.
//! - `GET /api/gameservers`: every GameServer with state, address, ports, node, fleet and labels.
//! - `POST /apis/allocation.agones.dev/v1/namespaces/{namespace}/gameserverallocations`: a
//!   GameServerAllocation, allocated as in a cluster (what `stadion allocate -f` sends), with
//!   Agones' discovery documents beside it.
//! - `GET /healthz`: `ok` while the runtime runs.
//!
//! Errors are `{"error": "<message>", "code": <status>}`: 404 for an unknown path, 405 for a
//! method a path does not have, 415 for a body that is not JSON, 408 for a body that never
//! arrives. Served through the SDK crate's timed serve path (header-read and idle timeouts).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use stadion_sdk::http_server::{HttpServer, HttpTimeouts, RequestGuard};
use tokio::net::TcpListener;

use super::allocator::LocalAllocator;
use super::error::{Error, Result};
use super::runtime::{FleetSummary, GameServerSummary, Snapshot};
use super::store::Store;
use crate::allocation_api::{self, ApiState};

/// The admin routes over `store`, allocating through `allocator`.
pub fn router(store: Store, allocator: LocalAllocator) -> Router {
    let routes = Router::new()
        .route("/api/fleets", get(fleets))
        .route("/api/gameservers", get(gameservers))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(store)
        .merge(allocation_api::api_routes(ApiState::new(allocator)))
        .fallback(|uri: Uri| async move { refusal(StatusCode::NOT_FOUND, format!("no route {}", uri.path())) })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            refusal(StatusCode::METHOD_NOT_ALLOWED, format!("method {method} is not allowed on {}", uri.path()))
        });
    RequestGuard::json_only(Arc::new(refusal)).wrap(routes)
}

fn refusal(status: StatusCode, message: String) -> Response {
    crate::http_refusal(status, message)
}

async fn fleets(State(store): State<Store>) -> Json<Vec<FleetSummary>> {
    Json(Snapshot::of(&store).fleets)
}

async fn gameservers(State(store): State<Store>) -> Json<Vec<GameServerSummary>> {
    Json(Snapshot::of(&store).gameservers)
}

/// Binds `address`; serve the result with [`serve`]. Split so a caller learns the bound port
/// (when asking for port 0) and reports a taken port before starting anything else.
pub async fn bind(address: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|source| Error::Listen { address: address.to_string(), source })
}

/// Serves the admin routes on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    allocator: LocalAllocator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_with(listener, store, allocator, HttpTimeouts::DEFAULT, shutdown).await;
}

/// [`serve`] with other header-read, body-read and idle timeouts (tests use 1 s).
pub async fn serve_with(
    listener: TcpListener,
    store: Store,
    allocator: LocalAllocator,
    timeouts: HttpTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    HttpServer::new("admin", refusal).timeouts(timeouts).serve(listener, router(store, allocator), shutdown).await;
}

//! The read-only JSON admin endpoint of `stadion up`: what runs, where players connect.
//!
//! - `GET /api/fleets`: every fleet with desired/current/ready/allocated/reserved counts.
//! - `GET /api/gameservers`: every GameServer with state, address, ports, node, fleet and labels.
//! - `POST /apis/allocation.agones.dev/v1/namespaces/{namespace}/gameserverallocations`: a
//!   GameServerAllocation, allocated as in a cluster (what `stadion allocate -f` sends), with
//!   Agones' discovery documents beside it.
//! - `GET /metrics`: Agones' metrics ([`super::metrics`]).
//! - `GET /api/gameserversets`, `GET /api/fleetautoscalers`: [`super::resources`].
//! - `GET /healthz`: `ok` while the runtime runs.

use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;

use super::allocator::LocalAllocator;
use super::error::{Error, Result};
use super::runtime::{FleetSummary, GameServerSummary, Snapshot};
use super::store::Store;
use crate::allocation_api::{self, ApiState};

/// The admin routes over `store`, allocating through `allocator`.
pub fn router(store: Store, allocator: LocalAllocator) -> Router {
    Router::new()
        .route("/api/fleets", get(fleets))
        .route("/api/gameservers", get(gameservers))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(store.clone())
        .merge(super::metrics::router(store.clone(), allocator.metrics().clone()))
        .merge(super::resources::router(store))
        .merge(allocation_api::api_routes(ApiState::new(allocator)))
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
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    if let Err(error) = axum::serve(listener, router(store, allocator)).with_graceful_shutdown(shutdown).await {
        tracing::error!(%error, %address, "admin endpoint failed");
    }
}

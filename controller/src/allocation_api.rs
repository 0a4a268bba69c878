//! `allocation.agones.dev/v1` GameServerAllocation as Agones serves it, for both runtimes: the
//! routes `kubectl create -f gsa.yaml` reaches (discovery, the create, a Kubernetes `Status` for
//! everything else), over any [`Allocator`].
//!
//! In a cluster the kube-apiserver proxies them to the controller over HTTPS
//! ([`crate::kube::allocation_api`] adds TLS and the aggregator's client certificate). Locally,
//! `stadion up` serves the same routes on its admin address, and `stadion allocate -f` posts to
//! them, so a GameServerAllocation file means the same on a laptop as on a cluster.

pub mod create;
pub mod discovery;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use futures::FutureExt;
use stadion_core::allocator::Allocator;

use self::status::ApiError;

/// The API group.
pub const GROUP: &str = "allocation.agones.dev";
/// The served version.
pub const VERSION: &str = "v1";
/// `group/version`.
pub const GROUP_VERSION: &str = "allocation.agones.dev/v1";
/// The kind.
pub const KIND: &str = "GameServerAllocation";
/// The resource (plural) name.
pub const PLURAL: &str = "gameserverallocations";
/// The singular name.
pub const SINGULAR: &str = "gameserverallocation";

/// How long a create waits for the allocator's view of the servers to fill after a start.
const SYNC_WAIT: Duration = Duration::from_secs(5);

/// Whether an allocator sees every GameServer yet. An allocation made on a partial view would
/// wrongly answer UnAllocated, so creates wait for it and `/readyz` reports it.
#[async_trait]
pub trait SyncedView: Send + Sync {
    /// Resolves `true` once the view is complete, `false` if it never will be (shut down).
    async fn wait_until_synced(&self) -> bool;
}

/// What every request handler shares.
#[derive(Clone)]
pub struct ApiState {
    allocator: Arc<dyn Allocator>,
    view: Arc<dyn SyncedView>,
    sync_wait: Duration,
}

impl ApiState {
    /// Handlers allocating through `allocator`, which also says when its view is synced.
    pub fn new<A: Allocator + SyncedView + 'static>(allocator: A) -> Self {
        let allocator = Arc::new(allocator);
        Self { allocator: allocator.clone(), view: allocator, sync_wait: SYNC_WAIT }
    }

    /// How long a create waits for an unsynced view before answering 503.
    pub fn with_cache_wait(mut self, wait: Duration) -> Self {
        self.sync_wait = wait;
        self
    }

    async fn wait_until_synced(&self) -> Result<(), ApiError> {
        match tokio::time::timeout(self.sync_wait, self.view.wait_until_synced()).await {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => {
                Err(ApiError::unavailable("the GameServer cache is not synced yet; retry in a few seconds"))
            }
        }
    }
}

/// The routes of the allocation API as the aggregator reaches them: [`api_routes`] plus health
/// probes and a `Status` 404 for every other path.
pub fn router(state: ApiState) -> Router {
    let probes = Router::new()
        .route("/healthz", only_get(|| async { "ok" }))
        .route("/livez", only_get(|| async { "ok" }))
        .route("/readyz", only_get(readyz))
        .fallback(not_found)
        .with_state(state.clone());
    api_routes(state).merge(probes)
}

/// Discovery and the create, under `/apis`: what another server (the local admin endpoint)
/// mounts beside its own routes.
pub fn api_routes(state: ApiState) -> Router {
    let collection = format!("/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}");
    Router::new()
        .route(
            "/apis",
            only_get(|headers: HeaderMap| async move { discovery::negotiate(&headers, discovery::group_list()) }),
        )
        .route(
            &format!("/apis/{GROUP}"),
            only_get(|headers: HeaderMap| async move { discovery::negotiate(&headers, discovery::group()) }),
        )
        .route(
            &format!("/apis/{GROUP}/{VERSION}"),
            only_get(|headers: HeaderMap| async move { discovery::negotiate(&headers, discovery::resource_list()) }),
        )
        .route(&collection, post(create::create).fallback(method_not_allowed))
        .with_state(state)
}

fn only_get<H, T>(handler: H) -> MethodRouter<ApiState>
where
    H: axum::handler::Handler<T, ApiState>,
    T: 'static,
{
    get(handler).fallback(method_not_allowed)
}

async fn method_not_allowed(method: Method) -> Response {
    ApiError::method_not_allowed(method.as_str()).into_response()
}

// `/openapi/v2` and `/openapi/v3` land here too: the aggregator takes a 404 as "this server
// publishes no schema" and carries on.
async fn not_found(OriginalUri(uri): OriginalUri) -> Response {
    ApiError::not_found(uri.path()).into_response()
}

/// Ready once the allocator's view is filled, so the aggregator's health check and the Service
/// only send creates to replicas that can answer them truthfully.
async fn readyz(State(state): State<ApiState>) -> Response {
    match state.view.wait_until_synced().now_or_never() {
        Some(true) => "ok".into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "GameServer cache not synced").into_response(),
    }
}

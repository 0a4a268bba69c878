//! The read-only JSON admin endpoint of `stadion up`: what runs, where players connect.
//!
//! - `GET /api/fleets`: every fleet with desired/current/ready/allocated/reserved counts.
//! - `GET /api/gameservers`: every GameServer with state, address, ports, node, fleet and labels.
//! - `GET /api/gameserversets`: every GameServerSet with its replica counts and its
//!   CrashLoopBackOff (`null` when its games are not crash-looping).
//! - `POST /apis/allocation.agones.dev/v1/namespaces/{namespace}/gameserverallocations`: a
//!   GameServerAllocation, allocated as in a cluster (what `stadion allocate -f` sends), with
//!   Agones' discovery documents beside it.
//! - `GET /metrics`: Agones' metrics ([`super::metrics`]).
//! - `GET /api/fleetautoscalers` and the `/apis/…` lists `stadion get` reads: [`super::resources`].
//! - `GET /healthz`: `ok` while the runtime runs.
//! - `GET /`: the web dashboard ([`crate::dashboard`]), live over Server-Sent Events.
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

use serde::Serialize;
use stadion_crds::{GameServer, GameServerSet, labels};

use super::allocator::LocalAllocator;
use super::dashboard::LocalDashboardSource;
use super::error::{Error, Result};
use super::recorder::LocalRecorder;
use super::runtime::{CrashLoopSummary, CrashLoops, FleetSummary, GameServerSummary, LocalRuntime, Snapshot};
use super::store::{Selector, Store};
use super::supervisor::OutputTails;
use crate::allocation_api::{self, ApiState};
use crate::dashboard::{Dashboard, MatchmakerFeed};
use stadion_core::gameserverset::aggregate_status;

/// What the admin routes use: the store, the sets' crash-loop table, the allocator, and what
/// the dashboard shows besides the store (Events, output tails, the matchmaker).
#[derive(Clone)]
pub struct AdminState {
    store: Store,
    crash_loops: CrashLoops,
    allocator: LocalAllocator,
    recorder: LocalRecorder,
    tails: OutputTails,
    matchmaker: Option<Arc<dyn MatchmakerFeed>>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").field("store", &self.store).finish_non_exhaustive()
    }
}

impl AdminState {
    /// The admin view of `store` allocating through `allocator`, with no crash-loop history,
    /// Events or output (a store no runtime drives).
    pub fn new(store: Store, allocator: LocalAllocator) -> Self {
        Self {
            store,
            crash_loops: CrashLoops::default(),
            allocator,
            recorder: LocalRecorder::new(),
            tails: OutputTails::default(),
            matchmaker: None,
        }
    }

    /// The admin view of a running runtime.
    pub fn of(runtime: &LocalRuntime) -> Self {
        Self {
            store: runtime.store().clone(),
            crash_loops: runtime.crash_loops().clone(),
            allocator: runtime.allocator(),
            recorder: runtime.recorder().clone(),
            tails: runtime.output_tails().clone(),
            matchmaker: None,
        }
    }

    /// The dashboard also shows this matchmaker.
    pub fn with_matchmaker(mut self, matchmaker: Arc<dyn MatchmakerFeed>) -> Self {
        self.matchmaker = Some(matchmaker);
        self
    }

    fn dashboard(&self) -> Dashboard {
        let source = LocalDashboardSource {
            store: self.store.clone(),
            recorder: self.recorder.clone(),
            tails: self.tails.clone(),
        };
        Dashboard::new(Arc::new(source), self.matchmaker.clone())
    }
}

/// One GameServerSet as `GET /api/gameserversets` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GameServerSetSummary {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Fleet it belongs to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<String>,
    /// `spec.replicas`.
    pub desired: i32,
    /// Servers that count toward the set.
    pub current: i32,
    /// Ready servers.
    pub ready: i32,
    /// Its CrashLoopBackOff, while its games exit before Ready.
    pub crash_loop_back_off: Option<CrashLoopSummary>,
}

/// The admin routes over `state`, allocating through its allocator.
pub fn router(state: AdminState) -> Router {
    routes(state).0
}

/// The routes, and the dashboard whose live streams must end for the server to stop.
fn routes(state: AdminState) -> (Router, Dashboard) {
    let dashboard = state.dashboard();
    let allocations = allocation_api::api_routes(ApiState::new(state.allocator.clone()));
    let routes = Router::new()
        .route("/api/fleets", get(fleets))
        .route("/api/gameservers", get(gameservers))
        .route("/api/gameserversets", get(gameserversets))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state.clone())
        .merge(super::metrics::router(state.store.clone(), state.allocator.metrics().clone()))
        .merge(super::resources::router(state.store))
        .merge(allocations)
        .merge(dashboard.router())
        .fallback(|uri: Uri| async move { refusal(StatusCode::NOT_FOUND, format!("no route {}", uri.path())) })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            refusal(StatusCode::METHOD_NOT_ALLOWED, format!("method {method} is not allowed on {}", uri.path()))
        });
    (RequestGuard::json_only(Arc::new(refusal)).wrap(routes), dashboard)
}

fn refusal(status: StatusCode, message: String) -> Response {
    crate::http_refusal(status, message)
}

async fn fleets(State(state): State<AdminState>) -> Json<Vec<FleetSummary>> {
    Json(Snapshot::fleets_of(&state.store))
}

async fn gameservers(State(state): State<AdminState>) -> Json<Vec<GameServerSummary>> {
    Json(Snapshot::of(&state.store).gameservers)
}

async fn gameserversets(State(state): State<AdminState>) -> Json<Vec<GameServerSetSummary>> {
    Json(set_summaries(&state, jiff::Timestamp::now()))
}

fn set_summaries(state: &AdminState, now: jiff::Timestamp) -> Vec<GameServerSetSummary> {
    let servers = state.store.api::<GameServer>().list(None, &Selector::everything());
    let sets = state.store.api::<GameServerSet>().list(None, &Selector::everything());
    sets.iter()
        .map(|set| {
            let mine = servers.iter().map(AsRef::as_ref).filter(|gs: &&GameServer| {
                gs.namespace() == set.namespace()
                    && gs.metadata.labels.as_ref().and_then(|l| l.get(labels::GAMESERVERSET)).map(String::as_str)
                        == Some(set.name())
            });
            let counts = aggregate_status(mine);
            GameServerSetSummary {
                namespace: set.namespace().to_owned(),
                name: set.name().to_owned(),
                fleet: set.metadata.labels.as_ref().and_then(|l| l.get(labels::FLEET)).cloned(),
                desired: set.spec.replicas,
                current: counts.replicas,
                ready: counts.ready_replicas,
                crash_loop_back_off: state
                    .crash_loops
                    .summary(&stadion_core::object_key(set.namespace(), set.name()), now),
            }
        })
        .collect()
}

/// Binds `address`; serve the result with [`serve`]. Split so a caller learns the bound port
/// (when asking for port 0) and reports a taken port before starting anything else.
pub async fn bind(address: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|source| Error::Listen { address: address.to_string(), source })
}

/// Serves the admin routes on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, state: AdminState, shutdown: impl Future<Output = ()> + Send + 'static) {
    serve_with(listener, state, HttpTimeouts::DEFAULT, shutdown).await;
}

/// [`serve`] with other header-read, body-read and idle timeouts (tests use 1 s).
pub async fn serve_with(
    listener: TcpListener,
    state: AdminState,
    timeouts: HttpTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (router, dashboard) = routes(state);
    let shutdown = async move {
        shutdown.await;
        dashboard.close();
    };
    HttpServer::new("admin", refusal).timeouts(timeouts).serve(listener, router, shutdown).await;
}

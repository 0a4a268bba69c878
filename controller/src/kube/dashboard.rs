//! The web dashboard in a cluster: read-only, on its own port, off unless
//! `--dashboard-address` is given, and behind bearer tokens. It reads the controllers' watch
//! caches (no extra watches) and, when a row is expanded, that server's Events from the API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};
use stadion_sdk::http_server::HttpServer;
use tokio::net::TcpListener;

use crate::dashboard::auth::{Tokens, require_bearer};
use crate::dashboard::{Dashboard, DashboardSource, EventLine, Objects, ServerDetails};

/// Events shown per expanded server.
const EVENTS_SHOWN: usize = 20;
/// How long an expanded row waits for its Events.
const EVENTS_TIMEOUT: Duration = Duration::from_secs(3);

/// Where and for whom the cluster dashboard is served.
#[derive(Clone, Debug)]
pub struct DashboardConfig {
    /// Listen address.
    pub address: SocketAddr,
    /// Accepted bearer tokens.
    pub tokens: Tokens,
}

/// [`DashboardSource`] over the kube runtime's caches.
#[derive(Clone)]
pub struct KubeDashboardSource {
    /// The API, for Events.
    pub client: Client,
    /// GameServers.
    pub gameservers: Store<GameServer>,
    /// GameServerSets.
    pub sets: Store<GameServerSet>,
    /// Fleets.
    pub fleets: Store<Fleet>,
    /// FleetAutoscalers.
    pub autoscalers: Store<FleetAutoscaler>,
}

#[async_trait]
impl DashboardSource for KubeDashboardSource {
    fn objects(&self) -> Objects {
        Objects {
            gameservers: self.gameservers.state(),
            sets: self.sets.state(),
            fleets: self.fleets.state(),
            autoscalers: self.autoscalers.state(),
        }
    }

    async fn details(&self, namespace: &str, name: &str) -> ServerDetails {
        let events: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let params =
            ListParams::default().fields(&format!("involvedObject.kind=GameServer,involvedObject.name={name}"));
        let listed = match tokio::time::timeout(EVENTS_TIMEOUT, events.list(&params)).await {
            Ok(Ok(list)) => list.items,
            Ok(Err(error)) => {
                tracing::debug!(%error, gameserver = name, "cannot list the server's Events");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        let mut events: Vec<EventLine> = listed
            .into_iter()
            .map(|e| {
                let time = e
                    .last_timestamp
                    .map(|t| t.0.to_string())
                    .or_else(|| e.event_time.map(|t| t.0.to_string()))
                    .unwrap_or_default();
                EventLine {
                    type_: e.type_.unwrap_or_else(|| "Normal".into()),
                    reason: e.reason.unwrap_or_default(),
                    note: e.message.unwrap_or_default(),
                    time,
                }
            })
            .collect();
        events.sort_by(|a, b| a.time.cmp(&b.time));
        let skip = events.len().saturating_sub(EVENTS_SHOWN);
        // Output lives in the Pod's log: `kubectl logs`.
        ServerDetails { events: events.split_off(skip), output: None }
    }
}

/// The dashboard's routes behind `tokens`, with the controller's JSON refusals.
pub fn router(dashboard: &Dashboard, tokens: Tokens) -> Router {
    dashboard
        .router()
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|uri: Uri| async move { refusal(StatusCode::NOT_FOUND, format!("no route {}", uri.path())) })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            refusal(StatusCode::METHOD_NOT_ALLOWED, format!("method {method} is not allowed on {}", uri.path()))
        })
        .layer(axum::middleware::from_fn_with_state(tokens, require_bearer))
}

fn refusal(status: StatusCode, message: String) -> Response {
    crate::http_refusal(status, message)
}

/// Binds `address`, so a taken port is reported before the controllers start.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves the dashboard of `source` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    source: KubeDashboardSource,
    tokens: Tokens,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let dashboard = Dashboard::new(Arc::new(source), None);
    let routes = router(&dashboard, tokens);
    let closing = dashboard.clone();
    let shutdown = async move {
        shutdown.await;
        closing.close();
    };
    HttpServer::new("dashboard", refusal).serve(listener, routes, shutdown).await;
}

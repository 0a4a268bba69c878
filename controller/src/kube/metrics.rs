//! The `/metrics`, `/healthz`, `/readyz` HTTP server every controller replica runs, leader or
//! not. The metrics themselves are runtime-neutral: [`crate::metrics`], re-exported here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use stadion_sdk::http_server::HttpServer;

pub use crate::metrics::*;

use super::{Error, Result};

/// Whether this process is ready to serve: set once the caches have synced.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the process ready (or not).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

/// The `/metrics`, `/healthz` and `/readyz` routes.
pub fn router(metrics: Arc<Metrics>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        // Liveness: the process answers, so its runtime is not wedged.
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(serve_readyz))
        .with_state(HttpState { metrics, readiness })
}

async fn serve_metrics(State(state): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], state.metrics.encode())
}

async fn serve_readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet")
    }
}

/// Binds `addr` and serves [`router`] until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = bind(addr).await?;
    serve_on(listener, metrics, readiness, shutdown).await
}

/// Binds the metrics listener (split from [`serve_on`] so callers learn the port of `:0`).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Io { what: format!("binding the metrics server to {addr}"), source })
}

/// Serves [`router`] on `listener` until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    HttpServer::new("metrics", crate::http_refusal).serve(listener, router(metrics, readiness), shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn http_endpoints() {
        let metrics = Arc::new(Metrics::controller());
        let labels = AllocationLabels {
            cluster_name: NONE.into(),
            fleet_name: "f".into(),
            is_multicluster: "false".into(),
            scheduling_strategy: "Packed".into(),
            status: "Allocated".into(),
        };
        metrics.observe_allocation(&labels, Duration::from_millis(3));
        let readiness = Readiness::default();
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(listener, metrics, readiness.clone(), async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::new();
        assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
        assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 503);
        readiness.set(true);
        assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
        let body = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        let line = "agones_gameserver_allocations_duration_seconds_count{cluster_name=\"none\",fleet_name=\"f\",\
                    is_multicluster=\"false\",scheduling_strategy=\"Packed\",status=\"Allocated\"} 1";
        assert!(body.contains(line), "{body}");
        assert!(body.contains("stadion_leader 0"), "the controller exports its own families too: {body}");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}

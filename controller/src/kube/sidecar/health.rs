//! The sidecar's probe endpoints, on all interfaces because the kubelet probes the Pod IP:
//! `/healthz` (the sidecar is up) and `/gshealthz` (the game container's liveness probe: fails
//! once the GameServer is Unhealthy, so Kubernetes restarts nothing and the set replaces it).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use stadion_crds::{GameServer, GameServerState};
use stadion_sdk::http_server::HttpServer;
use tokio::sync::watch;

/// The probe routes over the sidecar's view of its GameServer.
pub fn router(view: watch::Receiver<Arc<GameServer>>) -> Router {
    Router::new().route("/healthz", get(|| async { "ok" })).route("/gshealthz", get(gameserver_health)).with_state(view)
}

async fn gameserver_health(State(view): State<watch::Receiver<Arc<GameServer>>>) -> (StatusCode, &'static str) {
    if view.borrow().state() == Some(GameServerState::Unhealthy) {
        (StatusCode::SERVICE_UNAVAILABLE, "GameServer is Unhealthy")
    } else {
        (StatusCode::OK, "ok")
    }
}

/// Serves the probe routes on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    view: watch::Receiver<Arc<GameServer>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    HttpServer::new("sidecar-probes", crate::http_refusal).serve(listener, router(view), shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::fixtures::{gameserver, set_state};

    #[tokio::test]
    async fn gshealthz_fails_once_unhealthy() {
        let mut gs = gameserver("gs-1");
        set_state(&mut gs, GameServerState::Ready);
        let (tx, rx) = watch::channel(Arc::new(gs.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router(rx)).await });
        let http = reqwest::Client::new();
        assert_eq!(http.get(format!("{base}/gshealthz")).send().await.unwrap().status(), 200);
        set_state(&mut gs, GameServerState::Unhealthy);
        tx.send_replace(Arc::new(gs));
        assert_eq!(http.get(format!("{base}/gshealthz")).send().await.unwrap().status(), 503);
        assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    }
}

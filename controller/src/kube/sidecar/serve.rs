//! `stadion sdk-server` in a game-server Pod: the SDK over [`KubeBackend`], the probe endpoints,
//! and Agones' termination rule — on SIGTERM keep serving until the GameServer is Shutdown, so a
//! game still running can finish its session and call Shutdown itself.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use stadion_sdk::server::{self, ServeOptions};
use tracing::info;

use super::{KubeBackend, health};
use crate::kube::{Error, Result};

/// Where the sidecar listens and which GameServer it serves.
#[derive(Clone, Debug)]
pub struct SidecarConfig {
    /// GameServer name (`GAMESERVER_NAME`).
    pub gameserver: String,
    /// Its namespace (`POD_NAMESPACE`).
    pub namespace: String,
    /// gRPC listen address (localhost: only the game talks to it).
    pub grpc: SocketAddr,
    /// REST listen address.
    pub http: SocketAddr,
    /// Probe listen address (all interfaces: the kubelet probes the Pod IP).
    pub health: SocketAddr,
    /// A kubeconfig file to reach the API server with (none: in-cluster config or `KUBECONFIG`).
    pub kubeconfig: Option<std::path::PathBuf>,
    /// On termination keep serving until the GameServer is Shutdown (Agones'
    /// `--graceful-termination`, on by default); off: stop at once, after writing queued changes.
    pub graceful_termination: bool,
}

/// Serves until `terminate` resolves and then the GameServer is Shutdown (or deleted), then
/// writes any queued SDK changes and stops.
pub async fn serve(config: SidecarConfig, terminate: impl Future<Output = ()>) -> Result<()> {
    let client = crate::kube::connect::client(config.kubeconfig.as_deref()).await?;
    let backend = KubeBackend::connect(client, &config.namespace, &config.gameserver).await?;
    let listeners = server::bind(config.grpc, config.http).await.map_err(|e| Error::Sidecar(e.to_string()))?;
    let handle = server::serve(Arc::new(backend.clone()), listeners, ServeOptions::default())
        .map_err(|e| Error::Sidecar(e.to_string()))?;
    let (stop_probes, probes_stopped) = tokio::sync::oneshot::channel::<()>();
    let health_addr = config.health;
    let view = stadion_sdk::server::GameServerBackend::watch(&backend);
    let probes = tokio::spawn(health::serve(health_addr, view, async {
        let _ = probes_stopped.await;
    }));
    info!(
        gameserver = %config.gameserver,
        namespace = %config.namespace,
        grpc = %handle.grpc_addr(),
        http = %handle.http_addr(),
        health = %health_addr,
        "SDK sidecar serving"
    );
    terminate.await;
    if config.graceful_termination {
        info!("termination requested; serving until the GameServer is Shutdown");
        backend.wait_for_shutdown().await;
    } else {
        info!("termination requested; stopping (graceful termination is off)");
    }
    backend.flush().await;
    handle.shutdown().await;
    let _ = stop_probes.send(());
    match probes.await {
        Ok(Ok(())) => {}
        Ok(Err(source)) => return Err(Error::Io { what: format!("serving probes on {health_addr}"), source }),
        Err(e) => return Err(Error::Sidecar(format!("probe server task failed: {e}"))),
    }
    info!("SDK sidecar stopped");
    Ok(())
}

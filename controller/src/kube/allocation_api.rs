//! `allocation.agones.dev/v1` GameServerAllocation as Agones serves it: an aggregated API
//! (not a CRD) behind the kube-apiserver, so `kubectl create -f gsa.yaml -o yaml` allocates a
//! server and prints the allocation with its status.
//!
//! The kube-apiserver authenticates the user, checks RBAC (`create` on
//! `gameserverallocations.allocation.agones.dev`) and proxies the request here over HTTPS. Every
//! controller replica serves it: allocation is one resourceVersion-guarded write per candidate
//! ([`KubeAllocator`]), so replicas need no leader. The routes are the
//! runtime-neutral ones of [`crate::allocation_api`]; this module adds TLS and the aggregator's
//! client certificate.

pub mod front_proxy;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

pub use crate::allocation_api::{
    ApiState, GROUP, GROUP_VERSION, KIND, PLURAL, SINGULAR, SyncedView, VERSION, router, status,
};

use self::front_proxy::ClientAuth;
use self::tls::TlsSource;
use super::allocator::KubeAllocator;
use super::{Error, Result};

/// Name of the Service the APIService points at (also a name in the self-signed certificate).
pub const SERVICE_NAME: &str = "stadion-allocation";

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how the allocation API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocationApiConfig {
    /// Listen address (`0.0.0.0:8443` in a cluster).
    pub addr: SocketAddr,
    /// The server certificate.
    pub tls: TlsSource,
    /// Who may connect: the aggregator only (its front-proxy certificate), or anyone.
    pub client_auth: ClientAuth,
}

/// The allocator's view is the GameServer watch cache: synced after its first full list.
#[async_trait]
impl SyncedView for KubeAllocator {
    async fn wait_until_synced(&self) -> bool {
        self.cache().wait_until_ready().await.is_ok()
    }
}

/// Binds the listener (separately, so a taken port fails the start).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Io { what: format!("binding allocation API on {addr}"), source })
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves. Each connection speaks
/// HTTP/2 or HTTP/1.1, whichever ALPN chose.
pub async fn serve_on(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(%error, "allocation API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tokio::spawn(serve_connection(acceptor.clone(), tcp, peer, router.clone()));
    }
}

async fn serve_connection(acceptor: TlsAcceptor, tcp: tokio::net::TcpStream, peer: SocketAddr, router: Router) {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            debug!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let service = TowerToHyperService::new(router);
    if let Err(error) = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await {
        debug!(%peer, %error, "allocation API connection ended with an error");
    }
}

/// Builds the TLS configuration (reading the front-proxy CA through `client` when callers must
/// be the aggregator), binds `config.addr` and returns the server future: what
/// `stadion controller` spawns.
pub async fn start(
    config: &AllocationApiConfig,
    client: &kube::Client,
    allocator: KubeAllocator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = ()> + Send + 'static> {
    let client_ca = match config.client_auth {
        ClientAuth::FrontProxy => Some(front_proxy::front_proxy_ca(client).await?),
        ClientAuth::Off => None,
    };
    let tls = config.tls.server_config(client_ca.as_deref())?;
    let listener = bind(config.addr).await?;
    let self_signed = matches!(config.tls, TlsSource::SelfSigned { .. });
    info!(addr = %config.addr, self_signed, client_auth = ?config.client_auth, "allocation API (allocation.agones.dev/v1) listening");
    Ok(serve_on(listener, tls, router(ApiState::new(allocator)), shutdown))
}

#[cfg(test)]
mod tests;

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

use async_trait::async_trait;
use axum::Router;
use axum::http::Extensions;
use axum::response::IntoResponse;
use stadion_sdk::http_server::{HttpServer, HttpTimeouts};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

pub use crate::allocation_api::{
    ApiState, GROUP, GROUP_VERSION, KIND, PLURAL, SINGULAR, SyncedView, VERSION, router, status,
};

use self::front_proxy::{ClientAuth, FrontProxyAuth, PeerCertificates};
use self::tls::TlsSource;
use super::allocator::KubeAllocator;
use super::{Error, Result};
use crate::allocation_api::status::ApiError;

/// Name of the Service the APIService points at (also a name in the self-signed certificate).
pub const SERVICE_NAME: &str = "stadion-allocation";

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

/// Serves `router` over TLS on `listener` until `shutdown` resolves, on the shared serve path
/// and its timeouts ([`HttpServer`]; the handshake counts against the header-read timeout).
/// Each connection speaks HTTP/2 or HTTP/1.1, whichever ALPN chose; the client's certificate
/// chain, if it sent one, goes with each of its requests as [`PeerCertificates`].
pub async fn serve_on(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_with_timeouts(listener, tls, router, HttpTimeouts::DEFAULT, shutdown).await;
}

/// [`serve_on`] with other timeouts (tests).
pub async fn serve_with_timeouts(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    timeouts: HttpTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = TlsAcceptor::from(tls);
    let handshake = move |tcp: TcpStream| {
        let acceptor = acceptor.clone();
        async move {
            let peer = tcp.peer_addr().ok();
            match acceptor.accept(tcp).await {
                Ok(stream) => {
                    let mut extensions = Extensions::new();
                    if let Some(chain) = stream.get_ref().1.peer_certificates() {
                        let chain = chain.iter().map(|c| c.clone().into_owned()).collect();
                        extensions.insert(PeerCertificates(Arc::new(chain)));
                    }
                    Some((stream, extensions))
                }
                Err(error) => {
                    debug!(?peer, %error, "allocation API TLS handshake failed");
                    None
                }
            }
        }
    };
    HttpServer::new("allocation API", |code, message| ApiError::from_code(code, message).into_response())
        .timeouts(timeouts)
        .serve_with_handshake(listener, handshake, router, shutdown)
        .await;
}

/// The routes, behind the front-proxy check when callers must be the aggregator.
pub fn authenticated_router(state: ApiState, auth: Option<Arc<FrontProxyAuth>>) -> Router {
    match auth {
        Some(auth) => router(state).layer(axum::middleware::from_fn_with_state(auth, front_proxy::authenticate)),
        None => router(state),
    }
}

/// Reads the aggregator's settings (when callers must be the aggregator), builds the TLS
/// configuration, binds `config.addr` and returns the server future: what `stadion
/// controller` spawns. That future also follows the authentication ConfigMap, so a rotated
/// front-proxy CA is taken up while it serves.
pub async fn start(
    config: &AllocationApiConfig,
    client: &kube::Client,
    allocator: KubeAllocator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = ()> + Send + 'static> {
    let auth = match config.client_auth {
        ClientAuth::FrontProxy => Some(Arc::new(FrontProxyAuth::new(front_proxy::read(client).await?))),
        ClientAuth::Off => None,
    };
    let tls = config.tls.server_config(auth.is_some())?;
    let listener = bind(config.addr).await?;
    let self_signed = matches!(config.tls, TlsSource::SelfSigned { .. });
    info!(addr = %config.addr, self_signed, client_auth = ?config.client_auth, "allocation API (allocation.agones.dev/v1) listening");
    let watching = auth.clone().map(|auth| front_proxy::watch(client.clone(), auth));
    let serving = serve_on(listener, tls, authenticated_router(ApiState::new(allocator), auth), shutdown);
    Ok(async move {
        match watching {
            Some(watching) => {
                tokio::select! {
                    () = serving => {}
                    () = watching => {}
                }
            }
            None => serving.await,
        }
    })
}

#[cfg(test)]
mod tests;

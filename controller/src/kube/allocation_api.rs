//! `allocation.agones.dev/v1` GameServerAllocation as Agones serves it: an aggregated API
//! (not a CRD) behind the kube-apiserver, so `kubectl create -f gsa.yaml -o yaml` allocates a
//! server and prints the allocation with its status.
//!
//! The kube-apiserver authenticates the user, checks RBAC (`create` on
//! `gameserverallocations.allocation.agones.dev`) and proxies the request here over HTTPS. Every
//! controller replica serves it: allocation is one resourceVersion-guarded write per candidate
//! ([`KubeAllocator`]), so replicas need no leader. Routes: the discovery documents
//! ([`discovery`]), the create ([`create`]), health, and a Kubernetes `Status` ([`status`]) for
//! everything else.

pub mod create;
pub mod discovery;
pub mod front_proxy;
pub mod status;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use futures::FutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use self::front_proxy::ClientAuth;
use self::status::ApiError;
use self::tls::TlsSource;
use super::allocator::KubeAllocator;
use super::{Error, Result};

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
/// Name of the Service the APIService points at (also a name in the self-signed certificate).
pub const SERVICE_NAME: &str = "stadion-allocation";

/// How long a create waits for the GameServer cache to fill after a start.
const CACHE_WAIT: Duration = Duration::from_secs(5);
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

/// What every request handler shares.
#[derive(Clone)]
pub struct ApiState {
    allocator: KubeAllocator,
    cache_wait: Duration,
}

impl ApiState {
    /// Handlers allocating through `allocator`.
    pub fn new(allocator: KubeAllocator) -> Self {
        Self { allocator, cache_wait: CACHE_WAIT }
    }

    /// How long a create waits for an unsynced GameServer cache before answering 503.
    pub fn with_cache_wait(mut self, wait: Duration) -> Self {
        self.cache_wait = wait;
        self
    }
}

/// The routes of the allocation API.
pub fn router(state: ApiState) -> Router {
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
        .route("/healthz", only_get(|| async { "ok" }))
        .route("/livez", only_get(|| async { "ok" }))
        .route("/readyz", only_get(readyz))
        .fallback(not_found)
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

/// Ready once the GameServer cache is filled, so the aggregator's health check and the Service
/// only send creates to replicas that can answer them truthfully.
async fn readyz(State(state): State<ApiState>) -> Response {
    match state.allocator.cache().wait_until_ready().now_or_never() {
        Some(Ok(())) => "ok".into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "GameServer cache not synced").into_response(),
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

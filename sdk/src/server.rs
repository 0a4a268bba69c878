//! The SDK sidecar (feature `server`): gRPC on the SDK port and the REST gateway on the HTTP port,
//! generic over a [`GameServerBackend`].
//!
//! Entry points: [`bind`] (or your own pre-bound listeners) then [`serve`], which returns a
//! [`SdkServerHandle`] holding the bound addresses. Many sidecars can run in one process: each is a
//! handful of tasks on the caller's Tokio runtime.

mod backend;
mod behaviour;
mod calls;
pub mod conformance;
mod convert;
mod error;
mod grpc;
mod health;
pub mod local;
mod metadata;
pub mod rest;
pub mod tracking;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::http_server::HttpTimeouts;

pub use backend::{GameServerBackend, Mutation};
pub use behaviour::{CallObserver, Sidecar};
pub use calls::SdkCall;
pub use convert::to_proto;
pub use error::{SdkError, http_status};
pub use grpc::{AlphaService, BetaService, StableService};

use crate::proto::{alpha, beta};

/// Default cap on request sizes (REST bodies and gRPC messages): 1 MiB is far above any SDK call.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// How a sidecar serves, beyond its listeners.
#[derive(Clone)]
pub struct ServeOptions {
    /// Largest accepted REST body or gRPC message, in bytes.
    pub body_limit: usize,
    /// Sees every SDK call (logging, metrics, conformance tests).
    pub observer: Option<CallObserver>,
    /// Run health checking from pings (the GameServer's `spec.health` still decides how).
    pub health_checks: bool,
    /// Whether failed health checks mark the server Unhealthy (a cluster, `stadion up`), or are
    /// only logged (`sdk-server --local`, as Agones' local SDK server does).
    pub enforce_health: bool,
    /// Header-read, body-read and idle timeouts of both ports (gRPC connections may idle for
    /// at least [`GRPC_MIN_IDLE`], as SDK clients keep one channel open between calls).
    pub timeouts: HttpTimeouts,
}

/// The shortest keep-alive idleness allowed on the gRPC port.
pub const GRPC_MIN_IDLE: Duration = Duration::from_secs(300);

impl ServeOptions {
    fn grpc_timeouts(&self) -> HttpTimeouts {
        HttpTimeouts { idle: self.timeouts.idle.max(GRPC_MIN_IDLE), ..self.timeouts }
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            observer: None,
            health_checks: true,
            enforce_health: true,
            timeouts: HttpTimeouts::DEFAULT,
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("body_limit", &self.body_limit)
            .field("observer", &self.observer.is_some())
            .field("health_checks", &self.health_checks)
            .field("enforce_health", &self.enforce_health)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// Why a sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A port could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// `gRPC` or `HTTP`.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bound address of a listener could not be read.
    #[error("cannot read the bound address of the {what} listener: {source}")]
    LocalAddr {
        /// `gRPC` or `HTTP`.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The two listeners of one sidecar.
#[derive(Debug)]
pub struct SdkListeners {
    /// gRPC (`AGONES_SDK_GRPC_PORT`).
    pub grpc: TcpListener,
    /// REST (`AGONES_SDK_HTTP_PORT`).
    pub http: TcpListener,
}

/// Binds both ports; port 0 picks a free one (read it back from the handle [`serve`] returns).
pub async fn bind(grpc: SocketAddr, http: SocketAddr) -> Result<SdkListeners, ServeError> {
    let grpc_listener =
        TcpListener::bind(grpc).await.map_err(|source| ServeError::Bind { addr: grpc, what: "gRPC", source })?;
    let http_listener =
        TcpListener::bind(http).await.map_err(|source| ServeError::Bind { addr: http, what: "HTTP", source })?;
    Ok(SdkListeners { grpc: grpc_listener, http: http_listener })
}

/// A running sidecar. Dropping it stops serving at once; [`shutdown`](Self::shutdown) stops
/// gracefully.
#[derive(Debug)]
pub struct SdkServerHandle {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    sidecar: Sidecar,
    stop: watch::Sender<bool>,
    /// The gRPC and HTTP servers: they stop gracefully.
    servers: Vec<JoinHandle<()>>,
    /// Health checking and the like: they stop at once.
    background: Vec<JoinHandle<()>>,
}

impl SdkServerHandle {
    /// Where gRPC is served.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where REST is served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The behaviour behind both protocols (to drive it in-process).
    pub fn sidecar(&self) -> &Sidecar {
        &self.sidecar
    }

    /// Stops accepting, ends open watch and health streams, and waits (up to 5 s) for in-flight
    /// calls to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in &self.background {
            task.abort();
        }
        for mut task in std::mem::take(&mut self.servers) {
            if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
                tracing::warn!(grpc = %self.grpc_addr, http = %self.http_addr, "SDK server did not stop in 5 s; aborting");
                task.abort();
            }
        }
    }
}

impl Drop for SdkServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in self.servers.iter().chain(&self.background) {
            task.abort();
        }
    }
}

/// Serves the SDK for `backend` on `listeners`: gRPC (stable, alpha and beta services), the REST
/// gateway, and health checking. Must be called inside a Tokio runtime.
pub fn serve(
    backend: Arc<dyn GameServerBackend>,
    listeners: SdkListeners,
    options: ServeOptions,
) -> Result<SdkServerHandle, ServeError> {
    let grpc_addr = listeners.grpc.local_addr().map_err(|source| ServeError::LocalAddr { what: "gRPC", source })?;
    let http_addr = listeners.http.local_addr().map_err(|source| ServeError::LocalAddr { what: "HTTP", source })?;
    let sidecar = Sidecar::new(backend, options.observer.clone());
    let (stop, stopped) = watch::channel(false);
    let limit = options.body_limit;

    let stable = crate::proto::sdk_server::SdkServer::new(StableService::new(sidecar.clone(), stopped.clone()))
        .max_decoding_message_size(limit);
    let alpha = alpha::sdk_server::SdkServer::new(AlphaService::new(sidecar.clone())).max_decoding_message_size(limit);
    let beta = beta::sdk_server::SdkServer::new(BetaService::new(sidecar.clone())).max_decoding_message_size(limit);
    // Both ports go through the one HTTP serve path, so both have its header-read, body-read and
    // idle timeouts. gRPC is HTTP/2 there, exactly as from tonic's own server.
    let grpc_router = tonic::service::Routes::new(stable)
        .add_service(alpha)
        .add_service(beta)
        .prepare()
        .into_axum_router()
        .layer(tower_http::trace::TraceLayer::new_for_grpc().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| tracing::debug_span!("sdk_grpc", rpc = %request.uri().path()),
        ));
    let grpc_server = crate::http_server::HttpServer::new("sdk-grpc", rest::refusal).timeouts(options.grpc_timeouts());
    let grpc_task = tokio::spawn(grpc_server.serve(listeners.grpc, grpc_router, grpc::stopped(stopped.clone())));

    let rest_server = crate::http_server::HttpServer::new("sdk-rest", rest::refusal).timeouts(options.timeouts);
    let router = rest::router(sidecar.clone(), stopped.clone(), limit);
    let http_task = tokio::spawn(rest_server.serve(listeners.http, router, grpc::stopped(stopped.clone())));

    let servers = vec![grpc_task, http_task];
    let mut background = Vec::new();
    if options.health_checks {
        background.push(tokio::spawn(health::run_health_checks(sidecar.clone(), options.enforce_health)));
    }
    tracing::info!(%grpc_addr, %http_addr, "SDK server listening");
    Ok(SdkServerHandle { grpc_addr, http_addr, sidecar, stop, servers, background })
}

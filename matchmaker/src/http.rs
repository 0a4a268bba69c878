//! The HTTP edge (axum): thin handlers over [`Matchmaker`], JSON errors, limits and auth.
//!
//! Routes (also in `GET /openapi.json`): `POST /v1/tickets`, `GET|DELETE /v1/tickets/{id}`,
//! `GET /v1/tickets/{id}/events` (Server-Sent Events), `POST /v1/allocations`, Agones'
//! allocation API (`POST /gameserverallocation` and gRPC `allocation.AllocationService/Allocate`,
//! see [`crate::agones_allocation`]), and, always without auth, `GET /healthz`, `GET /metrics`,
//! `GET /openapi.json`. The listener speaks HTTP/1.1 and HTTP/2 (prior knowledge, for gRPC).

mod auth;
pub(crate) mod body;
mod error;
mod events;
mod openapi;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use stadion_crds::allocation::GameServerAllocationStatus;
use stadion_sdk::http_server::{HttpServer, HttpTimeouts, RequestGuard};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::ticket::{Ticket, TicketRequest};
use crate::{Error, Matchmaker};

pub use openapi::{ROUTES, openapi};

use self::auth::Tokens;
use self::body::{AllocationBody, BodyLimit, JsonBody};

impl Matchmaker {
    /// The full HTTP API as a router, ready to be served or nested into another server.
    pub fn router(&self) -> Router {
        let http = &self.config().http;
        let tokens = Tokens(Arc::new(http.tokens.clone()));
        let api = Router::new()
            .route("/v1/tickets", post(create_ticket))
            .route("/v1/tickets/{id}", get(get_ticket).delete(cancel_ticket))
            .route("/v1/tickets/{id}/events", get(events::ticket_events))
            .route("/v1/allocations", post(allocate))
            .merge(self.agones_allocation().router(http.max_body_bytes))
            .route_layer(axum::middleware::from_fn_with_state(tokens, auth::require_bearer));
        let routes = Router::new()
            .merge(api)
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .route("/openapi.json", get(|| async { Json(openapi()) }))
            .fallback(|| async { Error::NotFound("route".to_owned()) })
            .method_not_allowed_fallback(|method: Method| async move {
                Error::Refused { status: 405, message: format!("method {method} is not allowed on this route") }
            })
            .layer(DefaultBodyLimit::max(http.max_body_bytes))
            .layer(Extension(BodyLimit(http.max_body_bytes)))
            .with_state(self.clone());
        // POST bodies are JSON only (415 otherwise); gRPC on the same port passes.
        RequestGuard::json_only(Arc::new(refusal)).wrap(routes).layer(TraceLayer::new_for_http())
    }
}

async fn create_ticket(
    State(matchmaker): State<Matchmaker>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<TicketRequest>,
) -> Result<Response, Error> {
    let header_key = match headers.get("idempotency-key") {
        Some(value) => {
            Some(value.to_str().map_err(|_| Error::invalid("Idempotency-Key", "must be visible ASCII"))?.to_owned())
        }
        None => None,
    };
    let (ticket, created) = matchmaker.submit(request, header_key).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let location = format!("/v1/tickets/{}", ticket.id);
    Ok((status, [(header::LOCATION, location)], Json(ticket)).into_response())
}

async fn get_ticket(State(matchmaker): State<Matchmaker>, Path(id): Path<String>) -> Result<Json<Ticket>, Error> {
    matchmaker.ticket(&id).map(Json)
}

async fn cancel_ticket(State(matchmaker): State<Matchmaker>, Path(id): Path<String>) -> Result<Json<Ticket>, Error> {
    matchmaker.cancel(&id).await.map(Json)
}

async fn allocate(
    State(matchmaker): State<Matchmaker>,
    AllocationBody(request): AllocationBody,
) -> Result<Json<GameServerAllocationStatus>, Error> {
    matchmaker.allocate(request).await.map(Json)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn metrics(State(matchmaker): State<Matchmaker>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        matchmaker.metrics().encode(),
    )
}

/// A refusal made before routing (a timeout, a body that is not JSON), as the matchmaker's usual
/// JSON error.
fn refusal(status: StatusCode, message: String) -> Response {
    Error::Refused { status: status.as_u16(), message }.into_response()
}

/// Binds `addr` and serves the API with the background loop until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    matchmaker: Matchmaker,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = TcpListener::bind(addr).await.map_err(|source| Error::Serve { addr: addr.to_string(), source })?;
    serve_listener(listener, matchmaker, shutdown).await
}

/// Serves the API on an already-bound listener (tests bind `127.0.0.1:0`) and runs the
/// background loop. On `shutdown`: stop accepting, end event streams, answer in-flight
/// requests, then stop the loop.
pub async fn serve_listener(
    listener: TcpListener,
    matchmaker: Matchmaker,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    serve_listener_with(listener, matchmaker, HttpTimeouts::DEFAULT, shutdown).await
}

/// [`serve_listener`] with other header-read, body-read and idle timeouts (tests use 1 s).
pub async fn serve_listener_with(
    listener: TcpListener,
    matchmaker: Matchmaker,
    timeouts: HttpTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(%addr, "matchmaker listening");
    let (stop_loop, loop_stopped) = tokio::sync::oneshot::channel::<()>();
    let background = matchmaker.run(async {
        let _ = loop_stopped.await;
    });
    let closer = matchmaker.clone();
    HttpServer::new("matchmaker", refusal)
        .timeouts(timeouts)
        .serve(listener, matchmaker.router(), async move {
            shutdown.await;
            closer.close();
        })
        .await;
    tracing::debug!(%addr, "matchmaker stopped serving");
    let _ = stop_loop.send(());
    let _ = background.await;
    Ok(())
}

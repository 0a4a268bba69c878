//! One HTTP serve path for every Stadion server (feature `http-server`): the sidecar's REST
//! gateway and gRPC port, the matchmaker, `stadion up`'s admin API and the kube probe and
//! metrics endpoints all go through [`HttpServer::serve`].
//!
//! `axum::serve` has no timeouts, so a TCP connect that never sends a request head, or a request
//! whose declared body never arrives, holds a connection (and its descriptor) forever. This
//! serve path adds, per connection:
//! - a header-read timeout: a connection with no request in flight is closed once it has gone
//!   [`HttpTimeouts::header_read`] without a complete request head (the first request) or
//!   [`HttpTimeouts::idle`] (between keep-alive requests);
//! - a body-read timeout: a request body that has not fully arrived within
//!   [`HttpTimeouts::body_read`] of its head is answered 408 (the server's JSON error shape)
//!   and the HTTP/1 connection closed. gRPC requests are exempt, since their bodies are streams
//!   (a health stream lives as long as the game).
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge, as gRPC clients speak it) are served on the same
//! listener. [`RequestGuard`] is the request filter the servers share: JSON-only bodies and,
//! for the sidecar, the refusal of browser requests.

mod connection;
mod guard;
pub mod probe;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Extensions, StatusCode};
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use guard::RequestGuard;

/// Builds a server's JSON error response for a status and a message, in that server's own
/// error shape (each server keeps the shape its clients already read).
pub type Refusal = Arc<dyn Fn(StatusCode, String) -> Response + Send + Sync>;

/// The timeouts of one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// How long a new connection may take to send its first complete request head.
    pub header_read: Duration,
    /// How long a request body may take to arrive in full, from its head.
    pub body_read: Duration,
    /// How long a keep-alive connection may sit with no request in flight.
    pub idle: Duration,
}

impl HttpTimeouts {
    /// The defaults: 10 s for a request head, 10 s for a body, 60 s of keep-alive idleness.
    pub const DEFAULT: Self = Self {
        header_read: Duration::from_secs(10),
        body_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    /// The same timeout for all three (tests use 1 s).
    pub fn all(timeout: Duration) -> Self {
        Self { header_read: timeout, body_read: timeout, idle: timeout }
    }
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How one server serves: its timeouts and its JSON error shape.
#[derive(Clone)]
pub struct HttpServer {
    timeouts: HttpTimeouts,
    refuse: Refusal,
    name: &'static str,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer").field("name", &self.name).field("timeouts", &self.timeouts).finish()
    }
}

impl HttpServer {
    /// A server called `name` in logs, answering its own refusals (408) with `refuse`.
    pub fn new(name: &'static str, refuse: impl Fn(StatusCode, String) -> Response + Send + Sync + 'static) -> Self {
        Self { timeouts: HttpTimeouts::DEFAULT, refuse: Arc::new(refuse), name }
    }

    /// Replaces the default timeouts.
    pub fn timeouts(mut self, timeouts: HttpTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The refusal builder, to share with a [`RequestGuard`].
    pub fn refusal(&self) -> Refusal {
        self.refuse.clone()
    }

    /// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, asks every
    /// connection to finish (HTTP/2 GOAWAY, HTTP/1 close after the response in flight) and
    /// waits for them. Accept errors (such as running out of descriptors) are logged and
    /// retried after a pause rather than ending the server.
    pub async fn serve(
        self,
        listener: TcpListener,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let plain = |stream: TcpStream| std::future::ready(Some((stream, Extensions::new())));
        self.serve_with_handshake(listener, plain, router, shutdown).await;
    }

    /// [`serve`](Self::serve) for a protocol under HTTP (TLS): each accepted connection first
    /// goes through `handshake`, which returns the stream to speak HTTP on and extensions added
    /// to every request of that connection (the client's certificate, say), or `None` to drop
    /// it. A handshake counts against [`HttpTimeouts::header_read`]: one that does not finish
    /// by then is dropped, so a client that connects and says nothing holds nothing for long.
    pub async fn serve_with_handshake<H, Fut, Io>(
        self,
        listener: TcpListener,
        handshake: H,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) where
        H: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<(Io, Extensions)>> + Send + 'static,
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let shared = Arc::new(connection::Shared { timeouts: self.timeouts, refuse: self.refuse.clone() });
        let (stop, stopped) = watch::channel(false);
        let mut connections = JoinSet::new();
        let name = self.name;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let handshaking = handshake(stream);
                        let (router, shared, stopped) = (router.clone(), shared.clone(), stopped.clone());
                        connections.spawn(async move {
                            match tokio::time::timeout(shared.timeouts.header_read, handshaking).await {
                                Ok(Some((io, extensions))) => {
                                    connection::serve(io, extensions, router, shared, stopped).await;
                                }
                                Ok(None) => {}
                                Err(_) => tracing::debug!(server = name, %peer, "handshake timed out; dropping the connection"),
                            }
                        });
                    }
                    Err(error) if is_per_connection(&error) => {}
                    Err(error) => {
                        tracing::warn!(%error, server = self.name, %address, "accepting a connection failed; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stop.send(true);
        while connections.join_next().await.is_some() {}
    }
}

/// Errors that concern one connection only (it was reset before we took it).
fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(error.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

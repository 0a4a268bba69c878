//! One connection: hyper's auto (HTTP/1.1 + HTTP/2) connection, a watchdog that closes it when
//! it has had no request in flight for too long, and the body deadline.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Extensions, HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::{HttpTimeouts, Refusal};

/// After a close was asked for, how long a connection that does not finish is given before it
/// is dropped (a client that never answers a GOAWAY, a half-sent head).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What every connection of one server shares.
pub(super) struct Shared {
    pub(super) timeouts: HttpTimeouts,
    pub(super) refuse: Refusal,
}

/// Whether a connection is busy, and since when it is not.
struct Activity {
    state: Mutex<ActivityState>,
}

struct ActivityState {
    in_flight: usize,
    idle_since: Instant,
    served: bool,
}

impl Activity {
    fn new() -> Self {
        Self { state: Mutex::new(ActivityState { in_flight: 0, idle_since: Instant::now(), served: false }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.lock().in_flight += 1;
        InFlight(self.clone())
    }

    /// When the connection is to be closed if nothing starts; `None` while a request (or its
    /// response body) is in flight.
    fn deadline(&self, timeouts: &HttpTimeouts) -> Option<Instant> {
        let state = self.lock();
        let allowed = if state.served { timeouts.idle } else { timeouts.header_read };
        (state.in_flight == 0).then(|| state.idle_since + allowed)
    }
}

/// One request in flight, until its response body is sent or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.served = true;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
    }
}

/// Serves one connection until it ends, is idle too long, or the server stops.
/// `extensions` (what the connection's handshake learnt) are added to each of its requests.
pub(super) async fn serve<Io>(
    stream: Io,
    extensions: Extensions,
    router: Router,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        let shared = shared.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().extend(extensions.clone());
            handle(request, router.clone(), activity.clone(), shared.clone())
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(shared.timeouts.header_read);
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    // When a close was asked for (idle, or the server stopping); the connection is dropped if it
    // is still idle `CLOSE_GRACE` later.
    let mut closing: Option<Instant> = None;
    let recheck = shared.timeouts.header_read.min(shared.timeouts.idle).max(Duration::from_millis(100));
    // When the connection is to be closed, as its activity says now: a deadline read before a
    // sleep is stale once it ends, since requests may have come and gone meanwhile.
    let deadline = |closing: Option<Instant>| match (activity.deadline(&shared.timeouts), closing) {
        (Some(_), Some(asked)) => Some(asked + CLOSE_GRACE),
        (deadline, _) => deadline,
    };
    loop {
        let wake = deadline(closing).unwrap_or_else(|| Instant::now() + recheck);
        tokio::select! {
            _ = connection.as_mut() => return,
            changed = stop.changed(), if closing.is_none() => {
                if changed.is_err() || *stop.borrow() {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if deadline(closing).is_none_or(|d| d > Instant::now()) {
                    continue;
                }
                if closing.is_some() {
                    tracing::debug!("dropping a connection that did not close");
                    return;
                }
                tracing::debug!("closing a connection with no complete request in time");
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    router: Router,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible> {
    let in_flight = activity.begin();
    let http1 = request.version() < Version::HTTP_2;
    let timed_out = Arc::new(AtomicBool::new(false));
    let request = if is_grpc(&request) || request.body().is_end_stream() {
        request.map(Body::new)
    } else {
        let deadline = shared.timeouts.body_read;
        request.map(|body| Body::new(DeadlineBody::new(body, deadline, timed_out.clone())))
    };
    let mut response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if timed_out.load(Ordering::Acquire) {
        let seconds = shared.timeouts.body_read.as_secs_f64();
        response =
            (shared.refuse)(StatusCode::REQUEST_TIMEOUT, format!("the request body did not arrive within {seconds} s"));
        if http1 {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    Ok(response.map(|body| Body::new(TrackedBody { inner: body, _in_flight: in_flight })))
}

fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Why a request body ended early.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub(super) struct BodyTimeout;

/// A request body that fails once its deadline passes before it has fully arrived.
struct DeadlineBody {
    inner: Incoming,
    sleep: Pin<Box<Sleep>>,
    timed_out: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Incoming, within: Duration, timed_out: Arc<AtomicBool>) -> Self {
        Self { inner, sleep: Box::pin(tokio::time::sleep(within)), timed_out }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.timed_out.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in flight until it is sent or dropped.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

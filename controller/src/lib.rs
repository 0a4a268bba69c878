//! Stadion's controller: the runtimes that carry the core's decisions out.
//!
//! [`stadion_core`] turns observed objects into plans (data): no I/O, no async. [`executor`]
//! carries the set, fleet and autoscaler plans out once, against the core's store and recorder
//! seams, and [`allocation`] the allocation compare-and-swap. [`local`] is the embedded runtime behind `stadion up` (an in-memory store with
//! Kubernetes-like semantics and a process supervisor); [`kube`] runs the same executors against
//! a real API server.

pub mod allocation;
pub mod allocation_api;
pub mod dashboard;
pub mod executor;
pub mod kube;
pub mod local;
pub mod metrics;

/// The JSON error body of the controller's own HTTP endpoints (the admin API, probes,
/// metrics): `{"error": "<message>", "code": <status>}`.
pub(crate) fn http_refusal(status: axum::http::StatusCode, message: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, axum::Json(serde_json::json!({"error": message, "code": status.as_u16()}))).into_response()
}

//! Stadion's controller: the reconcile decisions as pure code, and the runtimes that carry
//! them out.
//!
//! [`core`] turns observed objects into plans (data): no I/O, no async. [`local`] is the
//! embedded runtime behind `stadion up` (an in-memory store with Kubernetes-like semantics and a
//! process supervisor); [`kube`] drives the same core against a real API server.

pub mod allocation;
pub mod kube;
pub mod local;

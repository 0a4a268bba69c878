//! Stadion's controller: the runtimes that carry the core's decisions out.
//!
//! [`stadion_core`] turns observed objects into plans (data): no I/O, no async. [`executor`]
//! carries the set, fleet and autoscaler plans out once, against the core's store and recorder
//! seams, and [`allocation`] the allocation compare-and-swap. [`local`] is the embedded runtime behind `stadion up` (an in-memory store with
//! Kubernetes-like semantics and a process supervisor); [`kube`] runs the same executors against
//! a real API server.

pub mod allocation;
pub mod allocation_api;
pub mod executor;
pub mod kube;
pub mod local;

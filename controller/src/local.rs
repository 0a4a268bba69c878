//! The local runtime behind `stadion up`: an embedded store with Kubernetes-like semantics, a
//! process supervisor that runs each GameServer as a child process, in-process SDK sidecars, and
//! controller tasks that carry out the core's plans against them.
//!
//! - [`store`]: the object store (resourceVersion, CAS, finalizers, owner references, watches).
//! - [`supervisor`]: game processes in their own process groups, with grace periods.
//! - [`sdk_backend`]: the SDK sidecar's backend over the store.
//! - [`allocator`]: allocation as one compare-and-swap ([`stadion_core::allocator::Allocator`]).
//! - [`recorder`]: Events and pass counts of the executors, kept in memory and logged.
//! - [`files`] and [`admin`]: reading manifests for `stadion up`, and its JSON endpoint.
//! - [`metrics`]: Agones' metrics at the admin address's `/metrics`.
//! - [`runtime`]: [`LocalRuntime`], which wires all of the above together.

pub mod admin;
pub mod allocator;
pub mod dashboard;
pub mod error;
mod fd_passing;
pub mod files;
pub mod metrics;
pub mod recorder;
pub mod resources;
pub mod runtime;
pub mod sandbox;
pub mod sdk_backend;
pub mod store;
pub mod supervisor;

pub use allocator::LocalAllocator;
pub use error::{Error, Result};
pub use runtime::{LocalRuntime, Manifest, RuntimeConfig, Snapshot};

//! The local runtime behind `stadion up`: an embedded store with Kubernetes-like semantics, a
//! process supervisor that runs each GameServer as a child process, and in-process SDK sidecars.

pub mod error;
pub mod store;
pub mod supervisor;

pub use error::{Error, Result};

//! Agones-compatible resource types for Stadion.
//!
//! `agones.dev/v1` GameServer, GameServerSet and Fleet, `autoscaling.agones.dev/v1`
//! FleetAutoscaler and `allocation.agones.dev/v1` GameServerAllocation, with Agones' JSON field
//! names. Every kind has `apply_defaults` (Agones' defaults, as a plain function) and `validate`
//! (every problem, each with its field path); [`validation`] also holds the Kubernetes name and
//! label syntax checks (`validate_label_key`, `validate_label_value`) the SDK sidecar reuses.
//! [`crd`] generates the CustomResourceDefinition YAML that ships in `crds/` (its only I/O is
//! writing those files on request). Nothing here is async: every other Stadion crate builds on it.

mod resource;

pub mod allocation;
pub mod allocation_ttl;
pub mod common;
pub mod crd;
pub mod duration;
pub mod fleet;
pub mod fleetautoscaler;
pub mod gameserver;
pub mod gameserverset;
pub mod labels;
pub mod manifest;
pub mod strict;
pub mod validation;

pub use allocation::GameServerAllocation;
pub use fleet::Fleet;
pub use fleetautoscaler::FleetAutoscaler;
pub use gameserver::{GameServer, GameServerState};
pub use gameserverset::GameServerSet;
pub use validation::{FieldError, FieldErrors};

/// Re-exported so users of these types name the same Kubernetes API version we build against.
pub use k8s_openapi;

//! The scenarios: each what a user relies on, as Agones behaves, asserted the same way on
//! every runtime.

mod admission;
mod allocation;
mod autoscaling;
mod errors;
mod ownership;
mod reserve;
mod rolling;
mod scaling;

pub use admission::{defaults_stored, invalid_fleet_reported};
pub use allocation::allocation_under_contention;
pub use autoscaling::autoscaler_follows_allocation;
pub use errors::error_server_held_then_replaced;
pub use ownership::owner_references_and_orphans;
pub use reserve::reserve_allocated_and_reserve_expiry;
pub use rolling::rolling_update_keeps_allocated;
pub use scaling::{scale_distributed, scale_packed};

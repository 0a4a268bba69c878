//! Stadion's matchmaker: queues, tickets, a pure matching engine and the HTTP API.
//!
//! Players' tickets go in; matches come out and are allocated a Ready GameServer through the
//! [`Allocator`] trait (implemented by the controller's runtimes), and every ticket of the match
//! is handed the server's address and port.
//!
//! - [`config`]: the queues YAML, validated at start.
//! - [`engine`]: pure matching over tickets and a clock.
//! - [`Matchmaker`]: ticket states, the engine loop and allocation.
//! - [`http`]: the axum edge — [`Matchmaker::router`] to mount, [`http::serve`] to run alone.

pub mod allocator;
pub mod config;
pub mod engine;
mod error;
pub mod http;
pub mod metrics;
mod service;
pub mod ticket;

pub use allocator::{AllocateError, Allocator};
pub use config::MatchmakerConfig;
pub use error::Error;
pub use service::{Backoff, Matchmaker};

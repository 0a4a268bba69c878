//! Stadion's matchmaker: queues, tickets, a pure matching engine and the HTTP API.
//!
//! Players' tickets go in; matches come out and are allocated a Ready GameServer through the
//! [`Allocator`] trait (implemented by the controller's runtimes), and every ticket of the match
//! is handed the server's address and port.

pub mod allocator;
pub mod config;
pub mod engine;
mod error;

pub use allocator::{AllocateError, Allocator};
pub use config::MatchmakerConfig;
pub use error::Error;

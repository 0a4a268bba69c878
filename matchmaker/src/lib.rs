//! Stadion's matchmaker: queues, tickets, a pure matching engine and the HTTP API.
//!
//! Players' tickets go in; matches come out and are allocated a Ready GameServer through the
//! [`Allocator`] trait (implemented by the controller's runtimes), and every ticket of the match
//! is handed the server's address and port.
//!
//! - [`config`]: the queues YAML, validated at start.
//! - [`engine`]: pure matching over tickets and a clock.
//! - [`Matchmaker`]: ticket states, the engine loop and allocation.
//! - [`store`]: what survives a restart (tickets, waiting matches), in memory or in a journal.
//! - [`http`]: the axum edge — [`Matchmaker::router`] to mount, [`http::serve`] to run alone.
//! - [`agones_allocation`]: Agones' allocation service (gRPC and REST) for backends written
//!   against Agones, mounted by the same router.
//!
//! Binaries wire it as: `MatchmakerConfig::from_yaml_file(path)?`, then
//! `Matchmaker::new(config, allocator)?`; standalone, `http::serve(addr, matchmaker, shutdown)`
//! runs the background loop and the API; embedded (`stadion up`), mount `matchmaker.router()`
//! into the host server, start `matchmaker.run(shutdown)`, and call `matchmaker.close()` when
//! shutting down so open event streams end and graceful shutdown can finish.

pub mod agones_allocation;
pub mod config;
pub mod engine;
mod error;
pub mod http;
pub mod metrics;
mod service;
pub mod store;
pub mod ticket;

pub use config::MatchmakerConfig;
pub use error::Error;
pub use service::{Backoff, Matchmaker, QueueChanges, Reconfigured};
pub use stadion_core::allocator::{AllocateError, AllocationOutcome, Allocator};

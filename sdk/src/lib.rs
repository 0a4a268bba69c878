//! Stadion's Agones SDK: the wire protocol, the Rust client game servers link, and (feature
//! `server`) the sidecar that answers it.
//!
//! The protocol is Agones' own (`agones.dev.sdk`, `.alpha`, `.beta`: same services, messages and
//! field numbers), so a game written against any official Agones SDK — Go, C#, C++, Node, Rust or
//! plain REST — talks to Stadion's sidecar unchanged, and a game using this crate talks to Agones'.
//! The generated code is committed under `src/generated/` (no `protoc` needed to build).
//! [`allocation`] holds Agones' allocation service (`allocation.AllocationService`), which game
//! backends call and Stadion's matchmaker serves.
//!
//! ```no_run
//! use std::time::Duration;
//! use futures::StreamExt;
//!
//! # async fn game() -> Result<(), stadion_sdk::Error> {
//! // Reads AGONES_SDK_GRPC_HOST / AGONES_SDK_GRPC_PORT and waits for the sidecar to be up.
//! let sdk = stadion_sdk::Sdk::connect().await?;
//! // Keeps the server healthy until the pinger is dropped.
//! let _pinger = sdk.health_pinger(Duration::from_secs(2));
//! sdk.set_label("map", "dust2").await?;
//! sdk.ready().await?;
//!
//! let mut changes = sdk.watch_game_server().await?;
//! while let Some(gs) = changes.next().await {
//!     let state = gs?.status.map(|s| s.state).unwrap_or_default();
//!     if state == "Allocated" {
//!         // A match is coming: host it, then leave.
//!         sdk.beta().increment_counter("rooms", 1).await?;
//!         sdk.shutdown().await?;
//!         break;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod client;
#[cfg(feature = "http-server")]
pub mod http_server;
#[cfg(feature = "server")]
pub mod server;

pub use client::{AlphaSdk, BetaSdk, Error, HealthPinger, HealthSender, Result, Sdk, SdkConfig};

/// Generated protocol types and gRPC stubs (`agones.dev.sdk` and its alpha/beta packages).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!("generated/agones.dev.sdk.rs");

    /// `agones.dev.sdk.alpha`: player tracking.
    pub mod alpha {
        include!("generated/agones.dev.sdk.alpha.rs");
    }

    /// `agones.dev.sdk.beta`: counters and lists.
    pub mod beta {
        include!("generated/agones.dev.sdk.beta.rs");
    }
}

/// Generated types and gRPC stubs of Agones' allocation service (package `allocation`): the
/// client game backends call and the server the matchmaker implements. Not behind the `server`
/// feature: neither half belongs to the sidecar.
#[allow(missing_docs, deprecated, clippy::all, clippy::pedantic)]
pub mod allocation {
    include!("generated/allocation.rs");
}

/// Default gRPC port of the sidecar (`AGONES_SDK_GRPC_PORT`).
pub const DEFAULT_GRPC_PORT: u16 = 9357;
/// Default REST port of the sidecar (`AGONES_SDK_HTTP_PORT`).
pub const DEFAULT_HTTP_PORT: u16 = 9358;

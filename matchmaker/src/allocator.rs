//! The seam between matchmaking and the fleet: allocate one server for one match.
//!
//! The matchmaker never touches GameServers itself. The local runtime (`stadion up`) and the
//! kube runtime each implement [`Allocator`] with one compare-and-swap per allocation, so no
//! server is ever handed to two matches.

use async_trait::async_trait;
use stadion_crds::allocation::{GameServerAllocation, GameServerAllocationStatus};
use stadion_crds::validation::FieldErrors;
use tokio::sync::watch;

/// Why an allocation did not produce a server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AllocateError {
    /// No server matched the request right now (HTTP 429 / gRPC RESOURCE_EXHAUSTED).
    #[error("no game server is available for this allocation")]
    Unavailable,
    /// The request itself is invalid (HTTP 422 / INVALID_ARGUMENT).
    #[error("invalid allocation request: {0}")]
    Invalid(FieldErrors),
    /// The backend failed (store or API server unreachable); worth retrying later.
    #[error("allocation backend failed: {0}")]
    Backend(String),
}

/// Allocates GameServers. Implemented by the controller's local and kube runtimes.
#[async_trait]
pub trait Allocator: Send + Sync + 'static {
    /// Allocates one server for `request` (its `metadata.namespace`, `default` when unset).
    /// On success the server is Allocated and the status says where it is.
    async fn allocate(&self, request: GameServerAllocation) -> Result<GameServerAllocationStatus, AllocateError>;

    /// A counter that changes whenever allocatable capacity may have appeared (a server turned
    /// Ready). Waiting matches retry when it changes instead of polling blindly.
    fn capacity_changes(&self) -> watch::Receiver<u64>;

    /// Gives back a server that was allocated for a match which dissolved while the allocation
    /// was in flight (a ticket was cancelled or timed out during the call), so it can serve
    /// another match. The default keeps the server Allocated: it is then reclaimed only by the
    /// allocated-server TTL, if one is configured. Runtimes that can return a server to Ready
    /// (or shut it down) should override this.
    async fn release(&self, namespace: &str, game_server_name: &str) -> Result<(), AllocateError> {
        tracing::warn!(namespace, gameserver = game_server_name, "allocator cannot release; server stays Allocated");
        Ok(())
    }
}

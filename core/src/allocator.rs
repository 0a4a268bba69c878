//! The seam between whoever wants a server (the matchmaker, Agones' allocation API, `kubectl
//! create gsa`) and the runtime that owns the GameServers: allocate one server for one request.
//!
//! Both runtimes implement [`Allocator`] with the same compare-and-swap loop, so no server is ever
//! handed to two matches. The answer is typed as Agones types it: a server ([`Allocated`]), none
//! matched ([`UnAllocated`]), or every candidate was taken by a concurrent writer before we could
//! commit ([`Contention`]); callers map these to Agones' codes (429 / RESOURCE_EXHAUSTED,
//! 409 / ABORTED).
//!
//! [`Allocated`]: AllocationOutcome::Allocated
//! [`UnAllocated`]: AllocationOutcome::UnAllocated
//! [`Contention`]: AllocationOutcome::Contention

use async_trait::async_trait;
use stadion_crds::allocation::{GameServerAllocation, GameServerAllocationState, GameServerAllocationStatus};
use stadion_crds::validation::FieldErrors;
use tokio::sync::watch;

/// What an allocation came to, as Agones' `GameServerAllocation.status.state` says it.
// One value per allocation, moved once to the caller: boxing the status would add an allocation
// on the hot path to save a copy of a few hundred bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AllocationOutcome {
    /// A server is now Allocated; the status says where it is.
    Allocated(GameServerAllocationStatus),
    /// No server matched the request right now (HTTP 429 / gRPC RESOURCE_EXHAUSTED).
    UnAllocated,
    /// Servers matched, but concurrent writers took every candidate tried before our
    /// compare-and-swap landed (HTTP 409 / gRPC ABORTED). Retrying soon may succeed.
    Contention,
}

impl AllocationOutcome {
    /// The `status.state` Agones writes for this outcome.
    pub fn state(&self) -> GameServerAllocationState {
        match self {
            Self::Allocated(_) => GameServerAllocationState::Allocated,
            Self::UnAllocated => GameServerAllocationState::UnAllocated,
            Self::Contention => GameServerAllocationState::Contention,
        }
    }

    /// The status to put on a GameServerAllocation object: the server's on success, otherwise
    /// only the state.
    pub fn into_status(self) -> GameServerAllocationStatus {
        match self {
            Self::Allocated(status) => status,
            other => GameServerAllocationStatus { state: other.state(), ..GameServerAllocationStatus::default() },
        }
    }

    /// The server's status when one was allocated.
    pub fn allocated(self) -> Option<GameServerAllocationStatus> {
        match self {
            Self::Allocated(status) => Some(status),
            _ => None,
        }
    }

    /// A short stable label for metrics and logs (`allocated`, `unallocated`, `contention`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Allocated(_) => "allocated",
            Self::UnAllocated => "unallocated",
            Self::Contention => "contention",
        }
    }
}

/// Why an allocation could not be attempted or finished (as opposed to an answer of
/// [`AllocationOutcome::UnAllocated`] or [`AllocationOutcome::Contention`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AllocateError {
    /// The request itself is invalid (HTTP 422 / INVALID_ARGUMENT).
    #[error("invalid allocation request: {0}")]
    Invalid(FieldErrors),
    /// The backend failed (store or API server unreachable); worth retrying later.
    #[error("allocation backend failed: {0}")]
    Backend(String),
}

impl AllocateError {
    /// A short stable label for metrics (`invalid`, `backend`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::Backend(_) => "backend",
        }
    }
}

/// Allocates GameServers. Implemented by the controller's local and kube runtimes.
#[async_trait]
pub trait Allocator: Send + Sync + 'static {
    /// Allocates one server for `request` (its `metadata.namespace`, `default` when unset).
    async fn allocate(&self, request: GameServerAllocation) -> Result<AllocationOutcome, AllocateError>;

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

//! The seam between whoever wants a server (the matchmaker, Agones' allocation API, `kubectl
//! create gsa`) and the runtime that owns the GameServers: allocate one server for one request.
//!
//! Both runtimes implement [`Allocator`] with the same compare-and-swap loop (the controller's
//! `allocation` executor), so no server is ever
//! handed to two matches. The answer is typed as Agones types it: a server ([`Allocated`]), none
//! matched ([`UnAllocated`]), or every candidate was taken by a concurrent writer before we could
//! commit ([`Contention`]); callers map these to Agones' codes (429 / RESOURCE_EXHAUSTED,
//! 409 / ABORTED).
//!
//! A request is defaulted and validated once, where it enters (the matchmaker's routes, its
//! queues, the aggregated API), by [`admit_allocation`]; the seam only takes the resulting
//! [`AdmittedAllocation`], so no runtime can skip that step or repeat it.
//!
//! The capacity signal that wakes waiting matches follows one rule in both runtimes,
//! [`wakes_waiting_matches`].
//!
//! [`Allocated`]: AllocationOutcome::Allocated
//! [`UnAllocated`]: AllocationOutcome::UnAllocated
//! [`Contention`]: AllocationOutcome::Contention

use async_trait::async_trait;
use stadion_crds::allocation::{GameServerAllocation, GameServerAllocationState, GameServerAllocationStatus};
use stadion_crds::validation::FieldErrors;
use stadion_crds::{GameServer, GameServerState};
use tokio::sync::watch;

use crate::labelselector::Selector;

/// The namespace of a request that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A GameServerAllocation that has been defaulted and validated: the only request type an
/// [`Allocator`] takes. It can only be made by [`admit_allocation`].
#[derive(Debug, Clone, PartialEq)]
pub struct AdmittedAllocation {
    request: GameServerAllocation,
}

impl AdmittedAllocation {
    /// The defaulted request (namespace set, selectors' states and scheduling filled in).
    pub fn request(&self) -> &GameServerAllocation {
        &self.request
    }

    /// Its namespace (never empty).
    pub fn namespace(&self) -> &str {
        self.request.metadata.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    /// The defaulted request, owned.
    pub fn into_inner(self) -> GameServerAllocation {
        self.request
    }
}

/// Admits an allocation request: namespace `default` when unset, Agones' defaults, then every
/// validation rule (each error with its `spec.…` path). Entry points add their own envelope
/// checks (kind, apiVersion, the URL's namespace) and rename paths for their wire format; the
/// rules on the request itself live here only.
pub fn admit_allocation(mut request: GameServerAllocation) -> Result<AdmittedAllocation, FieldErrors> {
    if request.metadata.namespace.as_deref().is_none_or(str::is_empty) {
        request.metadata.namespace = Some(DEFAULT_NAMESPACE.to_owned());
    }
    request.apply_defaults();
    let mut errors = request.validate();
    if request.spec.multi_cluster_setting.as_ref().is_some_and(|m| m.enabled) {
        errors.push(
            "spec.multiClusterSetting.enabled",
            "multi-cluster allocation is not supported: Stadion allocates in its own cluster",
        );
    }
    // The choice compiles the label selectors again; one that validation let through but that
    // cannot compile would otherwise surface only when servers are scanned.
    if errors.is_empty() {
        for selector in request.effective_selectors() {
            if let Err(error) = Selector::compile(&selector.label_selector) {
                errors.push("spec.selectors", error.to_string());
            }
        }
    }
    errors.into_result()?;
    Ok(AdmittedAllocation { request })
}

/// What a runtime saw happen to allocatable capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityEvent {
    /// A server was added or changed: its state before (`None` if it was unseen) and now.
    Changed {
        /// The state last seen (`None`: first sighting, or no state yet).
        before: Option<GameServerState>,
        /// The state now.
        after: Option<GameServerState>,
    },
    /// A server is gone.
    Removed,
    /// The runtime's initial view of the servers is complete (kube: the watch's first list).
    Synced,
}

impl CapacityEvent {
    /// The change of `gs`, given the state it had when last seen.
    pub fn changed(before: Option<GameServerState>, gs: &GameServer) -> Self {
        Self::Changed { before, after: gs.state() }
    }
}

/// Whether waiting matches should retry: a server turned Ready (it was not Ready, or unseen,
/// and now is), or the initial view is complete (a match queued before the first list may fit
/// now). Nothing else can make an allocation succeed that failed before, so matches never
/// wake for a label change or a server that stays Ready.
pub fn wakes_waiting_matches(event: CapacityEvent) -> bool {
    match event {
        CapacityEvent::Changed { before, after } => {
            after == Some(GameServerState::Ready) && before != Some(GameServerState::Ready)
        }
        CapacityEvent::Removed => false,
        CapacityEvent::Synced => true,
    }
}

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
    /// The request itself is invalid (HTTP 422 / INVALID_ARGUMENT): refused by
    /// [`admit_allocation`] at the entry point, or by a runtime that cannot carry it out.
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
    /// Allocates one server for `request` in its namespace.
    async fn allocate(&self, request: AdmittedAllocation) -> Result<AllocationOutcome, AllocateError>;

    /// A counter that changes whenever allocatable capacity may have appeared (see
    /// [`wakes_waiting_matches`]). Waiting matches retry when it changes instead of polling
    /// blindly.
    fn capacity_changes(&self) -> watch::Receiver<u64>;

    /// Gives back the server that allocation `allocation_id` (from its answer's
    /// `stadion.dev/allocation-id` annotation) took for a match which dissolved while the
    /// allocation was in flight (a ticket was cancelled or timed out during the call), so it can
    /// serve another match. Implementations compare the identity inside their compare-and-swap
    /// ([`crate::allocation::release_allocation`]) and do nothing once another allocation holds
    /// the server. The default keeps the server Allocated: it is then reclaimed only by the
    /// allocated-server TTL, if one is configured.
    async fn release(&self, namespace: &str, game_server_name: &str, allocation_id: &str) -> Result<(), AllocateError> {
        tracing::warn!(
            namespace,
            gameserver = game_server_name,
            allocation_id,
            "allocator cannot release; server stays Allocated"
        );
        Ok(())
    }
}

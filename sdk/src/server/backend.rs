//! What the sidecar needs from wherever the GameServer lives. Backends stay thin — read, watch,
//! apply one mutation atomically — so the SDK rules (the core state machine, applied by the
//! sidecar inside each mutation) are written once, and the standalone local, embedded-store and
//! Kubernetes backends cannot drift apart.

use std::sync::Arc;

use async_trait::async_trait;
use stadion_crds::GameServer;
use tokio::sync::watch;

use super::SdkError;

/// A change to the GameServer, computed by the sidecar. It may run more than once (a backend that
/// compare-and-swaps re-runs it on conflict) and must be applied all-or-nothing: when it returns
/// an error nothing it did may be stored.
pub type Mutation = Box<dyn FnMut(&mut GameServer) -> Result<(), SdkError> + Send>;

/// A handle on one GameServer, as the sidecar sees it. Object-safe: the sidecar holds an
/// `Arc<dyn GameServerBackend>`.
#[async_trait]
pub trait GameServerBackend: Send + Sync + 'static {
    /// The latest known version of the GameServer.
    async fn get(&self) -> Result<GameServer, SdkError>;

    /// Every new version of the GameServer, starting with the current one. The sidecar's
    /// WatchGameServer and health checks read from it, so it must also reflect the sidecar's own
    /// updates once they are applied.
    fn watch(&self) -> watch::Receiver<Arc<GameServer>>;

    /// Applies `mutate` to the latest GameServer atomically (under a lock, or compare-and-swap with
    /// retries) and returns the result. When the mutation leaves the object unchanged the backend
    /// may skip the write. A backend that batches writes (kube: at most one per 500 ms) still
    /// returns the mutated object at once and publishes it on [`watch`](Self::watch).
    async fn update(&self, mutate: Mutation) -> Result<GameServer, SdkError>;
}

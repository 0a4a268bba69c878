//! What a scenario can do to a runtime and see of it: the same verbs a user has (`apply`,
//! `get`, `delete`, an allocation, and what a game's SDK does), whatever carries them out.

use std::sync::Arc;

use stadion_core::allocator::Allocator;
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};

/// A call a game makes to its sidecar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdkCall {
    /// `POST /ready`.
    Ready,
    /// `POST /allocate`.
    Allocate,
    /// `POST /reserve` for this many seconds (0: until the next state call).
    Reserve(i64),
    /// `POST /shutdown`.
    Shutdown,
}

/// A kind a scenario deletes by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    GameServer,
    GameServerSet,
    Fleet,
}

/// One runtime under contract. Every read is of the runtime's namespace.
#[allow(async_fn_in_trait)]
pub trait Runtime {
    /// `local`, `kube (fake API)` or `kube (cluster)`, for messages.
    fn name(&self) -> &'static str;

    /// The namespace scenarios work in.
    fn namespace(&self) -> &str;

    /// `kubectl apply -f` of these YAML documents (create, or update what is declared). An
    /// error is the refusal the user would see.
    async fn apply(&self, yaml: &str) -> Result<(), String>;

    /// Stores these objects the way they reach the controllers when no admission step refused
    /// them first: `stadion up` validates at apply (as Agones' webhook would), a cluster without
    /// a Stadion webhook does not, and either way the controllers must report what is invalid.
    async fn store_unchecked(&self, yaml: &str) -> Result<(), String>;

    /// Every GameServer, those being deleted included.
    async fn gameservers(&self) -> Vec<GameServer>;

    /// Every GameServerSet.
    async fn gameserversets(&self) -> Vec<GameServerSet>;

    /// Fleet `name`, if it exists.
    async fn fleet(&self, name: &str) -> Option<Fleet>;

    /// FleetAutoscaler `name`, if it exists.
    async fn autoscaler(&self, name: &str) -> Option<FleetAutoscaler>;

    /// What the game of GameServer `name` would call on its own sidecar.
    async fn sdk(&self, gameserver: &str, call: SdkCall) -> Result<(), String>;

    /// The runtime's allocator (what the matchmaker and the allocation API use).
    fn allocator(&self) -> Arc<dyn Allocator>;

    /// `kubectl delete <kind> <name>` (dependents go by owner reference).
    async fn delete(&self, kind: ObjectKind, name: &str) -> Result<(), String>;
}

//! What every reconcile gets: the I/O handles (client, event publisher, metrics, leadership),
//! the watch caches it reads instead of calling the API server, and the port allocator.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use stadion_crds::{GameServer, GameServerSet};
use tracing::{Instrument, Span, warn};

use super::events::EventPublisher;
use super::lease::Leadership;
use super::metrics::Metrics;
use super::pod::PodConfig;
use super::{Error, Result};
use stadion_core::gameserver::GameServerDefaults;
use stadion_core::ports::PortAllocator;

/// Shared state of the kube controllers.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Event publisher (Agones reasons).
    pub events: EventPublisher,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Whether this replica may write.
    pub leadership: Leadership,
    /// What every game-server Pod gets.
    pub pod_config: PodConfig,
    /// Host ports per node, rebuilt from the GameServers at start-up.
    pub ports: Mutex<PortAllocator>,
    /// Watch cache of Nodes (their addresses become the GameServer's).
    pub nodes: Store<Node>,
    /// Watch cache of game-server Pods.
    pub pods: Store<Pod>,
    /// Watch cache of GameServers (sets count their servers from it).
    pub gameservers: Store<GameServer>,
    /// What the GameServerSet controller remembers between reconciles.
    pub sets: super::gameserverset::SetState,
    /// Watch cache of GameServerSets (fleets find their sets in it).
    pub gameserversets: Store<GameServerSet>,
    /// What the Fleet controller remembers between reconciles.
    pub fleets: super::fleet::FleetState,
    /// Runtime-wide GameServer settings (the allocation TTL of servers without an annotation).
    pub gameserver_defaults: GameServerDefaults,
}

impl Context {
    /// The port allocator. A poisoned lock only means another reconcile panicked mid-update;
    /// the allocator's maps are still consistent per call, so carry on.
    pub fn ports(&self) -> MutexGuard<'_, PortAllocator> {
        self.ports.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What to do after a failed reconcile: a lost write race retries soon, anything else backs off
/// so a broken API server is not hammered.
pub fn error_policy_for(controller: &'static str, error: &Error) -> Action {
    if error.is_conflict() {
        Action::requeue(Duration::from_millis(200))
    } else {
        warn!(controller, %error, error_kind = error.kind(), "reconcile failed");
        Action::requeue(Duration::from_secs(5))
    }
}

/// Runs one reconcile of `controller` inside `span`, timing and counting it in the metrics:
/// the wrapper every reconciler's entry point shares.
pub async fn observed(
    ctx: &Context,
    controller: &'static str,
    span: Span,
    work: impl Future<Output = Result<Action>>,
) -> Result<Action> {
    let started = Instant::now();
    let result = work.instrument(span).await;
    ctx.metrics.observe_reconcile(controller, started.elapsed(), result.as_ref().err());
    result
}

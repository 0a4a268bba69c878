//! What every reconcile gets: the I/O handles (client, event publisher, metrics, leadership),
//! the watch caches it reads instead of calling the API server, the executors' seams over them
//! (stores and recorder), and the port allocator.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};
use tracing::{Instrument, Span, warn};

use super::events::EventPublisher;
use super::lease::Leadership;
use super::metrics::Metrics;
use super::pod::PodConfig;
use super::recorder::KubeRecorder;
use super::store::KubeStore;
use super::watched_pod::WatchedPod;
use super::{Error, Result};
use stadion_core::gameserver::GameServerDefaults;
use stadion_core::ports::PortAllocator;

use crate::executor::{ExecError, Outcome, Seams, WebhookClient};

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
    pub pods: Store<WatchedPod>,
    /// Watch cache of GameServers (the GameServer controller and the allocator read it).
    pub gameservers: Store<GameServer>,
    /// The API server as the executors' object store, one per kind.
    pub stores: KubeStores,
    /// Where the executors report: Events and reconcile metrics.
    pub recorder: KubeRecorder,
    /// The one webhook client of every FleetAutoscaler.
    pub webhooks: WebhookClient,
    /// Runtime-wide GameServer settings (the allocation TTL of servers without an annotation).
    pub gameserver_defaults: GameServerDefaults,
}

/// One [`KubeStore`] per kind the executors touch, each over its watch cache.
pub struct KubeStores {
    /// GameServers.
    pub gameservers: KubeStore<GameServer>,
    /// GameServerSets.
    pub sets: KubeStore<GameServerSet>,
    /// Fleets.
    pub fleets: KubeStore<Fleet>,
    /// FleetAutoscalers.
    pub autoscalers: KubeStore<FleetAutoscaler>,
}

impl Context {
    /// The executors' seams: the API-server stores and the kube recorder.
    pub fn seams(&self) -> Seams<'_> {
        Seams {
            gameservers: &self.stores.gameservers,
            sets: &self.stores.sets,
            fleets: &self.stores.fleets,
            autoscalers: &self.stores.autoscalers,
            recorder: &self.recorder,
        }
    }

    /// Whether this replica may write now. Only writes are gated on the lease; a follower's
    /// pass is skipped and re-run when it becomes the leader (see `run`).
    pub fn may_write(&self) -> bool {
        self.leadership.is_leader()
    }

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

/// The kube-runtime action for an executor's outcome.
pub fn action(outcome: Outcome) -> Action {
    match outcome {
        Outcome::RequeueAfter(after) => Action::requeue(after),
        Outcome::AwaitChange => Action::await_change(),
    }
}

/// What to do after an executor's failed pass (already recorded by the executor): its
/// back-off, the same as the local runtime's.
pub fn exec_error_policy(error: &ExecError) -> Action {
    Action::requeue(error.backoff())
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
    ctx.metrics.observe_reconcile(controller, started.elapsed(), result.as_ref().err().map(Error::kind));
    result
}

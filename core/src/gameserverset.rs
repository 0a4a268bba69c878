//! GameServerSet scaling: how many servers to create, which to shut down or delete, what the
//! set's status is. A set never chooses an Allocated or Reserved server for shutdown.

mod scaledown;
mod status;

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use stadion_crds::gameserverset::GameServerSetStatus;
use stadion_crds::{GameServer, GameServerSet, GameServerState, labels};

use super::gameserver::{errored_at, set_state};
use super::names::{NameGenerator, unique_name};
use super::nodes::NodeLoad;

pub use scaledown::shutdown_order;
pub use status::aggregate_status;

/// Agones' default cap on servers created (and shut down) in one reconcile.
pub const DEFAULT_BATCH_SIZE: usize = 64;
/// How long an Error server is kept for inspection before its set deletes it.
pub const ERROR_GRACE: SignedDuration = SignedDuration::from_secs(30);

/// Tunables of [`plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetScalingOptions {
    /// Most servers created per reconcile; the rest follow on the next (`requeue_at` = now).
    pub max_creations: usize,
    /// Most servers moved to Shutdown per reconcile.
    pub max_shutdowns: usize,
    /// How long Error servers stay before deletion.
    pub error_grace: SignedDuration,
}

impl Default for SetScalingOptions {
    fn default() -> Self {
        Self { max_creations: DEFAULT_BATCH_SIZE, max_shutdowns: DEFAULT_BATCH_SIZE, error_grace: ERROR_GRACE }
    }
}

/// What a runtime must do for one GameServerSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GameServerSetPlan {
    /// New GameServers to create (defaults applied, labels and owner reference set).
    pub create: Vec<GameServer>,
    /// Servers to write back in state Shutdown (whole-object updates; the GameServer controller
    /// then deletes them). Never Allocated or Reserved ones.
    pub shutdown: Vec<GameServer>,
    /// Names of servers to delete now: Shutdown ones, Unhealthy ones (to be replaced) and Error
    /// ones that entered Error longer than the grace period ago (held ones count toward
    /// replicas until then). The GameServer controller also deletes Shutdown servers
    /// ([`super::gameserver::GameServerAction::Delete`]), so a runtime treats "not found" as done.
    pub delete: Vec<String>,
    /// Allocated servers beyond `replicas`, with the set's `allocationOverflow` labels and
    /// annotations applied (whole-object updates).
    pub overflow: Vec<GameServer>,
    /// The status to write (observed counts, before this plan is carried out).
    pub status: GameServerSetStatus,
    /// Reconcile again at this time (more to create, an Error server to delete later).
    pub requeue_at: Option<Timestamp>,
}

impl GameServerSetPlan {
    /// Whether carrying the plan out changes no server (the status may still need writing).
    pub fn is_settled(&self) -> bool {
        self.create.is_empty() && self.shutdown.is_empty() && self.delete.is_empty() && self.overflow.is_empty()
    }
}

/// Plans one reconcile of `set`, given the servers it owns, the node load of the whole cluster
/// (for Packed ordering; may be empty), a name generator and the time.
pub fn plan<S: Borrow<GameServer>>(
    set: &GameServerSet,
    servers: &[S],
    nodes: &NodeLoad,
    names: &mut dyn NameGenerator,
    now: Timestamp,
    options: &SetScalingOptions,
) -> GameServerSetPlan {
    // Shared handles (the runtimes' stores) or owned servers (tests): read, never copied.
    let servers: Vec<&GameServer> = servers.iter().map(Borrow::borrow).collect();
    let mut plan =
        GameServerSetPlan { status: aggregate_status(servers.iter().copied()), ..GameServerSetPlan::default() };
    // Conditions are not derived from the servers: they stay as the runtime last wrote them.
    plan.status.conditions = set.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    let live: Vec<&GameServer> =
        servers.iter().copied().filter(|gs| gs.metadata.deletion_timestamp.is_none()).collect();

    // Error servers are held `error_grace` after they entered Error (for inspection), and count
    // toward replicas meanwhile, as in Agones: replacing them at once would turn a broken
    // template into a creation storm that holds a host port per failed server.
    let mut held = Vec::new();
    for gs in &live {
        match gs.state() {
            Some(GameServerState::Shutdown | GameServerState::Unhealthy) => plan.delete.push(gs.name().to_owned()),
            Some(GameServerState::Error) => match errored_at(gs).map(|at| at + options.error_grace) {
                Some(due) if due > now => {
                    plan.requeue_at = earliest(plan.requeue_at, due);
                    held.push(*gs);
                }
                _ => plan.delete.push(gs.name().to_owned()),
            },
            _ => {}
        }
    }

    let active: Vec<&GameServer> = live.iter().copied().filter(|gs| is_active(gs)).collect();
    // What counts toward `replicas` when deciding to create: the active servers and the held
    // Error ones. Scale-down still picks only among active servers.
    let counted = active.len() + held.len();
    let wanted = usize::try_from(set.spec.replicas).unwrap_or(0);
    // A set being deleted only cleans up: its servers go with it through owner references.
    let deleting = set.metadata.deletion_timestamp.is_some();
    if counted < wanted && !deleting {
        let count = (wanted - counted).min(options.max_creations);
        if wanted - counted > count {
            plan.requeue_at = Some(now);
        }
        let mut taken: BTreeSet<String> = servers.iter().map(|gs| gs.name().to_owned()).collect();
        for _ in 0..count {
            let name = unique_name(set.name(), names, &mut taken);
            plan.create.push(new_gameserver(set, name));
        }
    } else if active.len() > wanted {
        let excess = active.len() - wanted;
        let deletable: Vec<&GameServer> =
            active.iter().copied().filter(|gs| gs.state().is_none_or(GameServerState::is_deletable_by_set)).collect();
        let ordered = shutdown_order(set, &deletable, nodes);
        let count = excess.min(options.max_shutdowns);
        if excess > count && ordered.len() > count {
            plan.requeue_at = Some(now);
        }
        for gs in ordered.into_iter().take(count) {
            let mut next = gs.clone();
            set_state(&mut next, GameServerState::Shutdown);
            plan.shutdown.push(next);
        }
    }

    plan.overflow = overflow_updates(set, &active, nodes);
    plan
}

/// A server that counts toward the set's replicas: not terminal and not being deleted.
fn is_active(gs: &GameServer) -> bool {
    gs.metadata.deletion_timestamp.is_none() && gs.state().is_none_or(GameServerState::is_active)
}

fn earliest(current: Option<Timestamp>, candidate: Timestamp) -> Option<Timestamp> {
    Some(current.map_or(candidate, |c| c.min(candidate)))
}

/// Applies `allocationOverflow` to the Allocated servers beyond `replicas` (those the set would
/// shut down first if it could), skipping any that already carry it.
fn overflow_updates(set: &GameServerSet, active: &[&GameServer], nodes: &NodeLoad) -> Vec<GameServer> {
    let Some(patch) = &set.spec.allocation_overflow else { return Vec::new() };
    let allocated: Vec<&GameServer> =
        active.iter().copied().filter(|gs| gs.state() == Some(GameServerState::Allocated)).collect();
    let wanted = usize::try_from(set.spec.replicas).unwrap_or(0);
    let Some(overflowing) = allocated.len().checked_sub(wanted).filter(|n| *n > 0) else { return Vec::new() };
    let mut out = Vec::new();
    for gs in shutdown_order(set, &allocated, nodes).into_iter().take(overflowing) {
        let mut next = gs.clone();
        next.metadata.labels.get_or_insert_default().extend(patch.labels.clone());
        next.metadata.annotations.get_or_insert_default().extend(patch.annotations.clone());
        if next != *gs {
            out.push(next);
        }
    }
    out
}

/// A new GameServer for `set`: the template's metadata and spec, labels `agones.dev/gameserverset`
/// (and `agones.dev/fleet` when the set belongs to one), the set's scheduling, a controller owner
/// reference to the set, and every GameServer default applied (so its initial state is set).
pub fn new_gameserver(set: &GameServerSet, name: String) -> GameServer {
    let template = &set.spec.template;
    let mut labels_map: BTreeMap<String, String> = template.metadata.labels.clone().unwrap_or_default();
    labels_map.insert(labels::GAMESERVERSET.to_owned(), set.name().to_owned());
    if let Some(fleet) = set.metadata.labels.as_ref().and_then(|l| l.get(labels::FLEET)) {
        labels_map.insert(labels::FLEET.to_owned(), fleet.clone());
    }
    let mut gs = GameServer::new(name, template.spec.clone());
    gs.metadata = ObjectMeta {
        name: gs.metadata.name.take(),
        namespace: Some(set.namespace().to_owned()),
        labels: Some(labels_map),
        annotations: template.metadata.annotations.clone(),
        owner_references: Some(vec![controller_reference(
            GameServerSet::API_VERSION,
            GameServerSet::KIND,
            set.name(),
            set.metadata.uid.as_deref(),
        )]),
        ..ObjectMeta::default()
    };
    if let Some(scheduling) = set.spec.scheduling {
        gs.spec.scheduling = Some(scheduling);
    }
    gs.apply_defaults();
    gs
}

/// A controller owner reference (cascading delete, blocks owner deletion until removed).
pub(crate) fn controller_reference(api_version: &str, kind: &str, name: &str, uid: Option<&str>) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        uid: uid.unwrap_or_default().to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

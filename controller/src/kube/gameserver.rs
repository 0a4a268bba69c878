//! The GameServer reconciler: asks [`core::gameserver`](stadion_core::gameserver) what a server
//! needs, then carries it out — host ports, its Pod, Scheduled/Unhealthy from what the Pod and
//! its Node say, Ready with the game container that got there recorded, the end of a reservation
//! and Shutdown when an allocation TTL lapses (both requeued at their deadline), deletion once
//! Shutdown, and the finalizer once the Pod is gone.
//!
//! GameServer has no status subresource: every write is a whole-object replace carrying the
//! resourceVersion we read, so a concurrent SDK or allocator write makes ours fail (409) and we
//! re-read instead of overwriting it.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use stadion_crds::{GameServer, GameServerState};
use tracing::{debug, info, info_span, warn};

use super::context::{Context, error_policy_for, observed};
use super::events::reason;
use super::pod::build_pod;
use super::watched_pod::{WatchedContainer, WatchedPod};
use super::{Error, Result, api_status};
use stadion_core::gameserver::{self as core_gs, GameServerAction, GameServerEvent, Transition, gameserver_key};
use stadion_core::is_controlled_by;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "gameserver";

/// Reconciles one GameServer (timed, counted and traced).
pub async fn reconcile(gs: Arc<GameServer>, ctx: Arc<Context>) -> Result<Action> {
    // Woken by its Pod's change, the server may be read before our last write of it is cached:
    // acting on that older copy would redo a step and lose the write to a 409.
    let gs = ctx.stores.gameservers.fresher(gs);
    let span = info_span!("reconcile", controller = CONTROLLER, gameserver = %gameserver_key(&gs), state = ?gs.state());
    // Every change triggers a reconcile, so this sees the sidecar's and the allocator's state
    // changes too (as Agones' informer handler does); the clock ignores a state seen before.
    ctx.metrics.observe_state(&gs);
    observed(&ctx, CONTROLLER, span, reconcile_inner(&gs, &ctx)).await
}

/// Requeue policy after an error.
pub fn error_policy(_gs: Arc<GameServer>, error: &Error, _ctx: Arc<Context>) -> Action {
    error_policy_for(CONTROLLER, error)
}

async fn reconcile_inner(observed: &GameServer, ctx: &Context) -> Result<Action> {
    if !ctx.leadership.is_leader() {
        // Leadership gained later re-runs every object (see `run`), so nothing is lost.
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    if observed.state().is_none() && observed.metadata.deletion_timestamp.is_none() {
        let errors = observed.validate();
        if !errors.is_empty() {
            return reject_invalid(observed, ctx, &errors.to_string()).await;
        }
    }
    let plan = core_gs::reconcile(observed, now, ctx.gameserver_defaults);
    let mut gs = observed.clone();
    if let Some(mut update) = plan.update {
        if update.state() == Some(GameServerState::Ready) && observed.state() != Some(GameServerState::Ready) {
            record_ready_container(ctx, &mut update).await?;
        }
        gs = write(ctx, &gs, update).await?;
        if let Some(deadline) = plan.allocation_lapsed {
            allocation_expired(ctx, &gs, deadline).await;
        }
    }
    let action = match plan.action {
        GameServerAction::AllocatePorts => allocate_ports(ctx, &gs, now).await?,
        GameServerAction::CreatePod => create_pod(ctx, &gs, now).await?,
        GameServerAction::Delete => {
            api(ctx, &gs).delete(gs.name(), &DeleteParams::default()).await.map(drop).or_else(ignore_not_found)?;
            Action::await_change()
        }
        GameServerAction::Teardown => teardown(ctx, &gs).await?,
        GameServerAction::Wait => observe_pod(ctx, &gs, now).await?,
    };
    Ok(match plan.requeue_at {
        Some(at) => Action::requeue(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)),
        None => action,
    })
}

fn api(ctx: &Context, gs: &GameServer) -> Api<GameServer> {
    Api::namespaced(ctx.client.clone(), gs.namespace())
}

/// The Pods of `gs`'s namespace, read and deleted as the cache holds them ([`WatchedPod`]);
/// only [`create_pod`] writes a full [`Pod`].
fn pods(ctx: &Context, gs: &GameServer) -> Api<WatchedPod> {
    Api::namespaced(ctx.client.clone(), gs.namespace())
}

fn ignore_not_found(error: kube::Error) -> Result<()> {
    if api_status(&error) == Some(404) { Ok(()) } else { Err(Error::Kube(error)) }
}

/// Replaces `current` with `next` (resourceVersion-guarded) and reports a state change.
async fn write(ctx: &Context, current: &GameServer, next: GameServer) -> Result<GameServer> {
    let written = api(ctx, current).replace(current.name(), &PostParams::default(), &next).await?;
    ctx.stores.gameservers.remember(written.clone());
    let (before, after) = (current.state(), written.state());
    if before != after
        && let Some(state) = after
    {
        info!(from = ?before, to = %state, "GameServer state changed");
        ctx.metrics.observe_state(&written);
        let note = format!("{} -> {state}", before.map_or("(new)", GameServerState::as_str));
        if matches!(state, GameServerState::Unhealthy | GameServerState::Error) {
            ctx.events.warning(&written, state.as_str(), note).await;
        } else {
            ctx.events.normal(&written, state.as_str(), note).await;
        }
    }
    Ok(written)
}

/// Reports a server the allocation TTL just shut down (already written as Shutdown).
async fn allocation_expired(ctx: &Context, gs: &GameServer, deadline: Timestamp) {
    let last_allocated = gs.metadata.annotations.as_ref().and_then(|a| a.get(stadion_crds::labels::LAST_ALLOCATED));
    let last_allocated = last_allocated.map_or("", String::as_str);
    info!(%deadline, last_allocated, "allocation TTL lapsed with no players connected: shutting the server down");
    let note =
        format!("allocation TTL lapsed at {deadline} (last allocated {last_allocated}) with no players connected");
    ctx.events.normal(gs, reason::ALLOCATION_EXPIRED, note).await;
}

/// Applies an observed fact through the core state machine and writes the result, if any.
async fn apply(ctx: &Context, gs: &GameServer, event: GameServerEvent, now: Timestamp) -> Result<Option<GameServer>> {
    match core_gs::apply_event(gs, &event, now) {
        Transition::Changed(next) => Ok(Some(write(ctx, gs, *next).await?)),
        Transition::Unchanged => Ok(None),
        Transition::Ignored(why) => {
            debug!(?event, why, "fact does not apply");
            Ok(None)
        }
    }
}

/// No admission webhook may have checked the object, so an invalid one is reported (Warning
/// Event) and parked in Error, which no reconcile leaves: no crash, no hot loop.
async fn reject_invalid(gs: &GameServer, ctx: &Context, problems: &str) -> Result<Action> {
    warn!(problems, "GameServer is invalid");
    ctx.events.warning(gs, reason::VALIDATION_FAILED, problems.to_owned()).await;
    let mut defaulted = gs.clone();
    defaulted.apply_defaults();
    let event = GameServerEvent::PodCreationFailed { reason: format!("invalid GameServer: {problems}") };
    if let Some(next) = core_gs::apply_event(&defaulted, &event, Timestamp::now()).into_changed() {
        write(ctx, gs, next).await?;
    }
    Ok(Action::await_change())
}

async fn allocate_ports(ctx: &Context, gs: &GameServer, now: Timestamp) -> Result<Action> {
    // Nodes that joined since start-up become eligible here (add_node is idempotent).
    let nodes: Vec<String> = ctx.nodes.state().iter().filter_map(|n| n.metadata.name.clone()).collect();
    let assignment = {
        let mut ports = ctx.ports();
        for node in nodes {
            ports.add_node(node);
        }
        ports.allocate(gs, None)
    };
    match assignment {
        Ok(assignment) => {
            let result = apply(ctx, gs, GameServerEvent::PortsAllocated(assignment), now).await;
            if result.is_err() {
                // The next attempt allocates afresh; do not leak the ports meanwhile.
                ctx.ports().release(&gameserver_key(gs));
            }
            result?;
            Ok(Action::await_change())
        }
        Err(error) => {
            // Out of ports or no nodes yet: a capacity problem that may clear, not a bug.
            warn!(%error, "cannot allocate host ports yet");
            ctx.events.warning(gs, reason::PORT_ALLOCATION, error.to_string()).await;
            Ok(Action::requeue(Duration::from_secs(5)))
        }
    }
}

async fn create_pod(ctx: &Context, gs: &GameServer, now: Timestamp) -> Result<Action> {
    let pod = build_pod(gs, &ctx.pod_config)?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), gs.namespace());
    let event = match pods.create(&PostParams::default(), &pod).await {
        // 409: a previous attempt created it and our state write was lost; it is ours.
        Ok(_) => GameServerEvent::PodCreated,
        Err(e) if api_status(&e) == Some(409) => GameServerEvent::PodCreated,
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 403 | 422) => {
            // The API server refused this Pod (invalid template, quota, policy): retrying
            // cannot help, so the server goes to Error and its set replaces it.
            ctx.events.warning(gs, reason::ERROR, status.message.clone()).await;
            GameServerEvent::PodCreationFailed { reason: status.message.clone() }
        }
        Err(e) => return Err(Error::Kube(e)),
    };
    apply(ctx, gs, event, now).await?;
    Ok(Action::await_change())
}

/// The Pod of `gs` from the cache, confirmed with a GET when the cache lacks it (a Pod we just
/// created may not be cached yet, and a missing Pod makes the server Unhealthy).
async fn find_pod(ctx: &Context, gs: &GameServer) -> Result<Option<WatchedPod>> {
    let key = ObjectRef::<WatchedPod>::new(gs.name()).within(gs.namespace());
    if let Some(pod) = ctx.pods.get(&key) {
        return Ok(Some((*pod).clone()));
    }
    Ok(pods(ctx, gs).get_opt(gs.name()).await?)
}

/// Stamps the game container the Pod runs now as the one that became Ready (Agones'
/// `agones.dev/ready-container-id`), unless one is recorded already: its death is a crash, the
/// restarts before it are a slow start. A Pod or status not cached yet records nothing, and
/// [`pod_failure`] then falls back to counting every restart after Ready.
async fn record_ready_container(ctx: &Context, gs: &mut GameServer) -> Result<()> {
    if core_gs::ready_container(gs).is_some() {
        return Ok(());
    }
    let Some(game) = gs.game_container_name().map(str::to_owned) else { return Ok(()) };
    let Some(pod) = find_pod(ctx, gs).await? else { return Ok(()) };
    if let Some(id) = pod.status.container_statuses.into_iter().find(|c| c.name == game).and_then(|c| c.container_id) {
        core_gs::stamp_ready_container(gs, &id);
    }
    Ok(())
}

/// Turns what the Pod says into GameServer facts: scheduled onto a node, or gone bad.
async fn observe_pod(ctx: &Context, gs: &GameServer, now: Timestamp) -> Result<Action> {
    use GameServerState as S;
    let Some(state) = gs.state() else { return Ok(Action::await_change()) };
    if state.is_terminal() || matches!(state, S::PortAllocation | S::Creating) {
        return Ok(Action::await_change());
    }
    let Some(pod) = find_pod(ctx, gs).await? else {
        apply(ctx, gs, GameServerEvent::PodFailed { reason: "the Pod was deleted".into() }, now).await?;
        return Ok(Action::await_change());
    };
    if let Some(event) = pod_failure(&pod, gs) {
        apply(ctx, gs, event, now).await?;
        return Ok(Action::await_change());
    }
    let node_name = pod.spec.node_name.unwrap_or_default();
    if state == S::Starting && !node_name.is_empty() {
        let addresses = node_addresses(ctx, &node_name).await?;
        if let Err(error) = ctx.ports().move_to_node(&gameserver_key(gs), &node_name) {
            // The scheduler already checked host ports on the node; our book-keeping is what
            // is stale, so log and carry on.
            warn!(%error, node = %node_name, "port book-keeping disagrees with the scheduler");
        }
        apply(ctx, gs, GameServerEvent::Scheduled { node_name, addresses }, now).await?;
    } else if state == S::Starting {
        // The Pod cache may trail the event that woke us; look again soon rather than wait
        // for the Pod's next change.
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    Ok(Action::await_change())
}

async fn node_addresses(ctx: &Context, node: &str) -> Result<Vec<k8s_openapi::api::core::v1::NodeAddress>> {
    let cached = ctx.nodes.get(&ObjectRef::<Node>::new(node));
    let node = match cached {
        Some(node) => Some((*node).clone()),
        None => Api::<Node>::all(ctx.client.clone()).get_opt(node).await?,
    };
    Ok(node.and_then(|n| n.status).and_then(|s| s.addresses).unwrap_or_default())
}

/// A Pod that failed, was evicted or is being deleted, or whose game container died after the
/// server was Ready. Before Ready the kubelet restarting the game container is normal start-up
/// (as in Agones), so only a termination of the container that became Ready counts.
fn pod_failure(pod: &WatchedPod, gs: &GameServer) -> Option<GameServerEvent> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Some(GameServerEvent::PodFailed { reason: "the Pod is being deleted".into() });
    }
    let status = &pod.status;
    if status.phase.as_deref() == Some("Failed") {
        let why = status.reason.clone().unwrap_or_else(|| "Failed".into());
        return Some(GameServerEvent::PodFailed { reason: format!("the Pod failed: {why}") });
    }
    let after_ready =
        matches!(gs.state(), Some(GameServerState::Ready | GameServerState::Reserved | GameServerState::Allocated));
    if !after_ready {
        return None;
    }
    let game = gs.game_container_name()?;
    let container = status.container_statuses.iter().find(|c| c.name == game)?;
    let code = game_container_crash(container, core_gs::ready_container(gs))?;
    Some(GameServerEvent::ProcessExited { code: Some(code) })
}

/// The exit code of the game container if it died since the server went Ready, given the id of
/// the container that became Ready (`ready`).
fn game_container_crash(container: &WatchedContainer, ready: Option<&str>) -> Option<i32> {
    // Whichever instance it is, the one running now is dead.
    if let Some(now) = container.state.as_ref().and_then(|s| s.terminated.as_ref()) {
        return Some(now.exit_code);
    }
    let last = container.last_state.as_ref().and_then(|s| s.terminated.as_ref())?;
    let Some(ready) = ready else {
        // Which instance became Ready is not known (it was not cached then): any restart may
        // have lost a session, so it counts, as it did before the id was recorded.
        return Some(last.exit_code);
    };
    // The Ready instance is the one that ended, or it is no longer the one running (a restart
    // since then that a later one has already replaced in `last_state`).
    let ready_died = last.container_id.as_deref() == Some(ready);
    let replaced = container.container_id.as_deref().is_some_and(|id| !id.is_empty() && id != ready);
    (ready_died || replaced).then_some(last.exit_code)
}

/// Deletion: delete the Pod, wait until it is gone, free its ports, drop the finalizer.
async fn teardown(ctx: &Context, gs: &GameServer) -> Result<Action> {
    let has_finalizer = gs.metadata.finalizers.iter().flatten().any(|f| f == stadion_crds::labels::FINALIZER);
    if !has_finalizer {
        return Ok(Action::await_change());
    }
    match pods(ctx, gs).get_opt(gs.name()).await? {
        // Only a Pod this GameServer controls is its Pod (a same-named stranger is left alone).
        Some(pod) if is_controlled_by(&pod.metadata, &gs.metadata) => {
            if pod.metadata.deletion_timestamp.is_none() {
                pods(ctx, gs).delete(gs.name(), &DeleteParams::default()).await.map(drop).or_else(ignore_not_found)?;
            }
            // The Pod's deletion event wakes us; the requeue covers a missed one.
            Ok(Action::requeue(Duration::from_secs(10)))
        }
        _ => {
            ctx.ports().release(&gameserver_key(gs));
            let next = core_gs::without_finalizer(gs);
            api(ctx, gs).replace(gs.name(), &PostParams::default(), &next).await.map(drop).or_else(ignore_not_found)?;
            Ok(Action::await_change())
        }
    }
}

#[cfg(test)]
mod tests;

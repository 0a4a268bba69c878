//! The GameServerSet reconciler: the core plans how many servers to create and which to shut
//! down; this carries the plan out and writes the set's status through the status subresource.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use serde_json::json;
use stadion_crds::{GameServer, GameServerSet};
use tracing::{info, info_span};

use super::admission::{mark_valid, report_invalid, write_defaults};
use super::context::{Context, error_policy_for, observed};
use super::events::reason;
use super::overlay::WriteOverlay;
use super::{Error, Result, api_status};
use stadion_core::gameserverset::{SetScalingOptions, plan};
use stadion_core::names::SeededNames;
use stadion_core::nodes::NodeLoad;
use stadion_core::{is_controlled_by, object_key};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "gameserverset";
/// A settled set is looked at again this often, so a missed watch event cannot strand it.
const RESYNC: Duration = Duration::from_secs(30);

/// State the set controller keeps between reconciles.
#[derive(Default)]
pub struct SetState {
    /// Our recent GameServer writes per set, until the cache shows them.
    overlays: Mutex<HashMap<String, WriteOverlay<GameServer>>>,
    /// Name suffixes for new servers.
    names: Mutex<Option<SeededNames>>,
}

/// Reconciles one GameServerSet (timed, counted and traced).
pub async fn reconcile(set: Arc<GameServerSet>, ctx: Arc<Context>) -> Result<Action> {
    let span =
        info_span!("reconcile", controller = CONTROLLER, gameserverset = %object_key(set.namespace(), set.name()));
    observed(&ctx, CONTROLLER, span, reconcile_inner(&set, &ctx)).await
}

/// Requeue policy after an error.
pub fn error_policy(_set: Arc<GameServerSet>, error: &Error, _ctx: Arc<Context>) -> Action {
    error_policy_for(CONTROLLER, error)
}

async fn reconcile_inner(set: &GameServerSet, ctx: &Context) -> Result<Action> {
    if !ctx.leadership.is_leader() || set.metadata.deletion_timestamp.is_some() {
        // Deletion cascades to the servers through their owner references.
        return Ok(Action::await_change());
    }
    let sets: Api<GameServerSet> = Api::namespaced(ctx.client.clone(), set.namespace());
    if write_defaults(set, &sets, |o| o.apply_defaults()).await? {
        return Ok(Action::await_change());
    }
    let errors = set.validate();
    let conditions = set.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    if !errors.is_empty() {
        report_invalid(set, &sets, conditions, &errors, ctx).await?;
        return Ok(Action::await_change());
    }

    let all: Vec<GameServer> = ctx.gameservers.state().iter().map(|gs| (**gs).clone()).collect();
    let nodes = NodeLoad::from_gameservers(&all);
    let key = object_key(set.namespace(), set.name());
    let cached: Vec<GameServer> = all.into_iter().filter(|gs| is_controlled_by(&gs.metadata, &set.metadata)).collect();
    let servers = ctx
        .sets
        .overlays
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(key.clone())
        .or_default()
        .view(cached, |gs| is_controlled_by(&gs.metadata, &set.metadata));
    let now = Timestamp::now();
    let mut plan = {
        let mut names = ctx.sets.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let names = names.get_or_insert_with(|| SeededNames::new(rand::random()));
        plan(set, &servers, &nodes, names, now, &SetScalingOptions::default())
    };
    mark_valid(&mut plan.status.conditions, set.metadata.generation);

    let gameservers: Api<GameServer> = Api::namespaced(ctx.client.clone(), set.namespace());
    let mut created = 0;
    for gs in &plan.create {
        match gameservers.create(&PostParams::default(), gs).await {
            Ok(written) => {
                created += 1;
                record(ctx, &key, |o| o.wrote(written));
            }
            // A name collision: the next reconcile picks another name.
            Err(e) if api_status(&e) == Some(409) => {}
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    if created > 0 {
        info!(created, "created GameServers");
        ctx.events.normal(set, reason::SUCCESSFUL_CREATE, format!("Created {created} GameServer(s)")).await;
    }
    for gs in plan.shutdown.iter().chain(&plan.overflow) {
        match gameservers.replace(gs.name(), &PostParams::default(), gs).await {
            Ok(written) => record(ctx, &key, |o| o.wrote(written)),
            // It changed under us (allocated, say): the next reconcile decides again.
            Err(e) if matches!(api_status(&e), Some(409 | 404)) => {}
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    for name in &plan.delete {
        match gameservers.delete(name, &DeleteParams::default()).await {
            Ok(_) => record(ctx, &key, |o| o.deleted(object_key(set.namespace(), name))),
            Err(e) if api_status(&e) == Some(404) => {}
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    if !plan.delete.is_empty() {
        ctx.events.normal(set, reason::SUCCESSFUL_DELETE, format!("Deleted {} GameServer(s)", plan.delete.len())).await;
    }

    if set.status.as_ref() != Some(&plan.status) {
        let patch = json!({ "status": plan.status });
        sets.patch_status(set.name(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    Ok(match plan.requeue_at {
        Some(at) => Action::requeue(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)),
        None if plan.is_settled() => Action::requeue(RESYNC),
        // Work was done: the watch events of our writes bring us back; this covers a lost one.
        None => Action::requeue(Duration::from_secs(5)),
    })
}

fn record(ctx: &Context, key: &str, f: impl FnOnce(&mut WriteOverlay<GameServer>)) {
    let mut overlays = ctx.sets.overlays.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f(overlays.entry(key.to_owned()).or_default());
}

#[cfg(test)]
mod tests;

//! The Fleet reconciler: the core plans the rollout (which GameServerSet is active, how big each
//! set should be, which empty old sets go); this carries it out and writes the fleet's status.
//! `kubectl scale fleet` works through the CRD's scale subresource: it changes `spec.replicas`,
//! which is all this reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use serde_json::json;
use stadion_crds::{Fleet, GameServerSet};
use tracing::{info, info_span};

use super::admission::{mark_valid, report_invalid, write_defaults};
use super::context::{Context, error_policy_for, observed};
use super::events::reason;
use super::overlay::WriteOverlay;
use super::{Error, Result, api_status};
use stadion_core::fleet::plan;
use stadion_core::names::SeededNames;
use stadion_core::{is_controlled_by, object_key};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "fleet";
/// A settled fleet is looked at again this often, so a missed watch event cannot strand it.
const RESYNC: Duration = Duration::from_secs(30);

/// State the fleet controller keeps between reconciles.
#[derive(Default)]
pub struct FleetState {
    /// Our recent GameServerSet writes per fleet, until the cache shows them.
    overlays: Mutex<HashMap<String, WriteOverlay<GameServerSet>>>,
    /// Name suffixes for new sets.
    names: Mutex<Option<SeededNames>>,
}

/// Reconciles one Fleet (timed, counted and traced).
pub async fn reconcile(fleet: Arc<Fleet>, ctx: Arc<Context>) -> Result<Action> {
    let span = info_span!("reconcile", controller = CONTROLLER, fleet = %object_key(fleet.namespace(), fleet.name()));
    observed(&ctx, CONTROLLER, span, reconcile_inner(&fleet, &ctx)).await
}

/// Requeue policy after an error.
pub fn error_policy(_fleet: Arc<Fleet>, error: &Error, _ctx: Arc<Context>) -> Action {
    error_policy_for(CONTROLLER, error)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn reconcile_inner(fleet: &Fleet, ctx: &Context) -> Result<Action> {
    if !ctx.leadership.is_leader() || fleet.metadata.deletion_timestamp.is_some() {
        // Deletion cascades to the sets, and from them to the servers, by owner references.
        return Ok(Action::await_change());
    }
    let fleets: Api<Fleet> = Api::namespaced(ctx.client.clone(), fleet.namespace());
    if write_defaults(fleet, &fleets, |o| o.apply_defaults()).await? {
        return Ok(Action::await_change());
    }
    let errors = fleet.validate();
    let conditions = fleet.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    if !errors.is_empty() {
        report_invalid(fleet, &fleets, conditions, &errors, ctx).await?;
        return Ok(Action::await_change());
    }

    let key = object_key(fleet.namespace(), fleet.name());
    let cached: Vec<GameServerSet> = ctx
        .gameserversets
        .state()
        .iter()
        .filter(|s| is_controlled_by(&s.metadata, &fleet.metadata))
        .map(|s| (**s).clone())
        .collect();
    let sets = lock(&ctx.fleets.overlays)
        .entry(key.clone())
        .or_default()
        .view(cached, |s| is_controlled_by(&s.metadata, &fleet.metadata));
    let mut plan = {
        let mut names = lock(&ctx.fleets.names);
        plan(fleet, &sets, names.get_or_insert_with(|| SeededNames::new(rand::random())))
    };
    mark_valid(&mut plan.status.conditions, fleet.metadata.generation);

    let api: Api<GameServerSet> = Api::namespaced(ctx.client.clone(), fleet.namespace());
    let record =
        |f: &dyn Fn(&mut WriteOverlay<GameServerSet>)| f(lock(&ctx.fleets.overlays).entry(key.clone()).or_default());
    if let Some(set) = &plan.create_set {
        match api.create(&PostParams::default(), set).await {
            Ok(written) => {
                info!(gameserverset = %written.name(), replicas = written.spec.replicas, "created GameServerSet");
                ctx.events
                    .normal(
                        fleet,
                        reason::CREATING_GAME_SERVER_SET,
                        format!("Created GameServerSet {}", written.name()),
                    )
                    .await;
                record(&|o| o.wrote(written.clone()));
            }
            Err(e) if api_status(&e) == Some(409) => {}
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    for set in &plan.update_sets {
        match api.replace(set.name(), &PostParams::default(), set).await {
            Ok(written) => {
                let note = format!("Scaling GameServerSet {} to {}", written.name(), written.spec.replicas);
                ctx.events.normal(fleet, reason::SCALING_GAME_SERVER_SET, note).await;
                record(&|o| o.wrote(written.clone()));
            }
            Err(e) if matches!(api_status(&e), Some(409 | 404)) => {}
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    for name in &plan.delete_sets {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                ctx.events
                    .normal(fleet, reason::DELETING_GAME_SERVER_SET, format!("Deleting GameServerSet {name}"))
                    .await;
                record(&|o| o.deleted(object_key(fleet.namespace(), name)));
            }
            Err(e) if api_status(&e) == Some(404) => {}
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    if fleet.status.as_ref() != Some(&plan.status) {
        // `allocations` is the allocator's running count, bumped with resourceVersion-guarded
        // writes; patching our cached copy of it could undo an increment.
        let mut status =
            serde_json::to_value(&plan.status).map_err(|source| Error::Serialize { what: "fleet status", source })?;
        if let Some(map) = status.as_object_mut() {
            map.remove("allocations");
        }
        let patch = json!({ "status": status });
        fleets.patch_status(fleet.name(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    let settled = plan.create_set.is_none() && plan.update_sets.is_empty() && plan.delete_sets.is_empty();
    Ok(Action::requeue(if settled { RESYNC } else { Duration::from_secs(5) }))
}

#[cfg(test)]
mod tests;

//! The Fleet controller of the local runtime: carries out the core's rollout plans (create the
//! active set, resize sets, delete drained old sets) and writes the fleet's status.

use std::sync::Arc;

use stadion_crds::{Fleet, GameServerSet, labels};
use tokio::sync::watch;

use super::Shared;
use super::queue::{COALESCE, OwnerPass, run_owner_controller, split_key};
use crate::local::store::StoreError;
use stadion_core::fleet::plan;

/// Runs until `stop` turns true.
pub(crate) async fn run(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    run_owner_controller::<Fleet, GameServerSet>(shared, labels::FLEET, stop, reconcile_one).await;
}

fn reconcile_one(pass: OwnerPass<'_, Fleet, GameServerSet>) {
    let OwnerPass { shared, key, parent: fleet, children: owned, names, queue } = pass;
    let (namespace, name) = split_key(key);
    let fleets = shared.store.api::<Fleet>();
    let api = shared.store.api::<GameServerSet>();
    let plan = plan(&fleet, &owned, names);
    let _span = tracing::debug_span!("reconcile_fleet", fleet = %key).entered();

    let mut retry = false;
    if let Some(set) = plan.create_set {
        match api.create(set) {
            Ok(created) => tracing::info!(fleet = %key, set = created.name(), "created GameServerSet"),
            Err(error) => {
                tracing::debug!(fleet = %key, %error, "cannot create GameServerSet");
                retry = true;
            }
        }
    }
    for set in plan.update_sets {
        // Guarded by the version the plan saw; on a conflict (the set's status moved) plan again.
        if let Err(error) = api.update(set) {
            retry |= error.is_conflict();
        }
    }
    for set in plan.delete_sets {
        if let Err(error) = api.delete(namespace, &set, None)
            && !error.is_not_found()
        {
            tracing::warn!(fleet = %key, set = %set, %error, "cannot delete GameServerSet");
        }
    }
    let mut status = plan.status;
    if fleet.status.as_ref().map(|s| without_allocations(s.clone())) != Some(without_allocations(status.clone())) {
        let written = fleets.update_with::<StoreError>(namespace, name, |fleet| {
            // The allocator counts allocations on the stored object; keep its latest count.
            status.allocations = fleet.status.as_ref().and_then(|s| s.allocations);
            fleet.status = Some(status);
            Ok(())
        });
        if let Err(error) = written {
            tracing::debug!(fleet = %key, %error, "cannot write Fleet status");
        }
    }
    if retry {
        queue.add_after(key, COALESCE);
    }
}

fn without_allocations(mut status: stadion_crds::fleet::FleetStatus) -> stadion_crds::fleet::FleetStatus {
    status.allocations = None;
    status
}

//! The GameServerSet controller of the local runtime: carries out the core's set plans (create,
//! shut down, delete servers; write the status) against the store.

use std::sync::Arc;

use stadion_crds::{GameServer, GameServerSet, labels};
use tokio::sync::watch;

use super::Shared;
use super::queue::{COALESCE, OwnerPass, run_owner_controller, split_key};
use crate::local::store::StoreError;
use stadion_core::gameserverset::{SetScalingOptions, plan};
use stadion_core::nodes::NodeLoad;

/// Runs until `stop` turns true.
pub(crate) async fn run(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    run_owner_controller::<GameServerSet, GameServer>(shared, labels::GAMESERVERSET, stop, reconcile_one).await;
}

fn reconcile_one(pass: OwnerPass<'_, GameServerSet, GameServer>) {
    let OwnerPass { shared, key, parent: set, children: owned, names, queue } = pass;
    let (namespace, name) = split_key(key);
    let sets = shared.store.api::<GameServerSet>();
    let api = shared.store.api::<GameServer>();
    let nodes = NodeLoad::from_gameservers(&owned);
    let now = jiff::Timestamp::now();
    let plan = plan(&set, &owned, &nodes, names, now, &SetScalingOptions::default());
    let _span = tracing::debug_span!("reconcile_set", set = %key).entered();

    let mut retry = false;
    for gs in plan.create {
        match api.create(gs) {
            Ok(created) => tracing::debug!(set = %key, gameserver = created.name(), "created GameServer"),
            Err(StoreError::AlreadyExists { .. }) => retry = true,
            Err(error) => {
                tracing::warn!(set = %key, %error, "cannot create GameServer");
                retry = true;
            }
        }
    }
    for gs in plan.shutdown.into_iter().chain(plan.overflow) {
        // Guarded by the version the plan saw: a server allocated meanwhile must not be shut down.
        if let Err(error) = api.update(gs) {
            retry |= error.is_conflict();
        }
    }
    for server in plan.delete {
        if let Err(error) = api.delete(namespace, &server, None)
            && !error.is_not_found()
        {
            tracing::warn!(set = %key, gameserver = %server, %error, "cannot delete GameServer");
        }
    }
    if set.status.as_ref() != Some(&plan.status) {
        let status = plan.status;
        let written = sets.update_with::<StoreError>(namespace, name, |set| {
            set.status = Some(status);
            Ok(())
        });
        if let Err(error) = written {
            tracing::debug!(set = %key, %error, "cannot write GameServerSet status");
        }
    }
    if retry {
        queue.add_after(key, COALESCE);
    }
    if let Some(at) = plan.requeue_at {
        queue.add_at_timestamp(key, at);
    }
}

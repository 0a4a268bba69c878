//! The GameServerSet executor: admission, then the core's set plan carried out (create, shut
//! down, delete servers; allocation overflow), then the set's status.

use jiff::Timestamp;
use stadion_core::admission::record_validity;
use stadion_core::gameserverset::{SetScalingOptions, plan};
use stadion_core::names::NameGenerator;
use stadion_core::nodes::NodeLoad;
use stadion_core::object_key;
use stadion_core::store::{EventSubject, EventType, reason};
use stadion_crds::{FieldErrors, GameServer, GameServerSet};

use super::{
    ExecError, Operation, Outcome, RESYNC, SETS, SETTLE_CHECK, Seams, Writes, admit_owner, observed, read, until,
};

/// How many of one pass's GameServer creations are in flight at once.
const PARALLEL_CREATES: usize = 16;

/// One pass over `set` at `now`: recorded, traced, and what to do next.
pub async fn execute_set(
    set: &GameServerSet,
    seams: Seams<'_>,
    names: &mut (dyn NameGenerator + Send),
    now: Timestamp,
    options: &SetScalingOptions,
) -> Result<Outcome, ExecError> {
    observed(SETS, set, seams.recorder, pass(set, seams, names, now, options)).await
}

async fn pass(
    set: &GameServerSet,
    seams: Seams<'_>,
    names: &mut (dyn NameGenerator + Send),
    now: Timestamp,
    options: &SetScalingOptions,
) -> Result<Outcome, ExecError> {
    if set.metadata.deletion_timestamp.is_some() {
        // Its servers go with it by owner-reference cascade; nothing to carry out.
        return Ok(Outcome::AwaitChange);
    }
    let mut writes = Writes::default();
    if let Some(outcome) = admit_owner(set, seams.sets, seams.recorder, now, &mut writes).await? {
        return Ok(outcome);
    }
    let namespace = set.namespace();
    // Packed weighs whole nodes, and a node is cluster-wide: every server on it counts, from
    // every set and every namespace, as in Agones.
    let everywhere = read::<_, GameServer>("all namespaces", seams.gameservers.list(None).await)?;
    let nodes = NodeLoad::from_gameservers(everywhere.iter().map(AsRef::as_ref));
    // A set's servers are the ones with its controller owner reference (its uid), never the
    // ones that merely carry its label: a same-named stranger's servers are not ours.
    let owned = read::<_, GameServer>(namespace, seams.gameservers.list_owned(&set.metadata).await)?;
    let mut plan = plan(set, &owned, &nodes, names, now, options);
    record_validity(&mut plan.status.conditions, &FieldErrors::default(), set.metadata.generation, now);

    let subject = EventSubject::of(set);
    // A pass's creations are independent of each other: after a first one alone (so an API
    // server refusing them all costs one request, not a batch), several are in flight at once,
    // and a batch costs a round trip to the API server instead of one per server. A refused
    // create stops the pass after its batch.
    let (first, rest) = plan.create.split_at(plan.create.len().min(1));
    let (mut created, mut refused) = (0, None);
    for batch in std::iter::once(first).chain(rest.chunks(PARALLEL_CREATES)) {
        let results = futures::future::join_all(batch.iter().map(|gs| seams.gameservers.create(gs))).await;
        for (gs, result) in batch.iter().zip(results) {
            let key = object_key(namespace, gs.name());
            match writes.settle::<_, GameServer>(Operation::Create, &key, result) {
                Ok(Some(_)) => created += 1,
                Ok(None) => {}
                Err(error) => {
                    refused.get_or_insert(error);
                }
            }
        }
        if refused.is_some() {
            break;
        }
    }
    if created > 0 {
        tracing::info!(created, "created GameServers");
        let note = format!("Created {created} GameServer(s)");
        seams.recorder.event(&subject, EventType::Normal, reason::SUCCESSFUL_CREATE, note).await;
    }
    if let Some(error) = refused {
        return Err(error);
    }
    for gs in plan.shutdown.iter().chain(&plan.overflow) {
        // Guarded by the version the plan saw: a server allocated meanwhile must not be shut
        // down, so a conflict re-plans instead.
        let key = object_key(namespace, gs.name());
        writes.settle::<_, GameServer>(Operation::Replace, &key, seams.gameservers.replace(gs).await)?;
    }
    let mut deleted = 0;
    for name in &plan.delete {
        let key = object_key(namespace, name);
        if writes
            .settle::<_, GameServer>(Operation::Delete, &key, seams.gameservers.delete(namespace, name).await)?
            .is_some()
        {
            deleted += 1;
        }
    }
    if deleted > 0 {
        let note = format!("Deleted {deleted} GameServer(s)");
        seams.recorder.event(&subject, EventType::Normal, reason::SUCCESSFUL_DELETE, note).await;
    }

    if set.status.as_ref() != Some(&plan.status) {
        // Guarded by the version the pass read: a status computed from a set that changed since
        // (the fleet resized it) is re-planned rather than written.
        let mut next = set.clone();
        next.status = Some(plan.status.clone());
        let key = object_key(namespace, set.name());
        writes.settle::<_, GameServerSet>(Operation::ReplaceStatus, &key, seams.sets.replace_status(&next).await)?;
    }
    Ok(writes.outcome(match plan.requeue_at {
        Some(at) => Outcome::RequeueAfter(until(at, now)),
        None if plan.is_settled() => Outcome::RequeueAfter(RESYNC),
        None => Outcome::RequeueAfter(SETTLE_CHECK),
    }))
}

//! The Fleet executor: admission, then the core's rollout plan carried out (create the active
//! set, resize sets, delete drained old sets), then the fleet's status.

use jiff::Timestamp;
use stadion_core::admission::record_validity;
use stadion_core::fleet::plan;
use stadion_core::names::NameGenerator;
use stadion_core::object_key;
use stadion_core::store::{EventSubject, EventType, reason};
use stadion_crds::{FieldErrors, Fleet, GameServerSet};

use super::{ExecError, FLEETS, Operation, Outcome, RESYNC, SETTLE_CHECK, Seams, Writes, admit_owner, observed, read};

/// One pass over `fleet` at `now`: recorded, traced, and what to do next.
pub async fn execute_fleet(
    fleet: &Fleet,
    seams: Seams<'_>,
    names: &mut (dyn NameGenerator + Send),
    now: Timestamp,
) -> Result<Outcome, ExecError> {
    observed(FLEETS, fleet, seams.recorder, pass(fleet, seams, names, now)).await
}

async fn pass(
    fleet: &Fleet,
    seams: Seams<'_>,
    names: &mut (dyn NameGenerator + Send),
    now: Timestamp,
) -> Result<Outcome, ExecError> {
    if fleet.metadata.deletion_timestamp.is_some() {
        // Its sets, and their servers, go with it by owner-reference cascade.
        return Ok(Outcome::AwaitChange);
    }
    let mut writes = Writes::default();
    if let Some(outcome) = admit_owner(fleet, seams.fleets, seams.recorder, now, &mut writes).await? {
        return Ok(outcome);
    }
    let namespace = fleet.namespace();
    // A fleet's sets are the ones with its controller owner reference, never a label match.
    let sets = read::<_, GameServerSet>(namespace, seams.sets.list_owned(&fleet.metadata).await)?;
    let sets: Vec<GameServerSet> = sets.iter().map(|s| (**s).clone()).collect();
    let mut plan = plan(fleet, &sets, names);
    record_validity(&mut plan.status.conditions, &FieldErrors::default(), fleet.metadata.generation, now);

    let subject = EventSubject::of(fleet);
    let recorder = seams.recorder;
    if let Some(set) = &plan.create_set {
        let key = object_key(namespace, set.name());
        if let Some(written) =
            writes.settle::<_, GameServerSet>(Operation::Create, &key, seams.sets.create(set).await)?
        {
            tracing::info!(gameserverset = %written.name(), replicas = written.spec.replicas, "created GameServerSet");
            let note = format!("Created GameServerSet {}", written.name());
            recorder.event(&subject, EventType::Normal, reason::CREATING_GAME_SERVER_SET, note).await;
        }
    }
    for set in &plan.update_sets {
        // Guarded by the version the plan saw: a set whose status moved meanwhile is re-planned.
        let key = object_key(namespace, set.name());
        if let Some(written) =
            writes.settle::<_, GameServerSet>(Operation::Replace, &key, seams.sets.replace(set).await)?
        {
            let note = format!("Scaling GameServerSet {} to {}", written.name(), written.spec.replicas);
            recorder.event(&subject, EventType::Normal, reason::SCALING_GAME_SERVER_SET, note).await;
        }
    }
    for name in &plan.delete_sets {
        let key = object_key(namespace, name);
        if writes
            .settle::<_, GameServerSet>(Operation::Delete, &key, seams.sets.delete(namespace, name).await)?
            .is_some()
        {
            let note = format!("Deleting GameServerSet {name}");
            recorder.event(&subject, EventType::Normal, reason::DELETING_GAME_SERVER_SET, note).await;
        }
    }

    if fleet.status.as_ref() != Some(&plan.status) {
        // `status.allocations` belongs to the allocator side. The plan carries the value this
        // pass read, and the write is guarded by the resourceVersion it was read at: if the
        // allocator counted one more meanwhile, the write conflicts and the pass re-plans from
        // the stored value. A stale copy can never overwrite it.
        let mut next = fleet.clone();
        next.status = Some(plan.status.clone());
        let key = object_key(namespace, fleet.name());
        writes.settle::<_, Fleet>(Operation::ReplaceStatus, &key, seams.fleets.replace_status(&next).await)?;
    }
    let settled = plan.create_set.is_none() && plan.update_sets.is_empty() && plan.delete_sets.is_empty();
    Ok(writes.outcome(Outcome::RequeueAfter(if settled { RESYNC } else { SETTLE_CHECK })))
}

//! What an admission webhook would do, done by the controller since none may be installed:
//! defaults written back once, and a GameServerSet's or Fleet's validity reported as the `Valid`
//! status condition plus a Warning Event when the spec turns (or stays, with new problems)
//! invalid.

use jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use stadion_crds::FieldErrors;
use stadion_crds::common::Condition;
use tracing::warn;

use super::Result;
use super::context::Context;
use super::events::reason;
use stadion_core::conditions::{set_condition, validity};

/// Writes `object` back with `apply_defaults` applied if that changes anything, so the stored
/// object shows its defaults as after Agones' webhook. Returns whether it wrote: the write's
/// watch event brings the defaulted object back, and the reconcile should stop here.
pub async fn write_defaults<K>(object: &K, api: &Api<K>, apply_defaults: impl FnOnce(&mut K)) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + PartialEq + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let mut defaulted = object.clone();
    apply_defaults(&mut defaulted);
    if defaulted == *object {
        return Ok(false);
    }
    let name = object.meta().name.as_deref().unwrap_or_default();
    api.replace(name, &PostParams::default(), &defaulted).await?;
    Ok(true)
}

/// Records that `object` is invalid: sets `Valid=False` (with every problem and the generation)
/// through the status subresource and publishes a Warning Event, both only when the condition
/// changed, so an invalid object costs one write and one Event per change, never a hot loop.
pub async fn report_invalid<K>(
    object: &K,
    api: &Api<K>,
    current: &[Condition],
    errors: &FieldErrors,
    ctx: &Context,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let mut conditions = current.to_vec();
    if !set_condition(&mut conditions, validity(errors, object.meta().generation), Timestamp::now()) {
        return Ok(());
    }
    warn!(%errors, "spec is invalid");
    ctx.events.warning(object, reason::VALIDATION_FAILED, errors.to_string()).await;
    let name = object.meta().name.as_deref().unwrap_or_default();
    let patch = json!({ "status": { "conditions": conditions } });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Marks a valid spec `Valid=True` in `conditions` (the status a reconcile is about to write).
pub fn mark_valid(conditions: &mut Vec<Condition>, generation: Option<i64>) {
    set_condition(conditions, validity(&FieldErrors::default(), generation), Timestamp::now());
}

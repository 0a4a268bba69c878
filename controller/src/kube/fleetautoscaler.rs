//! The FleetAutoscaler reconciler: every `sync.fixedInterval.seconds`, the core's policy decides
//! the fleet's replicas (a Webhook policy's HTTP call is made here), the fleet is resized through
//! its scale subresource, and the autoscaler's status is written through its status subresource.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;
use stadion_crds::{Fleet, FleetAutoscaler};
use tracing::{info, info_span, warn};

use super::admission::write_defaults;
use super::context::{Context, error_policy_for, observed};
use super::events::reason;
use super::{Error, Result};
use stadion_core::autoscaler::{AutoscalerStep, WebhookCall, WebhookOutcome, decide, decide_from_webhook_response};
use stadion_core::object_key;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "fleetautoscaler";

/// Reconciles one FleetAutoscaler (timed, counted and traced).
pub async fn reconcile(fas: Arc<FleetAutoscaler>, ctx: Arc<Context>) -> Result<Action> {
    let span =
        info_span!("reconcile", controller = CONTROLLER, fleetautoscaler = %object_key(fas.namespace(), fas.name()));
    observed(&ctx, CONTROLLER, span, reconcile_inner(&fas, &ctx)).await
}

/// Requeue policy after an error.
pub fn error_policy(_fas: Arc<FleetAutoscaler>, error: &Error, _ctx: Arc<Context>) -> Action {
    error_policy_for(CONTROLLER, error)
}

async fn reconcile_inner(fas: &FleetAutoscaler, ctx: &Context) -> Result<Action> {
    if !ctx.leadership.is_leader() || fas.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let autoscalers: Api<FleetAutoscaler> = Api::namespaced(ctx.client.clone(), fas.namespace());
    if write_defaults(fas, &autoscalers, |o| o.apply_defaults()).await? {
        return Ok(Action::await_change());
    }
    let errors = fas.validate();
    if !errors.is_empty() {
        warn!(%errors, "FleetAutoscaler is invalid");
        ctx.events.warning(fas, reason::VALIDATION_FAILED, errors.to_string()).await;
        // The status says so too: an invalid policy cannot scale.
        if fas.status.as_ref().is_none_or(|s| s.able_to_scale) {
            let patch = json!({ "status": { "ableToScale": false } });
            autoscalers.patch_status(fas.name(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        }
        return Ok(Action::await_change());
    }
    let interval = Duration::from_secs(u64::try_from(fas.sync_seconds()).unwrap_or(30));

    let fleets: Api<Fleet> = Api::namespaced(ctx.client.clone(), fas.namespace());
    let fleet = fleets.get_opt(&fas.spec.fleet_name).await?;
    let now = Timestamp::now();
    let request_uid = uuid::Uuid::new_v4().to_string();
    let decision = match decide(fas, fleet.as_ref(), now, &request_uid) {
        AutoscalerStep::Decided(decision) => decision,
        AutoscalerStep::CallWebhook(call) => {
            let outcome = call_webhook(&call).await;
            // `decide` only asks for a webhook when the fleet exists.
            let Some(fleet) = fleet.as_ref() else { return Ok(Action::requeue(interval)) };
            decide_from_webhook_response(fas, fleet, &request_uid, &outcome, now)
        }
    };
    if let Some(error) = &decision.error {
        warn!(%error, "cannot autoscale");
        ctx.events.warning(fas, reason::AUTO_SCALING_FLEET_ERROR, error.to_string()).await;
    }
    if let (Some(replicas), Some(fleet)) = (decision.replicas, fleet.as_ref())
        && replicas != fleet.spec.replicas
    {
        let patch = json!({ "spec": { "replicas": replicas } });
        fleets.patch_scale(fleet.name(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        info!(fleet = %fleet.name(), from = fleet.spec.replicas, to = replicas, "scaled fleet");
        let note = format!("Scaling fleet {} from {} to {replicas}", fleet.name(), fleet.spec.replicas);
        ctx.events.normal(fas, reason::AUTO_SCALING_FLEET, note).await;
    }
    if fas.status.as_ref() != Some(&decision.status) {
        let patch = json!({ "status": decision.status });
        autoscalers.patch_status(fas.name(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    Ok(Action::requeue(interval))
}

/// POSTs the review and parses the answer; every failure becomes text for the core to report.
async fn call_webhook(call: &WebhookCall) -> WebhookOutcome {
    let mut builder = reqwest::Client::builder().timeout(call.timeout);
    if let Some(pem) = &call.ca_bundle {
        let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("caBundle: {e}"))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
    let response =
        client.post(&call.url).json(&call.body).send().await.map_err(|e| format!("POST {}: {e}", call.url))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("POST {} answered {status}", call.url));
    }
    response.json().await.map_err(|e| format!("response of {}: {e}", call.url))
}

#[cfg(test)]
mod tests;

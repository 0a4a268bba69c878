//! The FleetAutoscaler executor: admission, the core's policy decision (with the webhook call a
//! Webhook policy needs), the fleet's replicas, and the autoscaler's status. It runs on the
//! autoscaler's sync interval, as in Agones, in both runtimes: the [`Outcome`] of every pass
//! asks for the next one `spec.sync.fixedInterval.seconds` later (30 by default). A fleet's
//! changes do not trigger a run; an autoscaler's own changes do (both runtimes watch it), so a
//! new or edited autoscaler acts at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use stadion_core::admission::admit;
use stadion_core::autoscaler::{
    AutoscalerStep, WEBHOOK_TIMEOUT, WebhookCall, WebhookOutcome, decide, decide_from_webhook_response,
};
use stadion_core::object_key;
use stadion_core::store::{EventSubject, EventType, reason};
use stadion_crds::{Fleet, FleetAutoscaler};

use super::{AUTOSCALERS, ExecError, Operation, Outcome, Seams, Writes, key_of, observed, read};

/// One pass over `fas` at `now`: recorded, traced, and when to run next. `webhooks` makes the
/// call of a Webhook policy.
pub async fn execute_autoscaler(
    fas: &FleetAutoscaler,
    seams: Seams<'_>,
    webhooks: &WebhookClient,
    now: Timestamp,
) -> Result<Outcome, ExecError> {
    observed(AUTOSCALERS, fas, seams.recorder, pass(fas, seams, webhooks, now)).await
}

async fn pass(
    fas: &FleetAutoscaler,
    seams: Seams<'_>,
    webhooks: &WebhookClient,
    now: Timestamp,
) -> Result<Outcome, ExecError> {
    if fas.metadata.deletion_timestamp.is_some() {
        return Ok(Outcome::AwaitChange);
    }
    let mut writes = Writes::default();
    let key = key_of(fas);
    let subject = EventSubject::of(fas);
    let admitted = admit(fas);
    if admitted.defaulted {
        // Written back so the stored object shows its defaults; the change brings it back.
        writes.settle::<_, FleetAutoscaler>(
            Operation::Replace,
            &key,
            seams.autoscalers.replace(&admitted.object).await,
        )?;
        return Ok(writes.outcome(Outcome::AwaitChange));
    }
    if !admitted.is_valid() {
        // An autoscaler has no conditions: an invalid policy shows as `ableToScale: false`,
        // reported (and written) once per change, and nothing runs until it is fixed.
        if fas.status.as_ref().is_none_or(|s| s.able_to_scale) {
            let mut next = fas.clone();
            next.status.get_or_insert_with(Default::default).able_to_scale = false;
            let written = seams.autoscalers.replace_status(&next).await;
            if writes.settle::<_, FleetAutoscaler>(Operation::ReplaceStatus, &key, written)?.is_some() {
                tracing::warn!(errors = %admitted.errors, "FleetAutoscaler is invalid");
                let note = admitted.errors.to_string();
                seams.recorder.event(&subject, EventType::Warning, reason::VALIDATION_FAILED, note).await;
            }
        }
        return Ok(writes.outcome(Outcome::AwaitChange));
    }
    let interval = Duration::from_secs(u64::try_from(fas.sync_seconds()).unwrap_or(30).max(1));

    let fleet = read::<_, Fleet>(fas.namespace(), seams.fleets.get(fas.namespace(), &fas.spec.fleet_name).await)?;
    let request_uid = uuid::Uuid::new_v4().to_string();
    let decision = match (decide(fas, fleet.as_deref(), now, &request_uid), fleet.as_deref()) {
        (AutoscalerStep::Decided(decision), _) => decision,
        (AutoscalerStep::CallWebhook(call), Some(fleet)) => {
            let outcome = webhooks.post(&call).await;
            decide_from_webhook_response(fas, fleet, &request_uid, &outcome, now)
        }
        // `decide` asks for a webhook only when the fleet exists.
        (AutoscalerStep::CallWebhook(_), None) => return Ok(Outcome::RequeueAfter(interval)),
    };
    if let Some(error) = &decision.error {
        tracing::warn!(%error, "cannot autoscale");
        seams.recorder.event(&subject, EventType::Warning, reason::AUTO_SCALING_FLEET_ERROR, error.to_string()).await;
    }
    if let (Some(replicas), Some(fleet)) = (decision.replicas, fleet.as_deref())
        && replicas != fleet.spec.replicas
    {
        // Guarded by the version the decision was made from: a fleet that moved meanwhile (its
        // status, someone's `kubectl scale`) is decided again, soon, from what it is now.
        let mut next = fleet.clone();
        next.spec.replicas = replicas;
        let fleet_key = object_key(fleet.namespace(), fleet.name());
        let scaled = writes.settle::<_, Fleet>(Operation::Replace, &fleet_key, seams.fleets.replace(&next).await)?;
        if scaled.is_none() {
            return Ok(writes.outcome(Outcome::RequeueAfter(interval)));
        }
        tracing::info!(fleet = %fleet.name(), from = fleet.spec.replicas, to = replicas, "scaled fleet");
        let note = format!("Scaling fleet {} from {} to {replicas}", fleet.name(), fleet.spec.replicas);
        seams.recorder.event(&subject, EventType::Normal, reason::AUTO_SCALING_FLEET, note).await;
    }
    if fas.status.as_ref() != Some(&decision.status) {
        let mut next = fas.clone();
        next.status = Some(decision.status);
        writes.settle::<_, FleetAutoscaler>(
            Operation::ReplaceStatus,
            &key,
            seams.autoscalers.replace_status(&next).await,
        )?;
    }
    Ok(writes.outcome(Outcome::RequeueAfter(interval)))
}

/// The HTTP client of Webhook policies, one for the whole runtime: its connection pool is
/// reused across calls and autoscalers, and every call is bounded by Agones' timeout. A
/// `caBundle` needs its own trust roots, so each distinct bundle gets one client, built on its
/// first use and reused after.
#[derive(Clone, Default)]
pub struct WebhookClient {
    inner: Arc<Clients>,
}

#[derive(Default)]
struct Clients {
    /// The client for plain http and publicly trusted https (built on first use, so a runtime
    /// starts even where TLS roots cannot load; a call then reports why it cannot be made).
    plain: OnceLock<Result<reqwest::Client, String>>,
    /// Clients trusting a webhook's `caBundle`, by the bundle's PEM bytes.
    with_ca: Mutex<HashMap<Vec<u8>, reqwest::Client>>,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookClient").finish_non_exhaustive()
    }
}

impl WebhookClient {
    /// A client; nothing is built until the first call.
    pub fn new() -> Self {
        Self::default()
    }

    /// POSTs the review and parses the answer. Every failure (no client, transport, status
    /// code, body) becomes the text the core puts in the autoscaler's status.
    pub async fn post(&self, call: &WebhookCall) -> WebhookOutcome {
        let client = self.client_for(call.ca_bundle.as_deref())?;
        let response = client
            .post(&call.url)
            .json(&call.body)
            .timeout(call.timeout)
            .send()
            .await
            .map_err(|e| format!("POST {}: {e}", call.url))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("POST {} answered {status}", call.url));
        }
        response.json().await.map_err(|e| format!("POST {}: unreadable reply: {e}", call.url))
    }

    fn client_for(&self, ca_bundle: Option<&[u8]>) -> Result<reqwest::Client, String> {
        let Some(pem) = ca_bundle else {
            return self.inner.plain.get_or_init(|| build(None)).clone();
        };
        let mut cached = self.inner.with_ca.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = cached.get(pem) {
            return Ok(client.clone());
        }
        let client = build(Some(pem))?;
        cached.insert(pem.to_vec(), client.clone());
        Ok(client)
    }

    /// How many clients exist (the plain one counts once built): for tests of the reuse.
    #[cfg(test)]
    pub(crate) fn clients_built(&self) -> usize {
        let with_ca = self.inner.with_ca.lock().unwrap_or_else(PoisonError::into_inner).len();
        with_ca + usize::from(self.inner.plain.get().is_some())
    }
}

fn build(ca_bundle: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT);
    if let Some(pem) = ca_bundle {
        let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("caBundle: {e}"))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| format!("webhook HTTP client: {e}"))
}

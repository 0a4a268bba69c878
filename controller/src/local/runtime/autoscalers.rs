//! The FleetAutoscaler controller of the local runtime: runs each autoscaler's policy every
//! sync interval (and as soon as its fleet changes), calls webhooks, and writes the fleet's
//! replicas and the autoscaler's status.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stadion_crds::{Fleet, FleetAutoscaler};
use tokio::sync::watch;

use super::queue::COALESCE;
use super::queue::{WorkQueue, split_key};
use super::{Shared, lock};
use crate::local::store::{Selector, StoreError};
use stadion_core::autoscaler::{AutoscalerDecision, AutoscalerStep, WebhookCall, decide, decide_from_webhook_response};
use stadion_core::object_key;

/// Runs until `stop` turns true.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let autoscalers = shared.store.api::<FleetAutoscaler>().watch();
    let fleets = shared.store.api::<Fleet>().watch();
    let (mut autoscaler_events, mut fleet_events) = (autoscalers.events, fleets.events);
    let mut queue = WorkQueue::default();
    for fas in &autoscalers.initial {
        queue.add(object_key(fas.namespace(), fas.name()));
    }
    // Autoscalers with a webhook call in flight: one call at a time per autoscaler.
    let calling: Arc<Mutex<HashSet<String>>> = Arc::default();
    let client = reqwest::Client::new();
    loop {
        for key in queue.take_due() {
            reconcile_one(&shared, &key, &mut queue, &calling, &client);
        }
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            Some(event) = autoscaler_events.recv() => {
                let fas = event.object();
                queue.add(object_key(fas.namespace(), fas.name()));
            }
            Some(event) = fleet_events.recv() => {
                let mut changed = vec![event.object().clone()];
                tokio::time::sleep(COALESCE).await;
                while let Ok(event) = fleet_events.try_recv() {
                    changed.push(event.object().clone());
                }
                for fleet in changed {
                    queue.extend(watching(&shared, &fleet));
                }
            }
            () = queue.next_timer() => {}
        }
    }
}

/// Keys of the autoscalers of `fleet`.
fn watching(shared: &Shared, fleet: &Fleet) -> Vec<String> {
    let autoscalers = shared.store.api::<FleetAutoscaler>().list(Some(fleet.namespace()), &Selector::everything());
    autoscalers
        .iter()
        .filter(|fas| fas.spec.fleet_name == fleet.name())
        .map(|fas| object_key(fas.namespace(), fas.name()))
        .collect()
}

fn reconcile_one(
    shared: &Arc<Shared>,
    key: &str,
    queue: &mut WorkQueue,
    calling: &Arc<Mutex<HashSet<String>>>,
    client: &reqwest::Client,
) {
    let (namespace, name) = split_key(key);
    let Some(fas) = shared.store.api::<FleetAutoscaler>().try_get(namespace, name) else { return };
    if fas.metadata.deletion_timestamp.is_some() {
        return;
    }
    let interval = u64::try_from(fas.sync_seconds()).unwrap_or(30).max(1);
    queue.add_after(key, Duration::from_secs(interval));
    let fleet = shared.store.api::<Fleet>().try_get(namespace, &fas.spec.fleet_name);
    let now = jiff::Timestamp::now();
    let uid = uuid::Uuid::new_v4().to_string();
    match decide(&fas, fleet.as_deref(), now, &uid) {
        AutoscalerStep::Decided(decision) => carry_out(shared, key, &fas.spec.fleet_name, decision),
        AutoscalerStep::CallWebhook(call) => {
            let Some(fleet) = fleet else { return };
            if !lock(calling).insert(key.to_owned()) {
                return;
            }
            let (shared, calling, client, key) = (shared.clone(), calling.clone(), client.clone(), key.to_owned());
            tokio::spawn(async move {
                let outcome = post(&client, &call).await;
                let decision = decide_from_webhook_response(&fas, &fleet, &uid, &outcome, jiff::Timestamp::now());
                carry_out(&shared, &key, &fas.spec.fleet_name, decision);
                lock(&calling).remove(&key);
            });
        }
    }
}

/// POSTs the review; any failure becomes the text the core puts in the autoscaler's status.
async fn post(client: &reqwest::Client, call: &WebhookCall) -> stadion_core::autoscaler::WebhookOutcome {
    let client = match &call.ca_bundle {
        Some(pem) => {
            let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("caBundle: {e}"))?;
            let mut builder = reqwest::Client::builder();
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
            builder.build().map_err(|e| format!("caBundle: {e}"))?
        }
        None => client.clone(),
    };
    let response = client
        .post(&call.url)
        .json(&call.body)
        .timeout(call.timeout)
        .send()
        .await
        .map_err(|e| format!("POST {}: {e}", call.url))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("POST {}: HTTP {status}", call.url));
    }
    response.json().await.map_err(|e| format!("POST {}: unreadable reply: {e}", call.url))
}

fn carry_out(shared: &Shared, key: &str, fleet_name: &str, decision: AutoscalerDecision) {
    let (namespace, name) = split_key(key);
    if let Some(error) = &decision.error {
        tracing::warn!(autoscaler = %key, %error, "autoscaler cannot scale");
    }
    if let Some(replicas) = decision.replicas {
        let scaled = shared.store.api::<Fleet>().update_with::<StoreError>(namespace, fleet_name, |fleet| {
            fleet.spec.replicas = replicas;
            Ok(())
        });
        match scaled {
            Ok(_) => tracing::info!(autoscaler = %key, fleet = fleet_name, replicas, "scaled fleet"),
            Err(error) => tracing::warn!(autoscaler = %key, fleet = fleet_name, %error, "cannot scale fleet"),
        }
    }
    let status = decision.status;
    let written = shared.store.api::<FleetAutoscaler>().update_with::<StoreError>(namespace, name, |fas| {
        fas.status = Some(status);
        Ok(())
    });
    if let Err(error) = written
        && !error.is_not_found()
    {
        tracing::debug!(autoscaler = %key, %error, "cannot write FleetAutoscaler status");
    }
}

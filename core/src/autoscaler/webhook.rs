//! The Webhook policy's wire format (Agones' `FleetAutoscaleReview`) and the pure halves of the
//! call: building the request, reading the response. The HTTP POST itself is I/O, so it is made
//! outside the core, by the controller's one webhook client (built once, reused by every
//! autoscaler in both runtimes, bounded by [`WEBHOOK_TIMEOUT`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stadion_crds::fleet::FleetStatus;
use stadion_crds::fleetautoscaler::WebhookPolicy;
use stadion_crds::{Fleet, FleetAutoscaler};

use super::{WebhookOutcome, autoscaler_key, invalid_policy};
use crate::Error;

/// How long a runtime waits for the webhook, as in Agones.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);
/// Port of a webhook `service` that names none (Agones' choice, not Kubernetes' 443).
pub const DEFAULT_SERVICE_PORT: i32 = 8000;
/// Namespace of a webhook `service` that names none (Agones': `default`, not the autoscaler's).
pub const DEFAULT_SERVICE_NAMESPACE: &str = "default";

/// The JSON body exchanged with the webhook: `{"request": {...}}` out, `{"response": {...}}` back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetAutoscaleReview {
    /// What we send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<FleetAutoscaleRequest>,
    /// What the webhook answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<FleetAutoscaleResponse>,
}

/// The fleet as the webhook sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetAutoscaleRequest {
    /// Unique id of this request; the response echoes it.
    pub uid: String,
    /// Fleet name.
    pub name: String,
    /// Fleet namespace.
    pub namespace: String,
    /// Fleet status.
    pub status: FleetStatus,
    /// Fleet labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Fleet annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The webhook's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetAutoscaleResponse {
    /// The request's uid.
    #[serde(default)]
    pub uid: String,
    /// Whether to scale at all.
    #[serde(default)]
    pub scale: bool,
    /// The replicas to scale to (when `scale`).
    #[serde(default)]
    pub replicas: i32,
}

/// An HTTP call for a runtime to make: POST `body` as JSON to `url` within `timeout`, trusting
/// `ca_bundle` (PEM) for https when given, and parse the reply as a [`FleetAutoscaleReview`].
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookCall {
    /// Absolute URL.
    pub url: String,
    /// PEM CA certificates to verify the endpoint with.
    pub ca_bundle: Option<Vec<u8>>,
    /// The request body.
    pub body: FleetAutoscaleReview,
    /// Time limit for the whole call.
    pub timeout: Duration,
}

/// The call for `policy` about `fleet`. The URL is `url` as given, or for a `service`
/// `http(s)://<name>.<namespace>.svc:<port><path>` (https when a caBundle is given, as in Agones).
pub fn webhook_call(
    fas: &FleetAutoscaler,
    fleet: &Fleet,
    policy: &WebhookPolicy,
    uid: &str,
) -> Result<WebhookCall, Error> {
    let url = match (&policy.url, &policy.service) {
        (Some(url), _) if url.starts_with("http://") || url.starts_with("https://") => url.clone(),
        (Some(url), _) => {
            return Err(invalid_policy(fas, &format!("webhook url {url:?} is not an absolute http(s) URL")));
        }
        (None, Some(service)) => {
            let scheme = if policy.ca_bundle.is_some() { "https" } else { "http" };
            let namespace =
                if service.namespace.is_empty() { DEFAULT_SERVICE_NAMESPACE } else { service.namespace.as_str() };
            let path = service.path.as_deref().unwrap_or_default();
            let slash = if path.is_empty() || path.starts_with('/') { "" } else { "/" };
            let port = service.port.unwrap_or(DEFAULT_SERVICE_PORT);
            format!("{scheme}://{}.{namespace}.svc:{port}{slash}{path}", service.name)
        }
        (None, None) => return Err(invalid_policy(fas, "webhook needs `url` or `service`")),
    };
    let request = FleetAutoscaleRequest {
        uid: uid.to_owned(),
        name: fleet.name().to_owned(),
        namespace: fleet.namespace().to_owned(),
        status: fleet.status.clone().unwrap_or_default(),
        labels: fleet.metadata.labels.clone().unwrap_or_default(),
        annotations: fleet.metadata.annotations.clone().unwrap_or_default(),
    };
    Ok(WebhookCall {
        url,
        ca_bundle: policy.ca_bundle.as_ref().map(|b| b.0.clone()),
        body: FleetAutoscaleReview { request: Some(request), response: None },
        timeout: WEBHOOK_TIMEOUT,
    })
}

/// The replicas the webhook asked for: the fleet's current ones when `scale` is false.
pub(super) fn replicas_from(
    fas: &FleetAutoscaler,
    fleet: &Fleet,
    request_uid: &str,
    outcome: &WebhookOutcome,
) -> Result<i32, Error> {
    let fail = |message: String| Error::Webhook { autoscaler: autoscaler_key(fas), message };
    let review = outcome.as_ref().map_err(|e| fail(e.clone()))?;
    let response = review.response.as_ref().ok_or_else(|| fail("the reply has no `response`".to_owned()))?;
    if !response.uid.is_empty() && response.uid != request_uid {
        return Err(fail(format!("the reply answers request {:?}, not {request_uid:?}", response.uid)));
    }
    if !response.scale {
        return Ok(fleet.spec.replicas);
    }
    if response.replicas < 0 {
        return Err(fail(format!("the reply asks for {} replicas", response.replicas)));
    }
    Ok(response.replicas)
}

//! FleetAutoscaler policies: from a Fleet's spec and status to the replicas it should have and
//! the autoscaler status to write.
//!
//! Most policies decide on their own ([`decide`] returns [`AutoscalerStep::Decided`]). A Webhook
//! policy needs an HTTP call, which is the runtime's job: [`decide`] returns
//! [`AutoscalerStep::CallWebhook`] with the request to POST, and the runtime calls
//! [`decide_from_webhook_response`] with what came back (or the transport error). Any error
//! leaves the fleet's replicas alone and shows as `ableToScale: false`.
//!
//! Scale to zero is allowed: a Buffer of 0 with `minReplicas: 0` and nothing Allocated gives 0.

mod schedule;
mod webhook;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stadion_crds::fleetautoscaler::{
    BufferPolicy, CounterPolicy, FleetAutoscalerPolicy, FleetAutoscalerPolicyType, FleetAutoscalerStatus,
};
use stadion_crds::{Fleet, FleetAutoscaler};

use super::{Error, object_key};

pub use schedule::schedule_is_active;
pub use webhook::{
    FleetAutoscaleRequest, FleetAutoscaleResponse, FleetAutoscaleReview, WEBHOOK_TIMEOUT, WebhookCall, webhook_call,
};

/// What the webhook call produced: the parsed review, or why it failed (transport error, bad
/// status code, unparseable body), as text.
pub type WebhookOutcome = Result<FleetAutoscaleReview, String>;

/// The result of one autoscaler run.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoscalerDecision {
    /// The fleet's new `spec.replicas`; `None` leaves it as it is.
    pub replicas: Option<i32>,
    /// The autoscaler status to write.
    pub status: FleetAutoscalerStatus,
    /// Why the autoscaler could not scale, for an Event / log (also `ableToScale: false`).
    pub error: Option<Error>,
}

/// Either a decision, or the webhook call a runtime must make first.
#[derive(Clone, Debug, PartialEq)]
pub enum AutoscalerStep {
    /// Done: write the replicas (if any) and the status.
    Decided(AutoscalerDecision),
    /// POST this, then call [`decide_from_webhook_response`].
    CallWebhook(Box<WebhookCall>),
}

/// Runs `fas` against `fleet` (None: the fleet does not exist) at `now`. `request_uid` becomes
/// the webhook request's uid, should the policy need one.
pub fn decide(fas: &FleetAutoscaler, fleet: Option<&Fleet>, now: Timestamp, request_uid: &str) -> AutoscalerStep {
    let Some(fleet) = fleet else {
        return AutoscalerStep::Decided(failure(fas, None, missing_fleet(fas)));
    };
    match evaluate(fas, fleet, &fas.spec.policy, now) {
        Evaluation::Replicas { desired, limited, policy } => {
            AutoscalerStep::Decided(success(fas, fleet, Some(desired), limited, Some(policy), now))
        }
        Evaluation::NoPolicyApplies => AutoscalerStep::Decided(success(fas, fleet, None, false, None, now)),
        Evaluation::Webhook(policy) => match webhook_call(fas, fleet, policy, request_uid) {
            Ok(call) => AutoscalerStep::CallWebhook(Box::new(call)),
            Err(e) => AutoscalerStep::Decided(failure(fas, Some(fleet), e)),
        },
        Evaluation::Failed(e) => AutoscalerStep::Decided(failure(fas, Some(fleet), e)),
    }
}

/// Finishes a run that needed a webhook: `outcome` is what the call produced, `request_uid` the
/// uid sent (the response must echo it, when it gives one).
pub fn decide_from_webhook_response(
    fas: &FleetAutoscaler,
    fleet: &Fleet,
    request_uid: &str,
    outcome: &WebhookOutcome,
    now: Timestamp,
) -> AutoscalerDecision {
    match webhook::replicas_from(fas, fleet, request_uid, outcome) {
        Ok(desired) => success(fas, fleet, Some(desired), false, Some(FleetAutoscalerPolicyType::Webhook), now),
        Err(e) => failure(fas, Some(fleet), e),
    }
}

/// What one policy (possibly nested in Schedule/Chain) says.
enum Evaluation<'a> {
    Replicas { desired: i32, limited: bool, policy: FleetAutoscalerPolicyType },
    Webhook(&'a stadion_crds::fleetautoscaler::WebhookPolicy),
    NoPolicyApplies,
    Failed(Error),
}

fn evaluate<'a>(
    fas: &FleetAutoscaler,
    fleet: &Fleet,
    policy: &'a FleetAutoscalerPolicy,
    now: Timestamp,
) -> Evaluation<'a> {
    use FleetAutoscalerPolicyType as T;
    let invalid = |message: &str| Evaluation::Failed(invalid_policy(fas, message));
    match policy.type_ {
        T::Buffer => match &policy.buffer {
            Some(buffer) => replicas_or_error(buffer_replicas(fas, fleet, buffer), T::Buffer),
            None => invalid("policy type Buffer needs `buffer`"),
        },
        T::Webhook => match &policy.webhook {
            Some(webhook) => Evaluation::Webhook(webhook),
            None => invalid("policy type Webhook needs `webhook`"),
        },
        T::Counter | T::List => {
            let (section, is_list) = match policy.type_ {
                T::Counter => (&policy.counter, false),
                _ => (&policy.list, true),
            };
            match section {
                Some(counter) => replicas_or_error(capacity_replicas(fas, fleet, counter, is_list), policy.type_),
                None => invalid("policy type Counter/List needs `counter`/`list`"),
            }
        }
        T::Schedule => match &policy.schedule {
            Some(schedule) => match schedule_is_active(schedule, now) {
                Ok(true) => evaluate(fas, fleet, &schedule.policy, now),
                Ok(false) => Evaluation::NoPolicyApplies,
                Err(message) => invalid(&message),
            },
            None => invalid("policy type Schedule needs `schedule`"),
        },
        T::Chain => {
            for entry in &policy.chain {
                match evaluate(fas, fleet, &entry.policy, now) {
                    Evaluation::NoPolicyApplies => continue,
                    decided => return decided,
                }
            }
            Evaluation::NoPolicyApplies
        }
    }
}

fn replicas_or_error<'a>(result: Result<(i32, bool), Error>, policy: FleetAutoscalerPolicyType) -> Evaluation<'a> {
    match result {
        Ok((desired, limited)) => Evaluation::Replicas { desired, limited, policy },
        Err(e) => Evaluation::Failed(e),
    }
}

/// Buffer: allocated + reserved + buffer, or ceil((allocated + reserved) × 100 / (100 − pct)),
/// clamped to [minReplicas, maxReplicas]. Reserved servers count with the Allocated ones because
/// neither can take a new session.
pub fn buffer_replicas(fas: &FleetAutoscaler, fleet: &Fleet, buffer: &BufferPolicy) -> Result<(i32, bool), Error> {
    if buffer.min_replicas < 0 || buffer.max_replicas < buffer.min_replicas {
        return Err(invalid_policy(fas, "buffer needs 0 <= minReplicas <= maxReplicas"));
    }
    let status = fleet.status.clone().unwrap_or_default();
    let busy = i64::from(status.allocated_replicas) + i64::from(status.reserved_replicas);
    let desired = match parse_buffer(&buffer.buffer_size).map_err(|m| invalid_policy(fas, &m))? {
        BufferSize::Absolute(n) => busy + n,
        BufferSize::Percent(pct) => ceil_div(busy * 100, 100 - pct),
    };
    Ok(clamp(desired, i64::from(buffer.min_replicas), i64::from(buffer.max_replicas)))
}

/// Counter/List: keep `bufferSize` spare capacity of the key over the fleet's aggregate count
/// (or a percent of the total), the total clamped to [minCapacity, maxCapacity], turned into
/// replicas with the capacity one server of the fleet's template has.
pub fn capacity_replicas(
    fas: &FleetAutoscaler,
    fleet: &Fleet,
    policy: &CounterPolicy,
    is_list: bool,
) -> Result<(i32, bool), Error> {
    let kind = if is_list { "list" } else { "counter" };
    let template = &fleet.spec.template.spec;
    let per_server = if is_list {
        template.lists.get(&policy.key).map(|l| l.capacity)
    } else {
        template.counters.get(&policy.key).map(|c| c.capacity)
    };
    let per_server = per_server.filter(|c| *c > 0).ok_or_else(|| {
        invalid_policy(fas, &format!("{kind} {:?} has no positive capacity in the fleet template", policy.key))
    })?;
    if policy.min_capacity < 0 || (policy.max_capacity > 0 && policy.max_capacity < policy.min_capacity) {
        return Err(invalid_policy(fas, "needs 0 <= minCapacity <= maxCapacity"));
    }
    let status = fleet.status.clone().unwrap_or_default();
    let aggregate = if is_list { status.lists.get(&policy.key) } else { status.counters.get(&policy.key) };
    let count = aggregate.map_or(0, |a| a.count);
    let wanted_capacity = match parse_buffer(&policy.buffer_size).map_err(|m| invalid_policy(fas, &m))? {
        BufferSize::Absolute(n) => count + n,
        BufferSize::Percent(pct) => ceil_div(count * 100, 100 - pct),
    };
    let max = if policy.max_capacity > 0 { policy.max_capacity } else { i64::MAX };
    let (capacity, limited) = clamp_i64(wanted_capacity, policy.min_capacity, max);
    // Never exceed maxCapacity: round down there, up everywhere else.
    let replicas = if capacity == max && limited { capacity / per_server } else { ceil_div(capacity, per_server) };
    Ok((i32::try_from(replicas).unwrap_or(i32::MAX), limited))
}

enum BufferSize {
    Absolute(i64),
    Percent(i64),
}

fn parse_buffer(value: &IntOrString) -> Result<BufferSize, String> {
    let parse_percent = |s: &str| -> Result<BufferSize, String> {
        let pct: i64 = s.trim().parse().map_err(|_| format!("bufferSize {s:?}% is not a number"))?;
        if (1..=99).contains(&pct) {
            Ok(BufferSize::Percent(pct))
        } else {
            Err(format!("bufferSize percent must be 1-99, got {pct}%"))
        }
    };
    match value {
        IntOrString::Int(n) if *n >= 0 => Ok(BufferSize::Absolute(i64::from(*n))),
        IntOrString::Int(n) => Err(format!("bufferSize must not be negative, got {n}")),
        IntOrString::String(s) => match s.strip_suffix('%') {
            Some(p) => parse_percent(p),
            None => s
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(BufferSize::Absolute)
                .ok_or_else(|| format!("bufferSize {s:?} is neither a count nor a percent")),
        },
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

fn clamp(desired: i64, min: i64, max: i64) -> (i32, bool) {
    let (v, limited) = clamp_i64(desired, min, max);
    (i32::try_from(v).unwrap_or(i32::MAX), limited)
}

fn clamp_i64(desired: i64, min: i64, max: i64) -> (i64, bool) {
    if desired < min {
        (min, true)
    } else if desired > max {
        (max, true)
    } else {
        (desired, false)
    }
}

fn success(
    fas: &FleetAutoscaler,
    fleet: &Fleet,
    desired: Option<i32>,
    limited: bool,
    policy: Option<FleetAutoscalerPolicyType>,
    now: Timestamp,
) -> AutoscalerDecision {
    let current = fleet.spec.replicas;
    let previous = fas.status.clone().unwrap_or_default();
    let replicas = desired.filter(|d| *d != current);
    let status = FleetAutoscalerStatus {
        current_replicas: fleet.status.as_ref().map_or(0, |s| s.replicas),
        desired_replicas: desired.unwrap_or(current),
        last_scale_time: if replicas.is_some() { Some(Time(now)) } else { previous.last_scale_time },
        able_to_scale: true,
        scaling_limited: limited,
        last_applied_policy: policy.or(previous.last_applied_policy),
    };
    AutoscalerDecision { replicas, status, error: None }
}

fn failure(fas: &FleetAutoscaler, fleet: Option<&Fleet>, error: Error) -> AutoscalerDecision {
    let previous = fas.status.clone().unwrap_or_default();
    let status = FleetAutoscalerStatus {
        current_replicas: fleet.and_then(|f| f.status.as_ref()).map_or(0, |s| s.replicas),
        desired_replicas: fleet.map_or(0, |f| f.spec.replicas),
        last_scale_time: previous.last_scale_time,
        able_to_scale: false,
        scaling_limited: false,
        last_applied_policy: previous.last_applied_policy,
    };
    AutoscalerDecision { replicas: None, status, error: Some(error) }
}

fn autoscaler_key(fas: &FleetAutoscaler) -> String {
    object_key(fas.namespace(), fas.name())
}

fn invalid_policy(fas: &FleetAutoscaler, message: &str) -> Error {
    Error::InvalidPolicy { autoscaler: autoscaler_key(fas), message: message.to_owned() }
}

fn missing_fleet(fas: &FleetAutoscaler) -> Error {
    Error::FleetNotFound { autoscaler: autoscaler_key(fas), fleet: fas.spec.fleet_name.clone() }
}

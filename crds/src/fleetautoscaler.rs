//! `autoscaling.agones.dev/v1` FleetAutoscaler: keeps a Fleet's replicas in step with demand.

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::preserve_unknown_object;
use crate::resource::namespaced_resource;

/// Scales one Fleet by a policy, on a fixed interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetAutoscaler {
    /// Always `autoscaling.agones.dev/v1`.
    #[serde(default = "FleetAutoscaler::default_api_version")]
    pub api_version: String,
    /// Always `FleetAutoscaler`.
    #[serde(default = "FleetAutoscaler::default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub metadata: ObjectMeta,
    /// Desired behaviour.
    #[serde(default)]
    pub spec: FleetAutoscalerSpec,
    /// Observed state (status subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<FleetAutoscalerStatus>,
}

namespaced_resource!(FleetAutoscaler, group = "autoscaling.agones.dev", version = "v1", plural = "fleetautoscalers");

/// FleetAutoscaler spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetAutoscalerSpec {
    /// Name of the Fleet to scale (same namespace).
    #[serde(default)]
    pub fleet_name: String,
    /// How to compute the desired replicas.
    #[serde(default)]
    pub policy: FleetAutoscalerPolicy,
    /// How often to compute it (FixedInterval 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<FleetAutoscalerSync>,
}

/// A scaling policy: `type` names which of the other fields applies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetAutoscalerPolicy {
    /// Buffer, Webhook, Counter, List, Schedule or Chain.
    #[serde(rename = "type")]
    pub type_: FleetAutoscalerPolicyType,
    /// Buffer policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<BufferPolicy>,
    /// Webhook policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookPolicy>,
    /// Counter policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<CounterPolicy>,
    /// List policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<CounterPolicy>,
    /// Schedule policy: a nested policy active in a time window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Box<SchedulePolicy>>,
    /// Chain policy: the first applicable entry wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_unknown_array")]
    pub chain: Vec<ChainEntry>,
}

fn base64_bytes(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "format": "byte" })
}

fn preserve_unknown_array(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let item = preserve_unknown_object(generator);
    schemars::json_schema!({ "type": "array", "items": item })
}

/// The kinds of scaling policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FleetAutoscalerPolicyType {
    /// Keep a buffer of Ready servers above the Allocated count.
    #[default]
    Buffer,
    /// Ask an HTTP endpoint.
    Webhook,
    /// Keep spare capacity of a counter.
    Counter,
    /// Keep spare capacity of a list.
    List,
    /// A nested policy active between times / on a cron period.
    Schedule,
    /// An ordered list of policies.
    Chain,
}

/// Buffer policy: desired = allocated + buffer (or a percent), clamped to [min, max].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BufferPolicy {
    /// Upper bound on replicas.
    #[serde(default)]
    pub max_replicas: i32,
    /// Lower bound on replicas (0 allowed: scale to zero).
    #[serde(default)]
    pub min_replicas: i32,
    /// Ready servers to keep (an int, or a percent of the total).
    pub buffer_size: IntOrString,
}

/// Webhook policy: where to POST the fleet status (the shape of a WebhookClientConfig).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPolicy {
    /// Absolute URL of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// In-cluster service to call instead of a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<WebhookService>,
    /// PEM CA bundle (base64 in YAML) used to verify the endpoint's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "base64_bytes")]
    pub ca_bundle: Option<ByteString>,
}

/// A service reference for webhooks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookService {
    /// Service name.
    #[serde(default)]
    pub name: String,
    /// Service namespace (`default` when empty, as in Agones).
    #[serde(default)]
    pub namespace: String,
    /// Request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Service port (8000 when unset, as in Agones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// Counter or List policy over the fleet's aggregate capacity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CounterPolicy {
    /// Counter or list name.
    #[serde(default)]
    pub key: String,
    /// Upper bound on aggregate capacity.
    #[serde(default)]
    pub max_capacity: i64,
    /// Lower bound on aggregate capacity.
    #[serde(default)]
    pub min_capacity: i64,
    /// Spare capacity to keep (an int, or a percent).
    pub buffer_size: IntOrString,
}

/// Schedule policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulePolicy {
    /// Absolute window in which the policy may apply.
    #[serde(default)]
    pub between: Between,
    /// Recurring period in which the policy applies.
    #[serde(default)]
    pub active_period: ActivePeriod,
    /// The policy that applies.
    #[schemars(schema_with = "preserve_unknown_object")]
    pub policy: FleetAutoscalerPolicy,
}

/// Absolute time window (either end may be unset).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Between {
    /// Start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Time>,
    /// End time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Time>,
}

/// Recurring active period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivePeriod {
    /// IANA time zone (UTC when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timezone: String,
    /// Cron expression of the period starts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start_cron: String,
    /// Length of each period (Go duration, e.g. `1h30m`); empty means forever.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
}

/// One entry of a Chain policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainEntry {
    /// Unique id of the entry.
    #[serde(default)]
    pub id: String,
    /// The policy.
    #[serde(flatten)]
    pub policy: FleetAutoscalerPolicy,
}

/// How often the autoscaler runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetAutoscalerSync {
    /// Only FixedInterval.
    #[serde(rename = "type", default)]
    pub type_: FleetAutoscalerSyncType,
    /// Interval settings.
    #[serde(default)]
    pub fixed_interval: FixedIntervalSync,
}

/// Sync type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FleetAutoscalerSyncType {
    /// Every `fixedInterval.seconds`.
    #[default]
    FixedInterval,
}

/// Fixed sync interval.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FixedIntervalSync {
    /// Seconds between runs (30).
    #[serde(default)]
    pub seconds: i32,
}

/// Agones' default sync interval, in seconds.
pub const DEFAULT_SYNC_SECONDS: i32 = 30;

/// FleetAutoscaler status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetAutoscalerStatus {
    /// Replicas the fleet had at the last run.
    #[serde(default)]
    pub current_replicas: i32,
    /// Replicas the policy asked for at the last run.
    #[serde(default)]
    pub desired_replicas: i32,
    /// When the fleet was last scaled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    /// Whether the fleet could be scaled (it exists, the policy answered).
    #[serde(default)]
    pub able_to_scale: bool,
    /// Whether the desired count was clamped by min/max.
    #[serde(default)]
    pub scaling_limited: bool,
    /// Which policy type decided last (for Chain/Schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_policy: Option<FleetAutoscalerPolicyType>,
}

impl FleetAutoscaler {
    /// An autoscaler with this name and spec.
    pub fn new(name: impl Into<String>, spec: FleetAutoscalerSpec) -> Self {
        Self {
            api_version: Self::default_api_version(),
            kind: Self::default_kind(),
            metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
            spec,
            status: None,
        }
    }

    /// Seconds between runs, defaulted.
    pub fn sync_seconds(&self) -> i32 {
        match &self.spec.sync {
            Some(sync) if sync.fixed_interval.seconds > 0 => sync.fixed_interval.seconds,
            _ => DEFAULT_SYNC_SECONDS,
        }
    }

    /// Applies Agones' defaults: sync FixedInterval every 30 s.
    pub fn apply_defaults(&mut self) {
        if self.api_version.is_empty() {
            self.api_version = Self::default_api_version();
        }
        if self.kind.is_empty() {
            self.kind = Self::default_kind();
        }
        let sync = self.spec.sync.get_or_insert_with(FleetAutoscalerSync::default);
        if sync.fixed_interval.seconds == 0 {
            sync.fixed_interval.seconds = DEFAULT_SYNC_SECONDS;
        }
    }
}

//! Pieces shared by several kinds: scheduling, priorities, counters and lists.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How servers are spread over nodes (`Packed` by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SchedulingStrategy {
    /// Bin-pack onto as few nodes as possible.
    #[default]
    Packed,
    /// Spread across nodes.
    Distributed,
}

/// A counter or list that sorting (scale-down, allocation) takes into account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Priority {
    /// `Counter` or `List`.
    #[serde(rename = "type")]
    pub type_: PriorityType,
    /// Name of the counter or list.
    pub key: String,
    /// `Ascending` or `Descending`.
    #[serde(default)]
    pub order: PriorityOrder,
}

/// What a [`Priority`] refers to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PriorityType {
    /// A counter.
    #[default]
    Counter,
    /// A list.
    List,
}

/// Sort order of a [`Priority`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PriorityOrder {
    /// Smallest available capacity first.
    #[default]
    Ascending,
    /// Largest available capacity first.
    Descending,
}

/// A counter: a count bounded by a capacity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CounterStatus {
    /// Current count; 0 when omitted or null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub count: i64,
    /// Upper bound of the count; 1000 when omitted or null (Agones' schema default).
    #[serde(default = "default_capacity", deserialize_with = "null_as_default_capacity")]
    pub capacity: i64,
}

/// A list: a set of string values bounded by a capacity (≤ 1000).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListStatus {
    /// Maximum number of values; 1000 when omitted or null (Agones' schema default).
    #[serde(default = "default_capacity", deserialize_with = "null_as_default_capacity")]
    pub capacity: i64,
    /// The values, unique, in insertion order; none when omitted or null.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Maximum capacity of a list, per Agones.
pub const MAX_LIST_CAPACITY: i64 = 1000;

/// Capacity of a counter or list whose manifest leaves it out (or writes it as `null`): Agones'
/// CRD schema defaults both to 1000, and its API server applies schema defaults to null values.
pub const DEFAULT_CAPACITY: i64 = 1000;

fn default_capacity() -> i64 {
    DEFAULT_CAPACITY
}

/// Reads `null` as the type's default, like an omitted field.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads `null` as [`DEFAULT_CAPACITY`], like an omitted capacity.
fn null_as_default_capacity<'de, D>(deserializer: D) -> Result<i64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<i64>::deserialize(deserializer)?.unwrap_or(DEFAULT_CAPACITY))
}

/// Labels and annotations applied to a GameServer (allocation metadata, allocation overflow).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetaPatch {
    /// Labels to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Player totals over a set of servers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AggregatedPlayerStatus {
    /// Connected players.
    #[serde(default)]
    pub count: i64,
    /// Player capacity.
    #[serde(default)]
    pub capacity: i64,
}

/// Counter or list totals over a set of servers, split out for the Allocated ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AggregatedCounterStatus {
    /// Sum of counts on Allocated servers.
    #[serde(default)]
    pub allocated_count: i64,
    /// Sum of capacities on Allocated servers.
    #[serde(default)]
    pub allocated_capacity: i64,
    /// Sum of counts (list lengths) on all servers.
    #[serde(default)]
    pub count: i64,
    /// Sum of capacities on all servers.
    #[serde(default)]
    pub capacity: i64,
}

/// List aggregate: same shape as the counter aggregate.
pub type AggregatedListStatus = AggregatedCounterStatus;

/// The schema of an embedded Kubernetes object or free-form map that the API server should keep
/// as written (pod templates, object metadata, nested policies): an object with
/// `x-kubernetes-preserve-unknown-fields`. Keeps the CRDs structural and small.
pub fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// A status condition in the standard Kubernetes shape (`metav1.Condition`), so `kubectl
/// describe` and `kubectl wait --for=condition=…` work on Stadion's objects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// What the condition is about, in CamelCase (`Valid`).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// A CamelCase word for why it is in this status.
    #[serde(default)]
    pub reason: String,
    /// What a person should know, in one line.
    #[serde(default)]
    pub message: String,
    /// The object's `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// The status of a [`Condition`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    #[default]
    Unknown,
}

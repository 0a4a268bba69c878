//! `agones.dev/v1` GameServerSet: a replica set of GameServers from one template.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::common::{
    AggregatedCounterStatus, AggregatedListStatus, AggregatedPlayerStatus, Condition, MetaPatch, Priority,
    SchedulingStrategy, preserve_unknown_object,
};
use crate::gameserver::GameServerSpec;
use crate::resource::namespaced_resource;

/// A set of identical GameServers; Fleets own them, and a set may also be used alone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerSet {
    /// Always `agones.dev/v1`.
    #[serde(default = "GameServerSet::default_api_version")]
    pub api_version: String,
    /// Always `GameServerSet`.
    #[serde(default = "GameServerSet::default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: GameServerSetSpec,
    /// Observed state (status subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<GameServerSetStatus>,
}

namespaced_resource!(GameServerSet, group = "agones.dev", version = "v1", plural = "gameserversets");

/// GameServerSet spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerSetSpec {
    /// Number of GameServers wanted.
    #[serde(default)]
    pub replicas: i32,
    /// Labels/annotations put on Allocated servers that exceed `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_overflow: Option<MetaPatch>,
    /// Packed (default) or Distributed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<SchedulingStrategy>,
    /// Counter/list priorities for scale-down ordering (Distributed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<Priority>,
    /// Template of every GameServer in the set.
    #[serde(default)]
    pub template: GameServerTemplateSpec,
}

/// A GameServer template: metadata and spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerTemplateSpec {
    /// Labels and annotations given to each GameServer.
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub metadata: ObjectMeta,
    /// The GameServer spec.
    #[serde(default)]
    pub spec: GameServerSpec,
}

/// GameServerSet status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerSetStatus {
    /// GameServers in the set that are not being deleted.
    #[serde(default)]
    pub replicas: i32,
    /// Ready ones.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Reserved ones.
    #[serde(default)]
    pub reserved_replicas: i32,
    /// Allocated ones.
    #[serde(default)]
    pub allocated_replicas: i32,
    /// Shutdown ones (on their way out).
    #[serde(default)]
    pub shutdown_replicas: i32,
    /// Player totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub players: Option<AggregatedPlayerStatus>,
    /// Counter totals by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, AggregatedCounterStatus>,
    /// List totals by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lists: BTreeMap<String, AggregatedListStatus>,
    /// Conditions (a Stadion addition): `Valid` says whether the spec passed validation, and
    /// why not when it did not, since no admission webhook may have checked it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl GameServerSet {
    /// A set with this name and spec.
    pub fn new(name: impl Into<String>, spec: GameServerSetSpec) -> Self {
        Self {
            api_version: Self::default_api_version(),
            kind: Self::default_kind(),
            metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
            spec,
            status: None,
        }
    }

    /// Applies Agones' defaults: Packed scheduling and the GameServer defaults on the template.
    pub fn apply_defaults(&mut self) {
        if self.api_version.is_empty() {
            self.api_version = Self::default_api_version();
        }
        if self.kind.is_empty() {
            self.kind = Self::default_kind();
        }
        self.spec.scheduling.get_or_insert_with(SchedulingStrategy::default);
        self.spec.template.spec.apply_defaults();
    }
}

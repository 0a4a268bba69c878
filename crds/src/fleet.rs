//! `agones.dev/v1` Fleet: a scalable, rolling-updatable group of GameServers.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    AggregatedCounterStatus, AggregatedListStatus, AggregatedPlayerStatus, Condition, MetaPatch, Priority,
    SchedulingStrategy, preserve_unknown_object,
};
use crate::gameserverset::GameServerTemplateSpec;
use crate::resource::namespaced_resource;

/// A fleet of GameServers, owning one active GameServerSet and any older ones mid-rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fleet {
    /// Always `agones.dev/v1`.
    #[serde(default = "Fleet::default_api_version")]
    pub api_version: String,
    /// Always `Fleet`.
    #[serde(default = "Fleet::default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: FleetSpec,
    /// Observed state (status subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<FleetStatus>,
}

namespaced_resource!(Fleet, group = "agones.dev", version = "v1", plural = "fleets");

/// Fleet spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetSpec {
    /// Number of GameServers wanted.
    #[serde(default)]
    pub replicas: i32,
    /// Labels/annotations put on Allocated servers that exceed `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_overflow: Option<MetaPatch>,
    /// How a template change rolls out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<FleetStrategy>,
    /// Packed (default) or Distributed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<SchedulingStrategy>,
    /// Counter/list priorities for scale-down ordering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<Priority>,
    /// Template of every GameServer.
    #[serde(default)]
    pub template: GameServerTemplateSpec,
}

/// Rollout strategy (the shape of apps/v1 DeploymentStrategy).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetStrategy {
    /// RollingUpdate (default) or Recreate.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<FleetStrategyType>,
    /// Surge and unavailability limits for RollingUpdate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

/// Rollout strategy type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FleetStrategyType {
    /// Replace servers a batch at a time.
    #[default]
    RollingUpdate,
    /// Shut every non-Allocated old server down, then create new ones.
    Recreate,
}

/// Limits of a rolling update.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdate {
    /// Servers above `replicas` allowed during a rollout (int or percent, 25%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Ready servers that may be missing during a rollout (int or percent, 25%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// Agones' default for maxSurge and maxUnavailable.
pub const DEFAULT_ROLLING_PERCENT: &str = "25%";

/// Fleet status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetStatus {
    /// GameServers in all of the fleet's sets.
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
    /// Allocations made from this fleet since it was created (running count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocations: Option<i64>,
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

impl Fleet {
    /// A fleet with this name and spec.
    pub fn new(name: impl Into<String>, spec: FleetSpec) -> Self {
        Self {
            api_version: Self::default_api_version(),
            kind: Self::default_kind(),
            metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
            spec,
            status: None,
        }
    }

    /// The strategy type, RollingUpdate when unset.
    pub fn strategy_type(&self) -> FleetStrategyType {
        self.spec.strategy.as_ref().and_then(|s| s.type_).unwrap_or_default()
    }

    /// maxSurge and maxUnavailable, 25% each when unset.
    pub fn rolling_limits(&self) -> (IntOrString, IntOrString) {
        let default = || IntOrString::String(DEFAULT_ROLLING_PERCENT.to_owned());
        let ru = self.spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
        (
            ru.and_then(|r| r.max_surge.clone()).unwrap_or_else(default),
            ru.and_then(|r| r.max_unavailable.clone()).unwrap_or_else(default),
        )
    }

    /// Applies Agones' defaults: RollingUpdate 25%/25% (rolling limits only for RollingUpdate),
    /// Packed scheduling, and the GameServer defaults on the template.
    pub fn apply_defaults(&mut self) {
        if self.api_version.is_empty() {
            self.api_version = Self::default_api_version();
        }
        if self.kind.is_empty() {
            self.kind = Self::default_kind();
        }
        let strategy = self.spec.strategy.get_or_insert_with(FleetStrategy::default);
        let kind = *strategy.type_.get_or_insert_with(FleetStrategyType::default);
        if kind == FleetStrategyType::RollingUpdate {
            let ru = strategy.rolling_update.get_or_insert_with(RollingUpdate::default);
            ru.max_surge.get_or_insert_with(|| IntOrString::String(DEFAULT_ROLLING_PERCENT.to_owned()));
            ru.max_unavailable.get_or_insert_with(|| IntOrString::String(DEFAULT_ROLLING_PERCENT.to_owned()));
        }
        self.spec.scheduling.get_or_insert_with(SchedulingStrategy::default);
        self.spec.template.spec.apply_defaults();
    }
}

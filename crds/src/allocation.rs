//! `allocation.agones.dev/v1` GameServerAllocation: claim one Ready server for a session.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::NodeAddress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{CounterStatus, ListStatus, MetaPatch, Priority, SchedulingStrategy, preserve_unknown_object};
use crate::gameserver::{GameServerState, GameServerStatusPort};
use crate::resource::namespaced_resource;

/// A request to allocate a GameServer, and (in its status) the answer. Create-only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerAllocation {
    /// Always `allocation.agones.dev/v1`.
    #[serde(default = "GameServerAllocation::default_api_version")]
    pub api_version: String,
    /// Always `GameServerAllocation`.
    #[serde(default = "GameServerAllocation::default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub metadata: ObjectMeta,
    /// What to allocate.
    #[serde(default)]
    pub spec: GameServerAllocationSpec,
    /// The outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<GameServerAllocationStatus>,
}

namespaced_resource!(
    GameServerAllocation,
    group = "allocation.agones.dev",
    version = "v1",
    plural = "gameserverallocations"
);

/// GameServerAllocation spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerAllocationSpec {
    /// Multi-cluster allocation (accepted, not acted on: Stadion allocates in its own cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_cluster_setting: Option<MultiClusterSetting>,
    /// Deprecated: the selector every candidate must match (use `selectors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<GameServerSelector>,
    /// Deprecated: preferred selectors, in order (use `selectors`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred: Vec<GameServerSelector>,
    /// Counter/list priorities among equal candidates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<Priority>,
    /// Selectors tried in order; the first that matches a server wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<GameServerSelector>,
    /// Packed (default) or Distributed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<SchedulingStrategy>,
    /// Labels and annotations applied to the chosen server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetaPatch>,
    /// Counter changes applied to the chosen server.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, CounterAction>,
    /// List changes applied to the chosen server.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lists: BTreeMap<String, ListAction>,
}

/// Multi-cluster setting.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultiClusterSetting {
    /// Whether multi-cluster allocation is wanted.
    #[serde(default)]
    pub enabled: bool,
    /// Which allocation policies apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_selector: Option<LabelSelector>,
}

/// Which servers a selector matches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerSelector {
    /// Label selector (`matchLabels`, `matchExpressions`).
    #[serde(flatten)]
    pub label_selector: LabelSelector,
    /// Ready (default) or Allocated (to add players to a running session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub game_server_state: Option<GameServerState>,
    /// Player capacity filter (alpha).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub players: Option<PlayerSelector>,
    /// Counter filters by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, CounterSelector>,
    /// List filters by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lists: BTreeMap<String, ListSelector>,
}

/// Player capacity filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlayerSelector {
    /// Minimum free player slots.
    #[serde(default)]
    pub min_available: i64,
    /// Maximum free player slots (0: no limit).
    #[serde(default)]
    pub max_available: i64,
}

/// Counter filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CounterSelector {
    /// Minimum count.
    #[serde(default)]
    pub min_count: i64,
    /// Maximum count (0: no limit).
    #[serde(default)]
    pub max_count: i64,
    /// Minimum capacity − count.
    #[serde(default)]
    pub min_available: i64,
    /// Maximum capacity − count (0: no limit).
    #[serde(default)]
    pub max_available: i64,
}

/// List filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListSelector {
    /// The list must contain this value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub contains_value: String,
    /// Minimum capacity − length.
    #[serde(default)]
    pub min_available: i64,
    /// Maximum capacity − length (0: no limit).
    #[serde(default)]
    pub max_available: i64,
}

/// A counter change made on allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CounterAction {
    /// `Increment` or `Decrement`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<CounterActionKind>,
    /// By how much (positive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// New capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,
}

/// Direction of a counter action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CounterActionKind {
    /// Add `amount`.
    Increment,
    /// Subtract `amount`.
    Decrement,
}

/// A list change made on allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListAction {
    /// Values to add (duplicates ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_values: Vec<String>,
    /// Values to remove (missing ones ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete_values: Vec<String>,
    /// New capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,
}

/// Outcome of an allocation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerAllocationStatus {
    /// Allocated, UnAllocated or Contention.
    #[serde(default)]
    pub state: GameServerAllocationState,
    /// The chosen server.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub game_server_name: String,
    /// Its ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<GameServerStatusPort>,
    /// Its primary address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// All its addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    /// Its node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// Which cluster answered (`local` for this one).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Its labels and annotations after the allocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetaPatch>,
    /// Its counters after the allocation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, CounterStatus>,
    /// Its lists after the allocation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lists: BTreeMap<String, ListStatus>,
}

/// Allocation outcome state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GameServerAllocationState {
    /// A server was allocated.
    Allocated,
    /// No server matched.
    #[default]
    UnAllocated,
    /// Servers matched but others claimed them first.
    Contention,
}

impl GameServerAllocation {
    /// An allocation request with this spec.
    pub fn new(spec: GameServerAllocationSpec) -> Self {
        Self {
            api_version: Self::default_api_version(),
            kind: Self::default_kind(),
            metadata: ObjectMeta::default(),
            spec,
            status: None,
        }
    }

    /// The selectors to try, in order: `selectors`, or the deprecated `preferred` then `required`
    /// (each preferred one narrowed by `required`'s labels), or one match-all selector.
    pub fn effective_selectors(&self) -> Vec<GameServerSelector> {
        if !self.spec.selectors.is_empty() {
            return self.spec.selectors.clone();
        }
        let required = self.spec.required.clone().unwrap_or_default();
        let mut out: Vec<GameServerSelector> = self
            .spec
            .preferred
            .iter()
            .map(|preferred| {
                let mut merged = preferred.clone();
                let labels = merged.label_selector.match_labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in required.label_selector.match_labels.iter().flatten() {
                    labels.insert(k.clone(), v.clone());
                }
                let exprs = merged.label_selector.match_expressions.get_or_insert_with(Vec::new);
                exprs.extend(required.label_selector.match_expressions.iter().flatten().cloned());
                merged
            })
            .collect();
        out.push(required);
        out
    }

    /// Applies Agones' defaults: Packed scheduling, and `gameServerState: Ready` on selectors.
    pub fn apply_defaults(&mut self) {
        if self.api_version.is_empty() {
            self.api_version = Self::default_api_version();
        }
        if self.kind.is_empty() {
            self.kind = Self::default_kind();
        }
        self.spec.scheduling.get_or_insert_with(SchedulingStrategy::default);
        let selectors =
            self.spec.selectors.iter_mut().chain(self.spec.preferred.iter_mut()).chain(self.spec.required.as_mut());
        for selector in selectors {
            selector.game_server_state.get_or_insert(GameServerState::Ready);
        }
    }
}

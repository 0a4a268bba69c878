//! Prometheus metrics with Agones' names and labels, the same in both runtimes.
//!
//! Gauges that describe the fleet (`agones_gameservers_count`, `agones_fleets_replicas_count`,
//! …) are recomputed from whatever the runtime reads its objects from (the kube watch caches, the
//! local store) by [`Metrics::observe_gameservers`] and friends, so they cannot drift through
//! missed increments. State changes (`agones_gameservers_total`,
//! `agones_gameserver_state_duration`) are seen one object at a time by
//! [`Metrics::observe_state`], allocations by [`Metrics::observe_allocation`].
//!
//! Label names, label values (`none` where Agones writes `none`) and histogram buckets follow
//! Agones' `pkg/metrics` and `pkg/gameserverallocations`; label fields are declared in
//! alphabetical order, the order Agones' Prometheus exporter prints them in.

mod observe;
mod state_clock;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use observe::allocation_labels;
pub use state_clock::{StateChange, StateClock};

/// What Agones writes for a label that has no value (a lone GameServer's fleet, …).
pub const NONE: &str = "none";

/// Labels of `agones_gameservers_count`, `agones_gameservers_total` and
/// `agones_gameserver_state_duration`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GameServerLabels {
    /// The owning fleet, `none` for a lone server.
    pub fleet_name: String,
    /// The namespace.
    pub namespace: String,
    /// The state (Agones calls the label `type`).
    pub r#type: String,
}

/// Labels of `agones_fleets_replicas_count` and `agones_fleet_rollout_percent`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FleetLabels {
    /// Fleet name.
    pub name: String,
    /// The namespace.
    pub namespace: String,
    /// total, allocated, ready, desired or reserved (current_replicas or desired_replicas for
    /// the rollout).
    pub r#type: String,
}

/// Labels of `agones_fleet_counters`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FleetCounterLabels {
    /// The counter's name.
    pub counter: String,
    /// Fleet name.
    pub name: String,
    /// The namespace.
    pub namespace: String,
    /// allocated_count, allocated_capacity, total_count or total_capacity.
    pub r#type: String,
}

/// Labels of `agones_fleet_lists`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FleetListLabels {
    /// The list's name.
    pub list: String,
    /// Fleet name.
    pub name: String,
    /// The namespace.
    pub namespace: String,
    /// allocated_count, allocated_capacity, total_count or total_capacity.
    pub r#type: String,
}

/// Labels of the autoscaler status gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AutoscalerLabels {
    /// The fleet it scales.
    pub fleet_name: String,
    /// Autoscaler name.
    pub name: String,
    /// The namespace.
    pub namespace: String,
}

/// Labels of `agones_fleet_autoscalers_buffer_limits` and `…_buffer_size`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AutoscalerBufferLabels {
    /// The fleet it scales.
    pub fleet_name: String,
    /// Autoscaler name.
    pub name: String,
    /// The namespace.
    pub namespace: String,
    /// min or max (limits); count or percentage (size).
    pub r#type: String,
}

/// Labels of the per-GameServer player gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlayerLabels {
    /// The owning fleet, `none` for a lone server.
    pub fleet_name: String,
    /// GameServer name.
    pub name: String,
    /// The namespace.
    pub namespace: String,
}

/// Labels of `agones_nodes_count`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    /// `true` for nodes running no GameServer, `false` for the others.
    pub empty: String,
}

/// Labels of `agones_gameserver_allocations_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AllocationLabels {
    /// The cluster that answered: `none` (there is no multi-cluster allocation here).
    pub cluster_name: String,
    /// Fleet of the allocated server, `none` when none was allocated or it has no fleet.
    pub fleet_name: String,
    /// `true` when the request asked for multi-cluster allocation.
    pub is_multicluster: String,
    /// Packed or Distributed, as requested.
    pub scheduling_strategy: String,
    /// Allocated, UnAllocated, Contention, or `error`.
    pub status: String,
}

/// Labels of the reconcile metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// Which controller: gameserver, gameserverset, fleet, fleetautoscaler.
    pub controller: String,
}

/// Labels of the reconcile error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileErrorLabels {
    /// Which controller.
    pub controller: String,
    /// The error's `kind()`.
    pub error: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn allocation_histogram() -> Histogram {
    // Agones' buckets, so dashboards' `le` values mean the same thing.
    Histogram::new([0.0, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 3.0])
}

fn retry_histogram() -> Histogram {
    // Agones' buckets: one per attempt up to five.
    Histogram::new([1.0, 2.0, 3.0, 4.0, 5.0])
}

fn state_duration_histogram() -> Histogram {
    Histogram::new(std::iter::once(0.0).chain(exponential_buckets(1.0, 2.0, 15)))
}

fn node_count_histogram() -> Histogram {
    // Agones' buckets: one just above each whole count, so `le="2.00001"` counts nodes with
    // two servers or fewer.
    let small = (0..=16).map(f64::from);
    let large = [32.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 110.0, 120.0];
    Histogram::new(small.chain(large).map(|n| n + 0.00001))
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// Every metric a runtime exports. [`Metrics::new`] registers the Agones families;
/// [`Metrics::controller`] adds the kube controller's own (`stadion_reconcile_*`, `stadion_leader`).
pub struct Metrics {
    registry: Registry,
    /// `agones_gameservers_count`: servers by state, fleet and namespace.
    pub gameservers_count: Family<GameServerLabels, Gauge>,
    /// `agones_gameservers_total`: state changes seen.
    pub gameservers_total: Family<GameServerLabels, Counter>,
    /// `agones_gameserver_state_duration`: seconds a server spent in the state it left.
    pub state_duration: HistogramFamily<GameServerLabels>,
    /// `agones_gameserver_player_connected_total`: players connected, per server.
    pub players_connected: Family<PlayerLabels, Gauge>,
    /// `agones_gameserver_player_capacity_total`: room for more players, per server.
    pub players_capacity: Family<PlayerLabels, Gauge>,
    /// `agones_fleets_replicas_count`: fleet replicas by type.
    pub fleets_replicas_count: Family<FleetLabels, Gauge>,
    /// `agones_fleet_rollout_percent`: the active set's replicas against the fleet's.
    pub fleet_rollout: Family<FleetLabels, Gauge>,
    /// `agones_fleet_counters`: a fleet's aggregated Counters.
    pub fleet_counters: Family<FleetCounterLabels, Gauge>,
    /// `agones_fleet_lists`: a fleet's aggregated Lists.
    pub fleet_lists: Family<FleetListLabels, Gauge>,
    /// `agones_fleet_autoscalers_desired_replicas_count`.
    pub autoscaler_desired: Family<AutoscalerLabels, Gauge>,
    /// `agones_fleet_autoscalers_current_replicas_count`.
    pub autoscaler_current: Family<AutoscalerLabels, Gauge>,
    /// `agones_fleet_autoscalers_able_to_scale` (0/1).
    pub autoscaler_able_to_scale: Family<AutoscalerLabels, Gauge>,
    /// `agones_fleet_autoscalers_limited` (0/1).
    pub autoscaler_limited: Family<AutoscalerLabels, Gauge>,
    /// `agones_fleet_autoscalers_buffer_limits`: a Buffer policy's min and max replicas.
    pub autoscaler_buffer_limits: Family<AutoscalerBufferLabels, Gauge>,
    /// `agones_fleet_autoscalers_buffer_size`: a Buffer policy's size, as a count or a percentage.
    pub autoscaler_buffer_size: Family<AutoscalerBufferLabels, Gauge>,
    /// `agones_nodes_count`: nodes with and without GameServers.
    pub nodes_count: Family<NodeLabels, Gauge>,
    /// `agones_gameservers_node_count`: one sample per node and collection, of its server count.
    pub gameservers_node_count: Histogram,
    /// `agones_gameserver_allocations_duration_seconds`.
    pub allocations_duration: HistogramFamily<AllocationLabels>,
    /// `agones_gameserver_allocations_retry_total`: writes tried per allocation.
    pub allocations_retry: HistogramFamily<AllocationLabels>,
    /// `stadion_reconcile_total` (controller only).
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// `stadion_reconcile_errors_total` (controller only).
    pub reconcile_errors: Family<ReconcileErrorLabels, Counter>,
    /// `stadion_reconcile_duration_seconds` (controller only).
    pub reconcile_duration: HistogramFamily<ReconcileLabels>,
    /// `stadion_leader`: 1 on the replica holding the Lease (controller only).
    pub leader: Gauge,
    /// Series of `agones_gameservers_count` written so far, so a state that empties reads 0 while
    /// its fleet exists (as in Agones) instead of vanishing.
    counted: Mutex<HashSet<GameServerLabels>>,
    /// When each server entered its current state.
    clock: Mutex<StateClock>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every Agones family registered: what `stadion up` serves.
    pub fn new() -> Self {
        let mut m = Self::unregistered();
        let mut registry = Registry::default();
        m.register_agones(&mut registry);
        m.registry = registry;
        m
    }

    /// The Agones families and the kube controller's own: what `stadion controller` serves.
    pub fn controller() -> Self {
        let mut m = Self::new();
        let mut registry = std::mem::take(&mut m.registry);
        // prometheus-client appends `_total` to counters.
        registry.register("stadion_reconcile", "Reconciles run", m.reconciles.clone());
        registry.register("stadion_reconcile_errors", "Reconciles that failed", m.reconcile_errors.clone());
        registry.register("stadion_reconcile_duration_seconds", "Reconcile time", m.reconcile_duration.clone());
        registry.register("stadion_leader", "1 on the replica holding the controller Lease", m.leader.clone());
        m.registry = registry;
        m
    }

    fn unregistered() -> Self {
        Self {
            registry: Registry::default(),
            gameservers_count: Family::default(),
            gameservers_total: Family::default(),
            state_duration: Family::new_with_constructor(state_duration_histogram),
            players_connected: Family::default(),
            players_capacity: Family::default(),
            fleets_replicas_count: Family::default(),
            fleet_rollout: Family::default(),
            fleet_counters: Family::default(),
            fleet_lists: Family::default(),
            autoscaler_desired: Family::default(),
            autoscaler_current: Family::default(),
            autoscaler_able_to_scale: Family::default(),
            autoscaler_limited: Family::default(),
            autoscaler_buffer_limits: Family::default(),
            autoscaler_buffer_size: Family::default(),
            nodes_count: Family::default(),
            gameservers_node_count: node_count_histogram(),
            allocations_duration: Family::new_with_constructor(allocation_histogram),
            allocations_retry: Family::new_with_constructor(retry_histogram),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram),
            leader: Gauge::default(),
            counted: Mutex::default(),
            clock: Mutex::default(),
        }
    }

    fn register_agones(&self, r: &mut Registry) {
        r.register("agones_gameservers_count", "The number of gameservers", self.gameservers_count.clone());
        r.register("agones_gameservers", "The total of gameservers", self.gameservers_total.clone());
        r.register(
            "agones_gameserver_state_duration",
            "The time gameserver exists in the current state in seconds",
            self.state_duration.clone(),
        );
        r.register(
            "agones_gameserver_player_connected_total",
            "The current amount of players connected in gameservers",
            self.players_connected.clone(),
        );
        r.register(
            "agones_gameserver_player_capacity_total",
            "The available player capacity per gameserver",
            self.players_capacity.clone(),
        );
        r.register(
            "agones_fleets_replicas_count",
            "The number of replicas per fleet",
            self.fleets_replicas_count.clone(),
        );
        r.register(
            "agones_fleet_rollout_percent",
            "Measures the current progress of fleet rollout",
            self.fleet_rollout.clone(),
        );
        r.register(
            "agones_fleet_counters",
            "Aggregated Counters counts and capacity across GameServers in the Fleet",
            self.fleet_counters.clone(),
        );
        r.register(
            "agones_fleet_lists",
            "Aggregated Lists counts and capacity across GameServers in the Fleet",
            self.fleet_lists.clone(),
        );
        r.register(
            "agones_fleet_autoscalers_desired_replicas_count",
            "The desired replicas count as seen by autoscalers",
            self.autoscaler_desired.clone(),
        );
        r.register(
            "agones_fleet_autoscalers_current_replicas_count",
            "The current replicas count as seen by autoscalers",
            self.autoscaler_current.clone(),
        );
        r.register(
            "agones_fleet_autoscalers_able_to_scale",
            "The fleet autoscaler can access the fleet to scale",
            self.autoscaler_able_to_scale.clone(),
        );
        r.register(
            "agones_fleet_autoscalers_limited",
            "The fleet autoscaler is capped",
            self.autoscaler_limited.clone(),
        );
        r.register(
            "agones_fleet_autoscalers_buffer_limits",
            "The limits of buffer based fleet autoscalers",
            self.autoscaler_buffer_limits.clone(),
        );
        r.register(
            "agones_fleet_autoscalers_buffer_size",
            "The buffer size of fleet autoscalers",
            self.autoscaler_buffer_size.clone(),
        );
        r.register("agones_nodes_count", "The count of nodes in the cluster", self.nodes_count.clone());
        r.register(
            "agones_gameservers_node_count",
            "The count of gameservers per node in the cluster",
            self.gameservers_node_count.clone(),
        );
        r.register(
            "agones_gameserver_allocations_duration_seconds",
            "The distribution of gameserver allocation requests latencies.",
            self.allocations_duration.clone(),
        );
        r.register(
            "agones_gameserver_allocations_retry_total",
            "The count of gameserver allocation retry until it succeeds",
            self.allocations_retry.clone(),
        );
    }

    /// The Prometheus text exposition (OpenMetrics) of every registered metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric family name [`Metrics::new`] exports, as a scraper sees them (counters with
/// `_total`, histograms as their base name): what dashboards may query.
pub const AGONES_FAMILIES: &[&str] = &[
    "agones_gameservers_count",
    "agones_gameservers_total",
    "agones_gameserver_state_duration",
    "agones_gameserver_player_connected_total",
    "agones_gameserver_player_capacity_total",
    "agones_fleets_replicas_count",
    "agones_fleet_rollout_percent",
    "agones_fleet_counters",
    "agones_fleet_lists",
    "agones_fleet_autoscalers_desired_replicas_count",
    "agones_fleet_autoscalers_current_replicas_count",
    "agones_fleet_autoscalers_able_to_scale",
    "agones_fleet_autoscalers_limited",
    "agones_fleet_autoscalers_buffer_limits",
    "agones_fleet_autoscalers_buffer_size",
    "agones_nodes_count",
    "agones_gameservers_node_count",
    "agones_gameserver_allocations_duration_seconds",
    "agones_gameserver_allocations_retry_total",
];

//! Feeding [`Metrics`]: recomputing the gauges from every object, and recording events.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stadion_core::allocator::{AllocateError, AllocationOutcome};
use stadion_crds::allocation::GameServerAllocation;
use stadion_crds::common::{AggregatedCounterStatus, SchedulingStrategy};
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet, labels};

use super::{
    AllocationLabels, AutoscalerBufferLabels, AutoscalerLabels, FleetCounterLabels, FleetLabels, FleetListLabels,
    GameServerLabels, Metrics, NONE, NodeLabels, PlayerLabels, ReconcileErrorLabels, ReconcileLabels, StateChange,
};

/// The fleet label of `gs`, `none` for a lone server.
pub(super) fn fleet_of(gs: &GameServer) -> String {
    gs.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::FLEET))
        .filter(|f| !f.is_empty())
        .cloned()
        .unwrap_or_else(|| NONE.to_owned())
}

fn gameserver_labels(gs: &GameServer, state: &str) -> GameServerLabels {
    GameServerLabels { fleet_name: fleet_of(gs), namespace: gs.namespace().to_owned(), r#type: state.to_owned() }
}

/// The four aggregate types Agones reports for a Counter or List.
fn aggregate_types(status: &AggregatedCounterStatus) -> [(&'static str, i64); 4] {
    [
        ("allocated_count", status.allocated_count),
        ("allocated_capacity", status.allocated_capacity),
        ("total_count", status.count),
        ("total_capacity", status.capacity),
    ]
}

impl Metrics {
    /// Recomputes `agones_gameservers_count` and the player gauges from every GameServer.
    /// A state that emptied reads 0 while its fleet still has servers; the series of a fleet
    /// with none left go.
    pub fn observe_gameservers<'a>(&self, servers: impl IntoIterator<Item = &'a GameServer>) {
        let mut counts: HashMap<GameServerLabels, i64> = HashMap::new();
        let mut present = HashSet::new();
        self.players_connected.clear();
        self.players_capacity.clear();
        for gs in servers {
            present.insert((gs.namespace().to_owned(), gs.name().to_owned()));
            if let Some(state) = gs.state() {
                *counts.entry(gameserver_labels(gs, state.as_str())).or_default() += 1;
            }
            if let Some(players) = gs.status.as_ref().and_then(|s| s.players.as_ref()) {
                let labels = PlayerLabels {
                    fleet_name: fleet_of(gs),
                    name: gs.name().to_owned(),
                    namespace: gs.namespace().to_owned(),
                };
                self.players_connected.get_or_create(&labels).set(players.count);
                self.players_capacity.get_or_create(&labels).set(players.capacity - players.count);
            }
        }
        let fleets: HashSet<(&str, &str)> =
            counts.keys().map(|l| (l.namespace.as_str(), l.fleet_name.as_str())).collect();
        let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        counted.retain(|l| fleets.contains(&(l.namespace.as_str(), l.fleet_name.as_str())));
        self.gameservers_count.clear();
        for labels in counted.iter() {
            self.gameservers_count.get_or_create(labels).set(0);
        }
        for (labels, count) in counts {
            self.gameservers_count.get_or_create(&labels).set(count);
            counted.insert(labels);
        }
        drop(counted);
        self.clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|namespace, name| present.contains(&(namespace.to_owned(), name.to_owned())));
    }

    /// Notes `gs` as seen now: a change of state counts in `agones_gameservers_total` (the state
    /// entered) and `agones_gameserver_state_duration` (the time in the state left).
    pub fn observe_state(&self, gs: &GameServer) -> Option<StateChange> {
        self.observe_state_at(gs, SystemTime::now())
    }

    /// [`observe_state`](Self::observe_state) at `now`.
    pub fn observe_state_at(&self, gs: &GameServer, now: SystemTime) -> Option<StateChange> {
        let change = self.clock.lock().unwrap_or_else(|p| p.into_inner()).observe(gs, now)?;
        self.gameservers_total.get_or_create(&gameserver_labels(gs, change.to.as_str())).inc();
        self.state_duration.get_or_create(&gameserver_labels(gs, change.from.as_str())).observe(change.seconds);
        Some(change)
    }

    /// Forgets a deleted server's state clock.
    pub fn forget_gameserver(&self, namespace: &str, name: &str) {
        self.clock.lock().unwrap_or_else(|p| p.into_inner()).forget(namespace, name);
    }

    /// Recomputes the fleet gauges (replicas, rollout, Counters, Lists) from every Fleet and
    /// GameServerSet. Fleets being deleted are left out, as in Agones.
    pub fn observe_fleets<'a>(
        &self,
        fleets: impl IntoIterator<Item = &'a Fleet>,
        sets: impl IntoIterator<Item = &'a GameServerSet>,
    ) {
        self.fleets_replicas_count.clear();
        self.fleet_rollout.clear();
        self.fleet_counters.clear();
        self.fleet_lists.clear();
        let sets: Vec<&GameServerSet> = sets.into_iter().collect();
        for fleet in fleets.into_iter().filter(|f| f.metadata.deletion_timestamp.is_none()) {
            let (name, namespace) = (fleet.name().to_owned(), fleet.namespace().to_owned());
            let fleet_labels =
                |kind: &str| FleetLabels { name: name.clone(), namespace: namespace.clone(), r#type: kind.to_owned() };
            let status = fleet.status.clone().unwrap_or_default();
            for (kind, value) in [
                ("total", status.replicas),
                ("allocated", status.allocated_replicas),
                ("ready", status.ready_replicas),
                ("desired", fleet.spec.replicas),
                ("reserved", status.reserved_replicas),
            ] {
                self.fleets_replicas_count.get_or_create(&fleet_labels(kind)).set(i64::from(value));
            }
            // The active set is the one running the fleet's current template.
            let active = sets.iter().find(|set| {
                set.namespace() == fleet.namespace()
                    && set.metadata.labels.as_ref().and_then(|l| l.get(labels::FLEET)) == Some(&name)
                    && set.spec.template == fleet.spec.template
            });
            let current = active.and_then(|s| s.status.as_ref()).map_or(0, |s| s.replicas);
            self.fleet_rollout.get_or_create(&fleet_labels("current_replicas")).set(i64::from(current));
            self.fleet_rollout.get_or_create(&fleet_labels("desired_replicas")).set(i64::from(fleet.spec.replicas));
            for (counter, aggregate) in &status.counters {
                for (kind, value) in aggregate_types(aggregate) {
                    let labels = FleetCounterLabels {
                        counter: counter.clone(),
                        name: name.clone(),
                        namespace: namespace.clone(),
                        r#type: kind.to_owned(),
                    };
                    self.fleet_counters.get_or_create(&labels).set(value);
                }
            }
            for (list, aggregate) in &status.lists {
                for (kind, value) in aggregate_types(aggregate) {
                    let labels = FleetListLabels {
                        list: list.clone(),
                        name: name.clone(),
                        namespace: namespace.clone(),
                        r#type: kind.to_owned(),
                    };
                    self.fleet_lists.get_or_create(&labels).set(value);
                }
            }
        }
    }

    /// Recomputes the autoscaler gauges (status, and a Buffer policy's limits and size) from
    /// every FleetAutoscaler.
    pub fn observe_autoscalers<'a>(&self, autoscalers: impl IntoIterator<Item = &'a FleetAutoscaler>) {
        for family in [
            &self.autoscaler_desired,
            &self.autoscaler_current,
            &self.autoscaler_able_to_scale,
            &self.autoscaler_limited,
        ] {
            family.clear();
        }
        self.autoscaler_buffer_limits.clear();
        self.autoscaler_buffer_size.clear();
        for fas in autoscalers.into_iter().filter(|f| f.metadata.deletion_timestamp.is_none()) {
            let labels = AutoscalerLabels {
                fleet_name: fas.spec.fleet_name.clone(),
                name: fas.name().to_owned(),
                namespace: fas.namespace().to_owned(),
            };
            let status = fas.status.clone().unwrap_or_default();
            self.autoscaler_desired.get_or_create(&labels).set(i64::from(status.desired_replicas));
            self.autoscaler_current.get_or_create(&labels).set(i64::from(status.current_replicas));
            self.autoscaler_able_to_scale.get_or_create(&labels).set(i64::from(status.able_to_scale));
            self.autoscaler_limited.get_or_create(&labels).set(i64::from(status.scaling_limited));
            let Some(buffer) = &fas.spec.policy.buffer else { continue };
            let typed = |kind: &str| AutoscalerBufferLabels {
                fleet_name: labels.fleet_name.clone(),
                name: labels.name.clone(),
                namespace: labels.namespace.clone(),
                r#type: kind.to_owned(),
            };
            self.autoscaler_buffer_limits.get_or_create(&typed("max")).set(i64::from(buffer.max_replicas));
            self.autoscaler_buffer_limits.get_or_create(&typed("min")).set(i64::from(buffer.min_replicas));
            match &buffer.buffer_size {
                IntOrString::Int(count) => {
                    self.autoscaler_buffer_size.get_or_create(&typed("count")).set(i64::from(*count));
                }
                IntOrString::String(percent) => {
                    if let Ok(value) = percent.trim_end_matches('%').parse::<i64>() {
                        self.autoscaler_buffer_size.get_or_create(&typed("percentage")).set(value);
                    }
                }
            }
        }
    }

    /// Recomputes `agones_nodes_count` from the nodes game servers may run on and, with
    /// `sample`, adds one sample per node to `agones_gameservers_node_count` (sample
    /// periodically, as Agones' collector does, not per scrape).
    pub fn observe_nodes<'a>(
        &self,
        nodes: impl IntoIterator<Item = &'a str>,
        servers: impl IntoIterator<Item = &'a GameServer>,
        sample: bool,
    ) {
        let mut per_node: HashMap<&str, u32> = HashMap::new();
        for gs in servers {
            if let Some(node) = gs.status.as_ref().map(|s| s.node_name.as_str()).filter(|n| !n.is_empty()) {
                *per_node.entry(node).or_default() += 1;
            }
        }
        let nodes: Vec<&str> = nodes.into_iter().collect();
        let busy = nodes.iter().filter(|n| per_node.contains_key(*n)).count();
        let gauge = |empty: &str| self.nodes_count.get_or_create(&NodeLabels { empty: empty.to_owned() });
        gauge("true").set(i64::try_from(nodes.len() - busy).unwrap_or(i64::MAX));
        gauge("false").set(i64::try_from(busy).unwrap_or(i64::MAX));
        for node in nodes.into_iter().filter(|_| sample) {
            self.gameservers_node_count.observe(f64::from(per_node.get(node).copied().unwrap_or(0)));
        }
    }

    /// Records one allocation that took `elapsed`.
    pub fn observe_allocation(&self, labels: &AllocationLabels, elapsed: Duration) {
        self.allocations_duration.get_or_create(labels).observe(elapsed.as_secs_f64());
    }

    /// Records how many compare-and-swap writes one allocation took
    /// (`agones_gameserver_allocations_retry_total`, a histogram as in Agones).
    pub fn observe_allocation_attempts(&self, labels: &AllocationLabels, attempts: usize) {
        self.allocations_retry.get_or_create(labels).observe(attempts as f64);
    }

    /// Records one reconcile of `controller` that took `elapsed` and failed with `error` (its
    /// `kind()`), if it did.
    pub fn observe_reconcile(&self, controller: &str, elapsed: Duration, error: Option<&str>) {
        let labels = ReconcileLabels { controller: controller.to_owned() };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
        if let Some(error) = error {
            let labels = ReconcileErrorLabels { controller: controller.to_owned(), error: error.to_owned() };
            self.reconcile_errors.get_or_create(&labels).inc();
        }
    }
}

/// The allocation executor of either runtime records into the controller's metrics.
impl crate::allocation::AllocationMetrics for Metrics {
    fn observe_allocation(
        &self,
        request: &GameServerAllocation,
        result: &Result<AllocationOutcome, AllocateError>,
        elapsed: Duration,
        attempts: usize,
    ) {
        let labels = allocation_labels(request, result);
        Metrics::observe_allocation(self, &labels, elapsed);
        self.observe_allocation_attempts(&labels, attempts);
    }
}

/// Agones' labels of one allocation: the request's scheduling and multi-cluster setting, the
/// answer's state (`error` when it failed) and the allocated server's fleet.
pub fn allocation_labels(
    request: &GameServerAllocation,
    result: &Result<AllocationOutcome, AllocateError>,
) -> AllocationLabels {
    let (status, fleet) = match result {
        Ok(AllocationOutcome::Allocated(status)) => {
            let fleet = status.metadata.as_ref().and_then(|m| m.labels.get(labels::FLEET)).filter(|f| !f.is_empty());
            ("Allocated", fleet.cloned())
        }
        Ok(AllocationOutcome::UnAllocated) => ("UnAllocated", None),
        Ok(AllocationOutcome::Contention) => ("Contention", None),
        Err(_) => ("error", None),
    };
    let multicluster = request.spec.multi_cluster_setting.as_ref().is_some_and(|m| m.enabled);
    AllocationLabels {
        cluster_name: NONE.to_owned(),
        fleet_name: fleet.unwrap_or_else(|| NONE.to_owned()),
        is_multicluster: multicluster.to_string(),
        scheduling_strategy: match request.spec.scheduling {
            Some(SchedulingStrategy::Packed) => "Packed",
            Some(SchedulingStrategy::Distributed) => "Distributed",
            None => NONE,
        }
        .to_owned(),
        status: status.to_owned(),
    }
}

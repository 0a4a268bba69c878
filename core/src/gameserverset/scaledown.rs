//! Which servers a set shuts down first.
//!
//! Both strategies start with servers that cost nothing to lose: unscheduled ones, then ones not
//! Ready yet. Packed then empties the nodes with the fewest servers, one node at a time, so whole
//! nodes free up for the cluster autoscaler; within a node, priorities, then newest first.
//! Distributed goes by priorities, then oldest first.

use std::collections::BTreeMap;

use stadion_crds::common::SchedulingStrategy;
use stadion_crds::{GameServer, GameServerSet};

use crate::nodes::NodeLoad;
use crate::priority;

/// `candidates` in the order the set should shut them down (callers pass only servers it may
/// shut down). `nodes` gives cluster-wide per-node counts; where it knows nothing about a node,
/// the count among `candidates`' set is used instead.
pub fn shutdown_order<'a>(set: &GameServerSet, candidates: &[&'a GameServer], nodes: &NodeLoad) -> Vec<&'a GameServer> {
    let mut local_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for gs in candidates {
        *local_counts.entry(node_of(gs)).or_default() += 1;
    }
    let node_count = |gs: &GameServer| {
        let node = node_of(gs);
        nodes.servers.get(node).copied().unwrap_or_else(|| local_counts.get(node).copied().unwrap_or_default())
    };
    let strategy = set.spec.scheduling.unwrap_or_default();
    let priorities = &set.spec.priorities;
    let mut ordered = candidates.to_vec();
    ordered.sort_by(|a, b| {
        let cheap_first = cost_class(a).cmp(&cost_class(b));
        let rest = match strategy {
            SchedulingStrategy::Packed => node_count(a)
                .cmp(&node_count(b))
                .then_with(|| node_of(a).cmp(node_of(b)))
                .then_with(|| priority::compare(a, b, priorities))
                .then_with(|| created(b).cmp(&created(a))),
            SchedulingStrategy::Distributed => {
                priority::compare(a, b, priorities).then_with(|| created(a).cmp(&created(b)))
            }
        };
        cheap_first.then(rest).then_with(|| a.name().cmp(b.name()))
    });
    ordered
}

/// 0: not on a node yet; 1: on a node but not Ready yet; 2: Ready (or later).
fn cost_class(gs: &GameServer) -> u8 {
    if node_of(gs).is_empty() {
        0
    } else if gs.state().is_none_or(|s| s.is_before_ready()) {
        1
    } else {
        2
    }
}

fn node_of(gs: &GameServer) -> &str {
    gs.status.as_ref().map(|s| s.node_name.as_str()).unwrap_or_default()
}

fn created(gs: &GameServer) -> Option<jiff::Timestamp> {
    gs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

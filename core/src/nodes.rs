//! Node facts that Packed and Distributed decisions weigh: how many servers each node runs and
//! how many of those are Allocated.

use std::collections::BTreeMap;

use stadion_crds::{GameServer, GameServerState};

/// Per-node server counts, computed from every GameServer a runtime sees: all sets, all fleets
/// and all namespaces, because a node is cluster-wide and bin-packing is about the node, not
/// one set (Agones counts the same way). Executors build it from an all-namespace list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeLoad {
    /// Active (non-terminal) GameServers per node.
    pub servers: BTreeMap<String, usize>,
    /// Allocated GameServers per node.
    pub allocated: BTreeMap<String, usize>,
}

impl NodeLoad {
    /// Counts the servers that are scheduled on a node and not on their way out.
    pub fn from_gameservers<'a>(gameservers: impl IntoIterator<Item = &'a GameServer>) -> Self {
        let mut load = Self::default();
        for gs in gameservers {
            let Some(status) = &gs.status else { continue };
            let Some(state) = status.state else { continue };
            if status.node_name.is_empty() || !state.is_active() || gs.metadata.deletion_timestamp.is_some() {
                continue;
            }
            *load.servers.entry(status.node_name.clone()).or_default() += 1;
            if state == GameServerState::Allocated {
                *load.allocated.entry(status.node_name.clone()).or_default() += 1;
            }
        }
        load
    }

    /// Active servers on `node` (0 for an unknown node).
    pub fn servers_on(&self, node: &str) -> usize {
        self.servers.get(node).copied().unwrap_or_default()
    }

    /// Allocated servers on `node` (0 for an unknown node).
    pub fn allocated_on(&self, node: &str) -> usize {
        self.allocated.get(node).copied().unwrap_or_default()
    }
}

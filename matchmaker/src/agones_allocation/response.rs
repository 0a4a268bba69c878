//! [`GameServerAllocationStatus`] → `AllocationResponse`, filled the way Agones fills it: the
//! server's name, ports, primary address and every node address, node, source, its labels and
//! annotations after the allocation, and its counters and lists.

use stadion_crds::allocation::GameServerAllocationStatus;
use stadion_sdk::allocation as pb;
use stadion_sdk::allocation::allocation_response::{
    CounterStatus, GameServerMetadata, GameServerStatusAddress, GameServerStatusPort, ListStatus,
};

/// The response for an allocated server.
pub fn to_response(status: GameServerAllocationStatus) -> pb::AllocationResponse {
    pb::AllocationResponse {
        game_server_name: status.game_server_name,
        ports: status.ports.into_iter().map(|p| GameServerStatusPort { name: p.name, port: p.port }).collect(),
        address: status.address,
        addresses: status
            .addresses
            .into_iter()
            .map(|a| GameServerStatusAddress { r#type: a.type_, address: a.address })
            .collect(),
        node_name: status.node_name,
        source: status.source,
        metadata: status.metadata.map(|m| GameServerMetadata { labels: m.labels, annotations: m.annotations }),
        counters: status
            .counters
            .into_iter()
            .map(|(name, c)| (name, CounterStatus { count: Some(c.count), capacity: Some(c.capacity) }))
            .collect(),
        lists: status
            .lists
            .into_iter()
            .map(|(name, l)| (name, ListStatus { values: l.values, capacity: Some(l.capacity) }))
            .collect(),
    }
}

//! The Kubernetes resource, trimmed to the SDK's GameServer message (what GetGameServer and
//! WatchGameServer send).

use stadion_crds::GameServer;

use crate::proto::game_server::{ObjectMeta, Spec, Status, spec, status};
use crate::proto::{self};

/// Converts the resource into the SDK message. Timestamps become Unix seconds (0 when unset).
pub fn to_proto(gs: &GameServer) -> proto::GameServer {
    let meta = &gs.metadata;
    let object_meta = ObjectMeta {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        generation: meta.generation.unwrap_or_default(),
        creation_timestamp: meta.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second()),
        deletion_timestamp: meta.deletion_timestamp.as_ref().map_or(0, |t| t.0.as_second()),
        annotations: meta.annotations.clone().unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
    };
    let health = gs.health();
    let spec = Spec {
        health: Some(spec::Health {
            disabled: health.disabled,
            period_seconds: health.period_seconds(),
            failure_threshold: health.failure_threshold(),
            initial_delay_seconds: health.initial_delay_seconds(),
        }),
    };
    let status = gs.status.clone().unwrap_or_default();
    let players = status.players.unwrap_or_default();
    let status = Status {
        state: status.state.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        address: status.address,
        ports: status.ports.into_iter().map(|p| status::Port { name: p.name, port: p.port }).collect(),
        players: Some(status::PlayerStatus { count: players.count, capacity: players.capacity, ids: players.ids }),
        counters: status
            .counters
            .into_iter()
            .map(|(name, c)| (name, status::CounterStatus { count: c.count, capacity: c.capacity }))
            .collect(),
        lists: status
            .lists
            .into_iter()
            .map(|(name, l)| (name, status::ListStatus { capacity: l.capacity, values: l.values }))
            .collect(),
        addresses: status
            .addresses
            .into_iter()
            .map(|a| status::Address { r#type: a.type_, address: a.address })
            .collect(),
    };
    proto::GameServer { object_meta: Some(object_meta), spec: Some(spec), status: Some(status) }
}

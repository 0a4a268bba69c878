//! A read-only picture of the runtime for the admin endpoint and the progress lines.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use stadion_crds::{Fleet, GameServer, labels};

use crate::local::store::{Selector, Store};
use stadion_core::gameserverset::aggregate_status;

/// Fleets and GameServers as they are now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Every fleet, by namespace and name.
    pub fleets: Vec<FleetSummary>,
    /// Every GameServer, by namespace and name.
    pub gameservers: Vec<GameServerSummary>,
}

/// One fleet's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetSummary {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.replicas`.
    pub desired: i32,
    /// Servers that count toward the fleet (not shutting down or failed).
    pub current: i32,
    /// Ready servers.
    pub ready: i32,
    /// Allocated servers.
    pub allocated: i32,
    /// Reserved servers.
    pub reserved: i32,
}

/// One GameServer: where players connect and in which state it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GameServerSummary {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Fleet it belongs to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<String>,
    /// Its labels (an allocation's `metadata.labels` show up here).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Lifecycle state (`Ready`, `Allocated`…); empty before the controller saw it.
    pub state: String,
    /// Address players connect to.
    pub address: String,
    /// Ports players connect to.
    pub ports: Vec<PortSummary>,
    /// Node it runs on.
    pub node_name: String,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Whether it is being deleted.
    pub deleting: bool,
}

/// A named port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PortSummary {
    /// Port name.
    pub name: String,
    /// Port number.
    pub port: i32,
}

impl Snapshot {
    /// The picture of `store` right now.
    pub fn of(store: &Store) -> Self {
        let gameservers = store.api::<GameServer>().list(None, &Selector::everything());
        Snapshot { fleets: fleet_summaries(store, &gameservers), gameservers: gameserver_summaries(&gameservers) }
    }

    /// Only the fleets of [`Snapshot::of`]: what a poll of the fleets' counts needs, without a
    /// summary of every server (a thousand of them, labels and ports cloned, per poll).
    pub fn fleets_of(store: &Store) -> Vec<FleetSummary> {
        fleet_summaries(store, &store.api::<GameServer>().list(None, &Selector::everything()))
    }
}

fn fleet_summaries(store: &Store, gameservers: &[Arc<GameServer>]) -> Vec<FleetSummary> {
    let fleets = store.api::<Fleet>().list(None, &Selector::everything());
    fleets
        .iter()
        .map(|fleet| {
            // Counted from the servers rather than the fleet's status, so the picture is exact
            // even between two status writes.
            let mine = gameservers.iter().map(AsRef::as_ref).filter(|gs: &&GameServer| {
                gs.namespace() == fleet.namespace()
                    && gs.metadata.labels.as_ref().and_then(|l| l.get(labels::FLEET)).map(String::as_str)
                        == Some(fleet.name())
            });
            // The same counting as a set's status, so the admin API and `kubectl get` agree.
            let counts = aggregate_status(mine);
            FleetSummary {
                namespace: fleet.namespace().to_owned(),
                name: fleet.name().to_owned(),
                desired: fleet.spec.replicas,
                current: counts.replicas,
                ready: counts.ready_replicas,
                allocated: counts.allocated_replicas,
                reserved: counts.reserved_replicas,
            }
        })
        .collect()
}

fn gameserver_summaries(gameservers: &[Arc<GameServer>]) -> Vec<GameServerSummary> {
    gameservers
        .iter()
        .map(|gs| {
            let status = gs.status.clone().unwrap_or_default();
            GameServerSummary {
                namespace: gs.namespace().to_owned(),
                name: gs.name().to_owned(),
                fleet: gs.metadata.labels.as_ref().and_then(|l| l.get(labels::FLEET)).cloned(),
                labels: gs.metadata.labels.clone().unwrap_or_default(),
                state: status.state.map(|s| s.to_string()).unwrap_or_default(),
                address: status.address,
                ports: status.ports.into_iter().map(|p| PortSummary { name: p.name, port: p.port }).collect(),
                node_name: status.node_name,
                created: gs.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default(),
                deleting: gs.metadata.deletion_timestamp.is_some(),
            }
        })
        .collect()
}

//! What the dashboard shows, computed from plain lists of objects so both runtimes feed it the
//! same way: the local store's lists, or the kube runtime's watch caches.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use stadion_core::gameserverset::aggregate_status;
use stadion_crds::fleetautoscaler::FleetAutoscalerPolicyType;
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet, labels};

/// The objects one dashboard frame is computed from.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// Every GameServer.
    pub gameservers: Vec<Arc<GameServer>>,
    /// Every GameServerSet.
    pub sets: Vec<Arc<GameServerSet>>,
    /// Every Fleet.
    pub fleets: Vec<Arc<Fleet>>,
    /// Every FleetAutoscaler.
    pub autoscalers: Vec<Arc<FleetAutoscaler>>,
}

/// One fleet's row.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.replicas`.
    pub desired: i32,
    /// Servers that count toward the fleet.
    pub current: i32,
    /// Ready servers.
    pub ready: i32,
    /// Allocated servers.
    pub allocated: i32,
    /// Reserved servers.
    pub reserved: i32,
    /// `RollingUpdate` or `Recreate`.
    pub strategy: String,
    /// The sets while more than one holds servers (an update in progress), newest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollout: Vec<SetView>,
    /// The fleet's autoscaler, if one targets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerView>,
}

/// One GameServerSet of a fleet under update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetView {
    /// Name.
    pub name: String,
    /// `spec.replicas`.
    pub desired: i32,
    /// Servers that count toward it.
    pub current: i32,
    /// Ready servers.
    pub ready: i32,
    /// Allocated servers.
    pub allocated: i32,
}

/// A FleetAutoscaler as the fleet row shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerView {
    /// Name.
    pub name: String,
    /// Policy type (`Buffer`, `Webhook`, …).
    pub policy: String,
    /// The Buffer policy's buffer size (`5` or `20%`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer_size: Option<String>,
    /// The Buffer policy's lower bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    /// The Buffer policy's upper bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i32>,
    /// Replicas the policy asked for at its last run (its target).
    pub target: i32,
    /// Whether it could scale at its last run.
    pub able_to_scale: bool,
    /// Whether min/max clamped its target.
    pub scaling_limited: bool,
}

/// One GameServer's row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRow {
    /// `namespace/name`, the row's identity in deltas.
    pub key: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Fleet, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<String>,
    /// State; empty before the controller saw it.
    pub state: String,
    /// Address players connect to.
    pub address: String,
    /// `name:port` of each port.
    pub ports: Vec<String>,
    /// Node.
    pub node: String,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Labels other than the fleet and set ones the row shows already.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Player count and capacity, when player tracking is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub players: Option<[i64; 2]>,
    /// Each counter's count and capacity.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, [i64; 2]>,
    /// When it was last allocated (`agones.dev/last-allocated`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_allocated: Option<String>,
    /// Whether it is being deleted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
}

fn label<'a>(meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref().and_then(|l| l.get(key)).map(String::as_str)
}

/// Every fleet's row, by namespace and name.
pub fn fleets(objects: &Objects) -> Vec<FleetView> {
    let mut views: Vec<FleetView> = objects
        .fleets
        .iter()
        .map(|fleet| {
            let in_fleet = |gs: &&GameServer| {
                gs.namespace() == fleet.namespace() && label(&gs.metadata, labels::FLEET) == Some(fleet.name())
            };
            let counts = aggregate_status(objects.gameservers.iter().map(AsRef::as_ref).filter(in_fleet));
            let mut sets: Vec<&GameServerSet> = objects
                .sets
                .iter()
                .map(AsRef::as_ref)
                .filter(|s| {
                    s.namespace() == fleet.namespace() && label(&s.metadata, labels::FLEET) == Some(fleet.name())
                })
                .collect();
            sets.sort_by(|a, b| {
                let created = |s: &GameServerSet| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
                created(b).cmp(&created(a)).then_with(|| a.name().cmp(b.name()))
            });
            let set_views: Vec<SetView> = sets.iter().map(|set| set_view(set, objects)).collect();
            let holding = set_views.iter().filter(|s| s.current > 0 || s.desired > 0).count();
            FleetView {
                namespace: fleet.namespace().to_owned(),
                name: fleet.name().to_owned(),
                desired: fleet.spec.replicas,
                current: counts.replicas,
                ready: counts.ready_replicas,
                allocated: counts.allocated_replicas,
                reserved: counts.reserved_replicas,
                strategy: fleet
                    .spec
                    .strategy
                    .as_ref()
                    .and_then(|s| s.type_)
                    .map(|t| format!("{t:?}"))
                    .unwrap_or_else(|| "RollingUpdate".to_owned()),
                rollout: if holding > 1 { set_views } else { Vec::new() },
                autoscaler: objects
                    .autoscalers
                    .iter()
                    .find(|fas| fas.namespace() == fleet.namespace() && fas.spec.fleet_name == fleet.name())
                    .map(|fas| autoscaler_view(fas)),
            }
        })
        .collect();
    views.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    views
}

fn set_view(set: &GameServerSet, objects: &Objects) -> SetView {
    let mine = objects.gameservers.iter().map(AsRef::as_ref).filter(|gs: &&GameServer| {
        gs.namespace() == set.namespace() && label(&gs.metadata, labels::GAMESERVERSET) == Some(set.name())
    });
    let counts = aggregate_status(mine);
    SetView {
        name: set.name().to_owned(),
        desired: set.spec.replicas,
        current: counts.replicas,
        ready: counts.ready_replicas,
        allocated: counts.allocated_replicas,
    }
}

fn autoscaler_view(fas: &FleetAutoscaler) -> AutoscalerView {
    let policy = &fas.spec.policy;
    let buffer = policy.buffer.as_ref().filter(|_| policy.type_ == FleetAutoscalerPolicyType::Buffer);
    let status = fas.status.clone().unwrap_or_default();
    AutoscalerView {
        name: fas.name().to_owned(),
        policy: format!("{:?}", policy.type_),
        buffer_size: buffer.map(|b| match &b.buffer_size {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
        }),
        min_replicas: buffer.map(|b| b.min_replicas),
        max_replicas: buffer.map(|b| b.max_replicas),
        target: status.desired_replicas,
        able_to_scale: status.able_to_scale,
        scaling_limited: status.scaling_limited,
    }
}

/// Every GameServer's row, by namespace and name.
pub fn rows(objects: &Objects) -> Vec<ServerRow> {
    let mut rows: Vec<ServerRow> = objects.gameservers.iter().map(|gs| row(gs)).collect();
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    rows
}

/// One GameServer's row.
pub fn row(gs: &GameServer) -> ServerRow {
    let status = gs.status.clone().unwrap_or_default();
    let mut shown = gs.metadata.labels.clone().unwrap_or_default();
    shown.remove(labels::FLEET);
    shown.remove(labels::GAMESERVERSET);
    ServerRow {
        key: stadion_core::object_key(gs.namespace(), gs.name()),
        namespace: gs.namespace().to_owned(),
        name: gs.name().to_owned(),
        fleet: label(&gs.metadata, labels::FLEET).map(str::to_owned),
        state: status.state.map(|s| s.to_string()).unwrap_or_default(),
        address: status.address,
        ports: status.ports.iter().map(|p| format!("{}:{}", p.name, p.port)).collect(),
        node: status.node_name,
        created: gs.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default(),
        labels: shown,
        players: status.players.filter(|p| p.capacity > 0 || p.count > 0).map(|p| [p.count, p.capacity]),
        counters: status.counters.iter().map(|(name, c)| (name.clone(), [c.count, c.capacity])).collect(),
        last_allocated: gs.metadata.annotations.as_ref().and_then(|a| a.get(labels::LAST_ALLOCATED)).cloned(),
        deleting: gs.metadata.deletion_timestamp.is_some(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use stadion_crds::GameServerState;
    use stadion_crds::gameserver::{GameServerSpec, GameServerStatus, GameServerStatusPort};

    pub(crate) fn server(name: &str, set: &str, state: GameServerState) -> Arc<GameServer> {
        let mut gs = GameServer::new(name, GameServerSpec::default());
        gs.metadata.labels = Some(
            [
                (labels::FLEET.to_owned(), "arena".to_owned()),
                (labels::GAMESERVERSET.to_owned(), set.to_owned()),
                ("mode".to_owned(), "duel".to_owned()),
            ]
            .into(),
        );
        gs.metadata.creation_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
        gs.status = Some(GameServerStatus {
            state: Some(state),
            address: "127.0.0.1".into(),
            node_name: "local".into(),
            ports: vec![GameServerStatusPort { name: "default".into(), port: 7001 }],
            ..Default::default()
        });
        Arc::new(gs)
    }

    fn set(name: &str, replicas: i32, created: &str) -> Arc<GameServerSet> {
        let mut set: GameServerSet = serde_json::from_value(serde_json::json!({
            "apiVersion": "agones.dev/v1", "kind": "GameServerSet",
            "metadata": {"name": name, "namespace": "default", "labels": {labels::FLEET: "arena"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "g", "image": "g"}]}}}
        }))
        .unwrap();
        set.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
        Arc::new(set)
    }

    fn fleet(replicas: i32) -> Arc<Fleet> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "agones.dev/v1", "kind": "Fleet",
                "metadata": {"name": "arena", "namespace": "default"},
                "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "g", "image": "g"}]}}}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn a_fleet_row_counts_its_servers_and_shows_its_autoscaler() {
        let fas: FleetAutoscaler = serde_json::from_value(serde_json::json!({
            "apiVersion": "autoscaling.agones.dev/v1", "kind": "FleetAutoscaler",
            "metadata": {"name": "arena-fas", "namespace": "default"},
            "spec": {"fleetName": "arena", "policy": {"type": "Buffer",
                "buffer": {"bufferSize": "20%", "minReplicas": 2, "maxReplicas": 10}}},
            "status": {"currentReplicas": 3, "desiredReplicas": 4, "ableToScale": true}
        }))
        .unwrap();
        let objects = Objects {
            gameservers: vec![
                server("a", "arena-1", GameServerState::Ready),
                server("b", "arena-1", GameServerState::Allocated),
                server("c", "arena-1", GameServerState::Reserved),
            ],
            sets: vec![set("arena-1", 3, "2026-01-01T00:00:00Z")],
            fleets: vec![fleet(3)],
            autoscalers: vec![Arc::new(fas)],
        };
        let [view] = fleets(&objects).try_into().expect("one fleet");
        assert_eq!((view.desired, view.current, view.ready, view.allocated, view.reserved), (3, 3, 1, 1, 1));
        assert!(view.rollout.is_empty(), "one set is no rollout");
        let fas = view.autoscaler.expect("its autoscaler");
        assert_eq!((fas.policy.as_str(), fas.buffer_size.as_deref(), fas.target), ("Buffer", Some("20%"), 4));
        assert_eq!((fas.min_replicas, fas.max_replicas), (Some(2), Some(10)));
    }

    #[test]
    fn two_sets_with_servers_show_the_rollout_newest_first() {
        let objects = Objects {
            gameservers: vec![
                server("old-1", "arena-old", GameServerState::Allocated),
                server("new-1", "arena-new", GameServerState::Ready),
            ],
            sets: vec![set("arena-old", 0, "2026-01-01T00:00:00Z"), set("arena-new", 2, "2026-01-02T00:00:00Z")],
            fleets: vec![fleet(2)],
            autoscalers: vec![],
        };
        let view = &fleets(&objects)[0];
        let names: Vec<(&str, i32, i32)> =
            view.rollout.iter().map(|s| (s.name.as_str(), s.desired, s.current)).collect();
        assert_eq!(names, [("arena-new", 2, 1), ("arena-old", 0, 1)]);
    }

    #[test]
    fn a_row_shows_where_to_connect_and_hides_the_labels_it_has_columns_for() {
        let mut gs = (*server("a", "arena-1", GameServerState::Allocated)).clone();
        gs.metadata.annotations = Some([(labels::LAST_ALLOCATED.to_owned(), "2026-01-01T00:01:00Z".to_owned())].into());
        let row = row(&gs);
        assert_eq!(row.key, "default/a");
        assert_eq!(
            (row.state.as_str(), row.address.as_str(), row.ports.as_slice()),
            ("Allocated", "127.0.0.1", &["default:7001".to_owned()][..])
        );
        assert_eq!(row.fleet.as_deref(), Some("arena"));
        assert_eq!(row.labels, BTreeMap::from([("mode".to_owned(), "duel".to_owned())]));
        assert_eq!(row.last_allocated.as_deref(), Some("2026-01-01T00:01:00Z"));
    }
}

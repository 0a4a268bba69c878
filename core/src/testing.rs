//! Fixture builders for tests of the core and of the runtimes:
//! `GameServerBuilder::new("gs-1").state(Ready).node("n1").build()`.
//!
//! Always compiled (it is small and pure) so other crates' tests can use it too.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, NodeAddress, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stadion_crds::common::{CounterStatus, ListStatus};
use stadion_crds::gameserver::{GameServerPort, GameServerSpec, GameServerStatus, PlayerStatus, PortPolicy, Protocol};
use stadion_crds::gameserverset::{GameServerSetSpec, GameServerSetStatus, GameServerTemplateSpec};
use stadion_crds::{GameServer, GameServerSet, GameServerState, labels};

use super::names::NameGenerator;

/// A fixed instant tests measure from: 2026-01-01T00:00:00Z.
pub fn epoch() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `epoch() + seconds`.
pub fn at(seconds: i64) -> Timestamp {
    epoch() + jiff::SignedDuration::from_secs(seconds)
}

/// A [`NameGenerator`] that counts: `00001`, `00002`, … (readable test names).
#[derive(Clone, Debug, Default)]
pub struct CountingNames(pub u64);

impl NameGenerator for CountingNames {
    fn suffix(&mut self) -> String {
        self.0 += 1;
        format!("{:05}", self.0)
    }
}

/// A GameServer spec with one game container and one Dynamic UDP port `default` on 7654.
pub fn game_spec() -> GameServerSpec {
    GameServerSpec {
        ports: vec![GameServerPort { name: "default".into(), container_port: Some(7654), ..GameServerPort::default() }],
        template: PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container { name: "game".into(), ..Container::default() }],
                ..PodSpec::default()
            }),
        },
        ..GameServerSpec::default()
    }
}

/// Builds GameServers in any state without going through the state machine.
#[derive(Clone, Debug)]
pub struct GameServerBuilder {
    gs: GameServer,
}

impl GameServerBuilder {
    /// A defaulted server named `name` in namespace `default`, state Ready, no node.
    pub fn new(name: &str) -> Self {
        let mut gs = GameServer::new(name, game_spec());
        gs.metadata.namespace = Some("default".into());
        gs.apply_defaults();
        Self { gs }.state(GameServerState::Ready)
    }

    /// Sets the state.
    pub fn state(mut self, state: GameServerState) -> Self {
        self.status().state = Some(state);
        self
    }

    /// Puts it on `node` with address `10.0.0.1` (InternalIP).
    pub fn node(mut self, node: &str) -> Self {
        let status = self.status();
        status.node_name = node.into();
        status.address = "10.0.0.1".into();
        status.addresses = vec![NodeAddress { type_: "InternalIP".into(), address: "10.0.0.1".into() }];
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.gs.metadata.labels.get_or_insert_default().insert(key.into(), value.into());
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.gs.metadata.annotations.get_or_insert_default().insert(key.into(), value.into());
        self
    }

    /// Tracks players: `count` connected (ids `p0`, `p1`, …) out of a capacity of 10.
    pub fn players(mut self, count: i64) -> Self {
        let ids = (0..count).map(|i| format!("p{i}")).collect();
        self.status().players = Some(PlayerStatus { count, capacity: 10, ids });
        self
    }

    /// Marks it as owned by set `set` of fleet `fleet` (labels only).
    pub fn in_set(self, set: &str, fleet: &str) -> Self {
        self.label(labels::GAMESERVERSET, set).label(labels::FLEET, fleet)
    }

    /// Sets the creation time to `epoch() + seconds`.
    pub fn created(mut self, seconds: i64) -> Self {
        self.gs.metadata.creation_timestamp = Some(Time(at(seconds)));
        self
    }

    /// Marks it as being deleted.
    pub fn deleting(mut self) -> Self {
        self.gs.metadata.deletion_timestamp = Some(Time(epoch()));
        self
    }

    /// Sets a counter in the status.
    pub fn counter(mut self, name: &str, count: i64, capacity: i64) -> Self {
        self.status().counters.insert(name.into(), CounterStatus { count, capacity });
        self
    }

    /// Sets a list in the status.
    pub fn list(mut self, name: &str, capacity: i64, values: &[&str]) -> Self {
        let values = values.iter().map(|v| (*v).to_owned()).collect();
        self.status().lists.insert(name.into(), ListStatus { capacity, values });
        self
    }

    /// Replaces the ports (status ports are not recomputed).
    pub fn ports(mut self, ports: Vec<GameServerPort>) -> Self {
        self.gs.spec.ports = ports;
        self.gs.spec.apply_defaults();
        self
    }

    /// The GameServer.
    pub fn build(self) -> GameServer {
        self.gs
    }

    fn status(&mut self) -> &mut GameServerStatus {
        self.gs.status.get_or_insert_with(GameServerStatus::default)
    }
}

/// A spec port with a policy and protocol (container port 7654 unless Static/Passthrough).
pub fn port(name: &str, policy: PortPolicy, protocol: Protocol) -> GameServerPort {
    GameServerPort {
        name: name.into(),
        port_policy: Some(policy),
        protocol: Some(protocol),
        container_port: (policy != PortPolicy::Passthrough).then_some(7654),
        ..GameServerPort::default()
    }
}

/// A defaulted GameServerSet `name` (namespace `default`, uid `uid-<name>`) of `replicas`
/// [`game_spec`] servers, owned by fleet `fleet` when given.
pub fn gameserverset(name: &str, replicas: i32, fleet: Option<&str>) -> GameServerSet {
    let mut set = GameServerSet::new(
        name,
        GameServerSetSpec {
            replicas,
            template: GameServerTemplateSpec { metadata: Default::default(), spec: game_spec() },
            ..GameServerSetSpec::default()
        },
    );
    set.metadata.namespace = Some("default".into());
    set.metadata.uid = Some(format!("uid-{name}"));
    if let Some(fleet) = fleet {
        set.metadata.labels = Some(BTreeMap::from([(labels::FLEET.to_owned(), fleet.to_owned())]));
    }
    set.apply_defaults();
    set
}

/// A set status with the given counts (replicas = ready + reserved + allocated + starting).
pub fn set_status(ready: i32, reserved: i32, allocated: i32, starting: i32) -> GameServerSetStatus {
    GameServerSetStatus {
        replicas: ready + reserved + allocated + starting,
        ready_replicas: ready,
        reserved_replicas: reserved,
        allocated_replicas: allocated,
        ..GameServerSetStatus::default()
    }
}

//! Fleet rollouts, simulated end to end with the set scaler: a world of sets and servers where
//! each tick runs the fleet plan, every set's plan, and lets new servers become Ready.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use stadion_core::NodeLoad;
use stadion_core::fleet::{self, FleetPlan, rolling_limits, template_hash};
use stadion_core::gameserverset::{self, SetScalingOptions, aggregate_status};
use stadion_core::testing::{CountingNames, at, game_spec};
use stadion_crds::fleet::{FleetSpec, FleetStrategy, FleetStrategyType, RollingUpdate};
use stadion_crds::gameserverset::GameServerTemplateSpec;
use stadion_crds::{Fleet, GameServer, GameServerSet, GameServerState as S, labels};

fn fleet(replicas: i32, strategy: FleetStrategyType, surge: &str, unavailable: &str) -> Fleet {
    let mut f = Fleet::new(
        "f",
        FleetSpec {
            replicas,
            strategy: Some(FleetStrategy {
                type_: Some(strategy),
                rolling_update: Some(RollingUpdate {
                    max_surge: Some(IntOrString::String(surge.into())),
                    max_unavailable: Some(IntOrString::String(unavailable.into())),
                }),
            }),
            template: GameServerTemplateSpec { metadata: Default::default(), spec: game_spec() },
            ..FleetSpec::default()
        },
    );
    f.metadata.namespace = Some("default".into());
    f.metadata.uid = Some("uid-f".into());
    f.apply_defaults();
    f
}

/// Sets and servers of one fleet, advanced a tick at a time.
struct World {
    fleet: Fleet,
    sets: Vec<GameServerSet>,
    servers: Vec<GameServer>,
    names: CountingNames,
    tick: i64,
}

impl World {
    fn new(fleet: Fleet) -> Self {
        Self { fleet, sets: Vec::new(), servers: Vec::new(), names: CountingNames::default(), tick: 0 }
    }

    fn servers_of(&self, set: &str) -> Vec<GameServer> {
        self.servers
            .iter()
            .filter(|gs| gs.metadata.labels.as_ref().unwrap()[labels::GAMESERVERSET] == set)
            .cloned()
            .collect()
    }

    /// One tick: servers created last tick become Ready, the fleet plans, every set plans.
    fn step(&mut self) -> FleetPlan {
        self.tick += 1;
        for gs in &mut self.servers {
            if gs.state() == Some(S::Scheduled) {
                gs.status.as_mut().unwrap().state = Some(S::Ready);
            }
        }
        self.refresh_statuses();
        let plan = fleet::plan(&self.fleet, &self.sets, &mut self.names);
        if let Some(mut set) = plan.create_set.clone() {
            set.metadata.creation_timestamp = Some(Time(at(self.tick)));
            self.sets.push(set);
        }
        for updated in &plan.update_sets {
            *self.sets.iter_mut().find(|s| s.name() == updated.name()).unwrap() = updated.clone();
        }
        self.sets.retain(|s| !plan.delete_sets.contains(&s.name().to_owned()));
        for set in self.sets.clone() {
            let servers = self.servers_of(set.name());
            let load = NodeLoad::from_gameservers(&self.servers);
            let p = gameserverset::plan(
                &set,
                &servers,
                &load,
                &mut self.names,
                at(self.tick),
                &SetScalingOptions::default(),
            );
            for shut in &p.shutdown {
                assert_ne!(
                    self.state_of(shut.name()),
                    Some(S::Allocated),
                    "tick {}: Allocated {} shut down",
                    self.tick,
                    shut.name()
                );
                *self.servers.iter_mut().find(|gs| gs.name() == shut.name()).unwrap() = shut.clone();
            }
            self.servers.retain(|gs| !p.delete.contains(&gs.name().to_owned()));
            for created in p.create {
                let mut gs = created;
                let status = gs.status.as_mut().unwrap();
                status.state = Some(S::Scheduled);
                status.node_name = "n1".into();
                self.servers.push(gs);
            }
        }
        self.refresh_statuses();
        plan
    }

    fn refresh_statuses(&mut self) {
        for i in 0..self.sets.len() {
            let servers = self.servers_of(self.sets[i].name());
            self.sets[i].status = Some(aggregate_status(&servers));
        }
    }

    fn state_of(&self, name: &str) -> Option<S> {
        self.servers.iter().find(|gs| gs.name() == name).and_then(GameServer::state)
    }

    fn count(&self, pred: impl Fn(S) -> bool) -> usize {
        self.servers.iter().filter(|gs| gs.state().is_some_and(&pred)).count()
    }

    fn active_count(&self) -> usize {
        self.count(S::is_active)
    }

    /// Servers per template hash (of the set they belong to).
    fn by_template(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for set in &self.sets {
            let hash = set.metadata.annotations.as_ref().unwrap()[labels::TEMPLATE_HASH].clone();
            *out.entry(hash).or_default() +=
                self.servers_of(set.name()).iter().filter(|gs| gs.state().is_some_and(S::is_active)).count();
        }
        out
    }

    fn settle(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.step();
        }
    }
}

#[test]
fn template_hash_ignores_defaulting_but_sees_real_changes() {
    let raw = GameServerTemplateSpec { metadata: Default::default(), spec: game_spec() };
    let mut defaulted = raw.clone();
    defaulted.spec.apply_defaults();
    assert_eq!(template_hash(&raw), template_hash(&defaulted));
    let mut changed = raw.clone();
    changed.spec.ports[0].container_port = Some(7777);
    assert_ne!(template_hash(&raw), template_hash(&changed));
}

#[test]
fn limits_round_like_kubernetes() {
    let f = fleet(10, FleetStrategyType::RollingUpdate, "25%", "25%");
    assert_eq!(rolling_limits(&f, 10), (3, 2));
    let f = fleet(10, FleetStrategyType::RollingUpdate, "0", "0%");
    assert_eq!(rolling_limits(&f, 10), (0, 1), "both zero: one may be unavailable");
    let f = fleet(10, FleetStrategyType::RollingUpdate, "2", "1");
    assert_eq!(rolling_limits(&f, 10), (2, 1));
}

#[test]
fn new_fleet_creates_one_labelled_set_and_replicas_change_applies_at_once() {
    let mut world = World::new(fleet(5, FleetStrategyType::RollingUpdate, "25%", "25%"));
    let plan = world.step();
    let set = plan.create_set.expect("active set created");
    assert_eq!((set.name(), set.spec.replicas), ("f-00001", 5));
    assert_eq!(set.metadata.labels.as_ref().unwrap()[labels::FLEET], "f");
    assert_eq!(
        set.metadata.annotations.as_ref().unwrap()[labels::TEMPLATE_HASH],
        template_hash(&world.fleet.spec.template)
    );
    assert_eq!(set.metadata.owner_references.as_ref().unwrap()[0].kind, "Fleet");
    world.settle(2);
    assert_eq!(world.count(|s| s == S::Ready), 5);

    world.fleet.spec.replicas = 12;
    let plan = world.step();
    assert_eq!(plan.update_sets[0].spec.replicas, 12, "no rollout: surge limits do not apply");
    world.settle(2);
    assert_eq!(world.count(|s| s == S::Ready), 12);
    let status = fleet::plan(&world.fleet, &world.sets, &mut world.names).status;
    assert_eq!((status.replicas, status.ready_replicas), (12, 12));
}

/// Rolls a steady fleet of `replicas` with `busy` Allocated servers to a new template, checking
/// every tick: never more than replicas + maxSurge servers, never fewer Ready than
/// (replicas − busy) − maxUnavailable (RollingUpdate), no Allocated server lost. Then the
/// sessions end and the fleet must finish on the new template alone.
fn rollout(strategy: FleetStrategyType, surge: &str, unavailable: &str, replicas: usize, busy: usize) {
    let mut world = World::new(fleet(replicas as i32, strategy, surge, unavailable));
    world.settle(3);
    assert_eq!(world.count(|s| s == S::Ready), replicas);
    let allocated: Vec<String> = world.servers.iter().take(busy).map(|gs| gs.name().to_owned()).collect();
    for gs in world.servers.iter_mut().take(busy) {
        gs.status.as_mut().unwrap().state = Some(S::Allocated);
    }

    world.fleet.spec.template.metadata.labels = Some([("version".to_owned(), "2".to_owned())].into());
    let new_hash = template_hash(&world.fleet.spec.template);
    let (surge_n, unavailable_n) = rolling_limits(&world.fleet, replicas as i32);
    for _ in 0..(3 * replicas + 10) {
        world.step();
        if strategy == FleetStrategyType::RollingUpdate {
            let active = world.active_count();
            assert!(active <= replicas + surge_n as usize, "tick {}: {active} servers", world.tick);
            let ready = world.count(|s| s == S::Ready);
            assert!(ready + unavailable_n as usize >= replicas - busy, "tick {}: only {ready} Ready", world.tick);
        }
        for name in &allocated {
            assert_eq!(world.state_of(name), Some(S::Allocated), "tick {}: {name} lost", world.tick);
        }
    }
    // Old template: only the Allocated ones; new template: the rest.
    let counts = world.by_template();
    assert_eq!(counts.get(&new_hash).copied().unwrap_or_default(), replicas - busy);
    assert_eq!(counts.values().sum::<usize>(), replicas);
    let expected_sets = if busy > 0 { 2 } else { 1 };
    assert_eq!(world.sets.len(), expected_sets, "old set kept only while its Allocated servers live");

    // The sessions end: the old set empties and is deleted, the new one grows to `replicas`.
    for gs in world.servers.iter_mut().filter(|gs| allocated.contains(&gs.name().to_owned())) {
        gs.status.as_mut().unwrap().state = Some(S::Shutdown);
    }
    world.settle(6);
    assert_eq!(world.sets.len(), 1);
    assert_eq!(world.by_template()[&new_hash], replicas);
    assert_eq!(world.count(|s| s == S::Ready), replicas);
}

#[test]
fn rolling_update_of_ten_with_four_allocated_completes_within_limits() {
    rollout(FleetStrategyType::RollingUpdate, "25%", "25%", 10, 4);
}

#[test]
fn rolling_update_with_zero_surge_still_progresses() {
    rollout(FleetStrategyType::RollingUpdate, "0", "0", 10, 4);
}

#[test]
fn recreate_replaces_everything_but_allocated() {
    rollout(FleetStrategyType::Recreate, "25%", "25%", 10, 4);
}

fn limit() -> impl Strategy<Value = String> {
    prop_oneof![(0u8..4).prop_map(|n| n.to_string()), (0u8..=100).prop_map(|p| format!("{p}%"))]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The rollout invariants hold for any size, any Allocated share and any limits.
    #[test]
    fn rollouts_hold_their_limits_and_complete(
        replicas in 1usize..14,
        busy_share in 0usize..=100,
        surge in limit(),
        unavailable in limit(),
        recreate in any::<bool>(),
    ) {
        let strategy = if recreate { FleetStrategyType::Recreate } else { FleetStrategyType::RollingUpdate };
        rollout(strategy, &surge, &unavailable, replicas, replicas * busy_share / 100);
    }
}

#[test]
fn recreate_waits_for_old_servers_before_creating() {
    let mut world = World::new(fleet(4, FleetStrategyType::Recreate, "25%", "25%"));
    world.settle(3);
    world.fleet.spec.template.metadata.labels = Some([("v".to_owned(), "2".to_owned())].into());
    let plan = world.step();
    assert_eq!(plan.create_set.expect("new set").spec.replicas, 0, "old servers still draining");
    world.settle(4);
    assert_eq!(world.count(|s| s == S::Ready), 4);
    assert_eq!(world.sets.len(), 1);
}

#[test]
fn scale_to_zero_and_status_carries_allocations() {
    let mut world = World::new(fleet(3, FleetStrategyType::RollingUpdate, "25%", "25%"));
    world.settle(3);
    world.fleet.spec.replicas = 0;
    world.settle(3);
    assert_eq!(world.active_count(), 0);
    let mut status = fleet::plan(&world.fleet, &world.sets, &mut world.names).status;
    fleet::record_allocation(&mut status);
    world.fleet.status = Some(status);
    assert_eq!(fleet::plan(&world.fleet, &world.sets, &mut world.names).status.allocations, Some(1));
}

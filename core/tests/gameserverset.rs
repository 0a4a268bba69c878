//! GameServerSet scaling scenarios and properties: never an Allocated or Reserved server shut
//! down, counts converge, Packed empties the least-used node first.

use proptest::prelude::*;
use stadion_core::NodeLoad;
use stadion_core::gameserverset::{GameServerSetPlan, SetScalingOptions, aggregate_status, plan};
use stadion_core::testing::{CountingNames, GameServerBuilder, at, gameserverset};
use stadion_crds::common::{MetaPatch, Priority, PriorityOrder, PriorityType, SchedulingStrategy};
use stadion_crds::{GameServer, GameServerSet, GameServerState as S, labels};

/// Carries a plan out the way a runtime would, with new servers becoming Ready on `node` at once.
fn carry_out(servers: &mut Vec<GameServer>, plan: &GameServerSetPlan, node: &str) {
    servers.retain(|gs| !plan.delete.iter().any(|n| n == gs.name()));
    for updated in plan.shutdown.iter().chain(&plan.overflow) {
        let slot = servers.iter_mut().find(|gs| gs.name() == updated.name()).expect("updated server exists");
        *slot = updated.clone();
    }
    for created in &plan.create {
        let mut gs = created.clone();
        let status = gs.status.as_mut().unwrap();
        status.state = Some(S::Ready);
        status.node_name = node.into();
        servers.push(gs);
    }
}

fn reconcile(set: &GameServerSet, servers: &mut Vec<GameServer>, names: &mut CountingNames) -> GameServerSetPlan {
    let p =
        plan(set, servers, &NodeLoad::from_gameservers(servers.iter()), names, at(0), &SetScalingOptions::default());
    carry_out(servers, &p, "n1");
    p
}

fn count(servers: &[GameServer], state: S) -> usize {
    servers.iter().filter(|gs| gs.state() == Some(state)).count()
}

#[test]
fn scale_zero_to_ten_to_three_keeps_the_two_allocated() {
    let mut set = gameserverset("web", 0, Some("fleet-a"));
    let mut servers = Vec::new();
    let mut names = CountingNames::default();
    assert!(reconcile(&set, &mut servers, &mut names).is_settled());

    set.spec.replicas = 10;
    let created = reconcile(&set, &mut servers, &mut names).create;
    assert_eq!(created.len(), 10);
    let first = &created[0];
    assert_eq!(first.name(), "web-00001");
    let labels_map = first.metadata.labels.as_ref().unwrap();
    assert_eq!((labels_map[labels::GAMESERVERSET].as_str(), labels_map[labels::FLEET].as_str()), ("web", "fleet-a"));
    let owner = &first.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("GameServerSet", "web", "uid-web"));
    assert_eq!(owner.controller, Some(true));
    assert_eq!(first.metadata.namespace.as_deref(), Some("default"));

    for gs in servers.iter_mut().take(2) {
        gs.status.as_mut().unwrap().state = Some(S::Allocated);
    }
    set.spec.replicas = 3;
    let p = reconcile(&set, &mut servers, &mut names);
    assert_eq!(p.shutdown.len(), 7);
    assert!(p.shutdown.iter().all(|gs| gs.name() != "web-00001" && gs.name() != "web-00002"));
    reconcile(&set, &mut servers, &mut names); // deletes the Shutdown ones
    assert_eq!(servers.len(), 3);
    assert_eq!((count(&servers, S::Allocated), count(&servers, S::Ready)), (2, 1));
    assert!(reconcile(&set, &mut servers, &mut names).is_settled());
}

#[test]
fn creation_is_capped_per_reconcile_and_requeued() {
    let set = gameserverset("big", 100, None);
    let options = SetScalingOptions { max_creations: 64, ..SetScalingOptions::default() };
    let p = plan(&set, &[] as &[GameServer], &NodeLoad::default(), &mut CountingNames::default(), at(5), &options);
    assert_eq!(p.create.len(), 64);
    assert_eq!(p.requeue_at, Some(at(5)));
}

/// The plan with the servers' own node load, default names and options.
fn plan_on_their_nodes(set: &GameServerSet, servers: &[GameServer], now: jiff::Timestamp) -> GameServerSetPlan {
    let load = NodeLoad::from_gameservers(servers);
    plan(set, servers, &load, &mut CountingNames::default(), now, &Default::default())
}

fn names(servers: &[GameServer]) -> Vec<&str> {
    servers.iter().map(|gs| gs.name()).collect()
}

fn on(name: &str, node: &str, created: i64) -> GameServer {
    GameServerBuilder::new(name).node(node).created(created).in_set("s", "f").build()
}

#[test]
fn packed_scale_down_takes_unscheduled_then_starting_then_empties_the_least_used_node() {
    let mut set = gameserverset("s", 4, Some("f"));
    set.spec.scheduling = Some(SchedulingStrategy::Packed);
    let servers = vec![
        on("big-1", "big", 0),
        on("big-2", "big", 1),
        on("big-3", "big", 2),
        on("small-1", "small", 3),
        on("small-2", "small", 4),
        GameServerBuilder::new("starting").node("big").state(S::Scheduled).build(),
        GameServerBuilder::new("unscheduled").state(S::Creating).build(),
    ];
    let p = plan_on_their_nodes(&set, &servers, at(9));
    let chosen = names(&p.shutdown);
    assert_eq!(chosen, ["unscheduled", "starting", "small-2"]);
    assert!(p.shutdown.iter().all(|gs| gs.state() == Some(S::Shutdown)));

    set.spec.replicas = 1;
    let p = plan_on_their_nodes(&set, &servers, at(9));
    let chosen = names(&p.shutdown);
    assert_eq!(&chosen[..4], ["unscheduled", "starting", "small-2", "small-1"], "small node emptied before big");
}

#[test]
fn packed_counts_servers_of_other_sets_on_the_node() {
    let mut set = gameserverset("s", 1, Some("f"));
    set.spec.scheduling = Some(SchedulingStrategy::Packed);
    let servers = vec![on("a-1", "a", 0), on("b-1", "b", 0)];
    // Node `a` also runs 5 servers of another set, so `b` is the least used.
    let mut load = NodeLoad::from_gameservers(&servers);
    load.servers.insert("a".into(), 6);
    let p = plan(&set, &servers, &load, &mut CountingNames::default(), at(0), &Default::default());
    assert_eq!(p.shutdown[0].name(), "b-1");
}

#[test]
fn distributed_scale_down_goes_by_priorities_else_oldest_first() {
    let mut set = gameserverset("s", 2, Some("f"));
    set.spec.scheduling = Some(SchedulingStrategy::Distributed);
    let servers = vec![on("new", "n1", 30), on("old", "n2", 10), on("mid", "n3", 20), on("older", "n1", 5)];
    let p = plan_on_their_nodes(&set, &servers, at(0));
    let chosen = names(&p.shutdown);
    assert_eq!(chosen, ["older", "old"]);

    set.spec.priorities =
        vec![Priority { type_: PriorityType::Counter, key: "rooms".into(), order: PriorityOrder::Descending }];
    let servers = vec![
        GameServerBuilder::new("busy").node("n1").counter("rooms", 9, 10).build(),
        GameServerBuilder::new("idle").node("n1").counter("rooms", 0, 10).build(),
        GameServerBuilder::new("half").node("n1").counter("rooms", 5, 10).build(),
    ];
    let p = plan(&set, &servers, &NodeLoad::default(), &mut CountingNames::default(), at(0), &Default::default());
    assert_eq!(p.shutdown[0].name(), "idle", "Descending: most available capacity goes first");
}

#[test]
fn unhealthy_replaced_error_held_thirty_seconds_and_counted_shutdown_deleted() {
    let set = gameserverset("s", 3, None);
    let servers = vec![
        on("ok", "n1", 0),
        GameServerBuilder::new("sick").node("n1").state(S::Unhealthy).created(0).build(),
        GameServerBuilder::new("broken").state(S::Error).created(100).build(),
        GameServerBuilder::new("done").node("n1").state(S::Shutdown).created(0).build(),
        GameServerBuilder::new("going").node("n1").state(S::Shutdown).deleting().build(),
    ];
    let mut names = CountingNames::default();
    let p = plan(&set, &servers, &NodeLoad::default(), &mut names, at(110), &Default::default());
    assert_eq!(p.delete, ["sick", "done"]);
    // As Agones: a held Error server counts toward replicas, so a broken template cannot
    // turn into a creation storm.
    assert_eq!(p.create.len(), 1, "`ok` and the held `broken` count toward replicas");
    assert_eq!(p.requeue_at, Some(at(130)), "come back when the Error server is 30 s old");
    let later = plan(&set, &servers, &NodeLoad::default(), &mut names, at(130), &Default::default());
    assert!(later.delete.contains(&"broken".to_owned()));
    assert_eq!(later.create.len(), 2, "once deleted it no longer counts");
}

#[test]
fn the_error_hold_starts_when_the_server_entered_error() {
    let set = gameserverset("s", 1, None);
    let mut broken = GameServerBuilder::new("broken").state(S::Error).created(0).build();
    broken
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(stadion_crds::labels::ERRORED_AT.to_owned(), at(100).to_string());
    let servers = vec![broken];
    let mut names = CountingNames::default();
    let p = plan(&set, &servers, &NodeLoad::default(), &mut names, at(120), &Default::default());
    assert!(p.delete.is_empty() && p.create.is_empty(), "held 30 s from errored-at, not from creation");
    assert_eq!(p.requeue_at, Some(at(130)));
}

#[test]
fn allocation_overflow_labels_allocated_servers_beyond_replicas() {
    let mut set = gameserverset("s", 1, None);
    set.spec.allocation_overflow = Some(MetaPatch {
        labels: [("overflow".to_owned(), "true".to_owned())].into(),
        annotations: Default::default(),
    });
    let servers: Vec<GameServer> =
        (0..3).map(|i| GameServerBuilder::new(&format!("a{i}")).node("n1").state(S::Allocated).build()).collect();
    let p = plan(&set, &servers, &NodeLoad::default(), &mut CountingNames::default(), at(0), &Default::default());
    assert_eq!(p.overflow.len(), 2);
    assert!(p.overflow.iter().all(|gs| gs.metadata.labels.as_ref().unwrap()["overflow"] == "true"));
    assert!(p.shutdown.is_empty());
}

#[test]
fn status_counts_states_and_sums_counters_and_lists() {
    let servers = vec![
        GameServerBuilder::new("r").counter("rooms", 1, 4).list("players", 10, &["x"]).build(),
        GameServerBuilder::new("a").state(S::Allocated).counter("rooms", 3, 4).list("players", 10, &["y", "z"]).build(),
        GameServerBuilder::new("v").state(S::Reserved).build(),
        GameServerBuilder::new("s").state(S::Shutdown).build(),
        GameServerBuilder::new("u").state(S::Unhealthy).build(),
        GameServerBuilder::new("e").state(S::Error).build(),
    ];
    let status = aggregate_status(&servers);
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.allocated_replicas,
            status.reserved_replicas,
            status.shutdown_replicas
        ),
        (4, 1, 1, 1, 1),
        "a held Error server counts toward replicas, an Unhealthy one is replaced and does not"
    );
    let rooms = &status.counters["rooms"];
    assert_eq!((rooms.count, rooms.capacity, rooms.allocated_count, rooms.allocated_capacity), (4, 8, 3, 4));
    let players = &status.lists["players"];
    assert_eq!((players.count, players.capacity, players.allocated_count), (3, 20, 2));
}

fn arbitrary_servers() -> impl Strategy<Value = Vec<(u8, u8, u8)>> {
    // (state index, node index, creation second) per server.
    proptest::collection::vec((0u8..8, 0u8..4, 0u8..60), 0..40)
}

const STATES: [S; 8] =
    [S::Creating, S::Scheduled, S::RequestReady, S::Ready, S::Ready, S::Reserved, S::Allocated, S::Starting];

proptest! {
    /// No plan ever shuts down an Allocated or Reserved server, and repeatedly carrying plans out
    /// reaches max(replicas, protected) active servers and then stays put.
    #[test]
    fn set_scaler_never_touches_allocated_or_reserved_and_converges(
        specs in arbitrary_servers(),
        replicas in 0i32..30,
        distributed in any::<bool>(),
        batch in 1usize..10,
    ) {
        let mut set = gameserverset("p", replicas, Some("f"));
        set.spec.scheduling = Some(if distributed { SchedulingStrategy::Distributed } else { SchedulingStrategy::Packed });
        let mut servers: Vec<GameServer> = specs
            .iter()
            .enumerate()
            .map(|(i, (state, node, created))| {
                let b = GameServerBuilder::new(&format!("p-{i}")).state(STATES[*state as usize]).created(i64::from(*created));
                if *state == 0 { b.build() } else { b.node(&format!("n{node}")).build() }
            })
            .collect();
        let protected = servers.iter().filter(|gs| matches!(gs.state(), Some(S::Allocated | S::Reserved))).count();
        let options = SetScalingOptions { max_creations: batch, max_shutdowns: batch, ..SetScalingOptions::default() };
        let mut names = CountingNames::default();
        for _ in 0..100 {
            let load = NodeLoad::from_gameservers(servers.iter());
            let p = plan(&set, &servers, &load, &mut names, at(1000), &options);
            for gs in &p.shutdown {
                let before = servers.iter().find(|s| s.name() == gs.name()).unwrap();
                prop_assert!(!matches!(before.state(), Some(S::Allocated | S::Reserved)), "{} was {:?}", gs.name(), before.state());
            }
            for name in &p.delete {
                let before = servers.iter().find(|s| s.name() == name).unwrap();
                prop_assert!(before.state().is_some_and(|s| s.is_terminal()), "deleted live server {}", name);
            }
            prop_assert!(p.create.len() <= batch && p.shutdown.len() <= batch);
            if p.is_settled() {
                break;
            }
            carry_out(&mut servers, &p, "n0");
        }
        let active = servers.iter().filter(|gs| gs.state().is_some_and(|s| s.is_active())).count();
        prop_assert_eq!(active, (replicas as usize).max(protected));
        prop_assert_eq!(servers.iter().filter(|gs| matches!(gs.state(), Some(S::Allocated | S::Reserved))).count(), protected);
    }
}

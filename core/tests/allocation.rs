//! Allocation choice: selector order, label expressions, state, counters/lists filters and
//! actions, Packed and Distributed ordering, and the answer returned.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use stadion_core::NodeLoad;
use stadion_core::allocation::{apply_allocation, candidates};
use stadion_core::testing::{GameServerBuilder, at};
use stadion_crds::allocation::{
    CounterAction, CounterActionKind, CounterSelector, GameServerAllocationSpec, GameServerAllocationState,
    GameServerSelector, ListAction, ListSelector,
};
use stadion_crds::common::{MetaPatch, Priority, PriorityOrder, PriorityType, SchedulingStrategy};
use stadion_crds::{GameServer, GameServerAllocation, GameServerState as S, labels};

fn gsa(selectors: Vec<GameServerSelector>) -> GameServerAllocation {
    let mut gsa = GameServerAllocation::new(GameServerAllocationSpec { selectors, ..Default::default() });
    gsa.apply_defaults();
    gsa
}

fn match_labels(pairs: &[(&str, &str)]) -> GameServerSelector {
    GameServerSelector {
        label_selector: LabelSelector {
            match_labels: Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            match_expressions: None,
        },
        ..Default::default()
    }
}

fn names<'a>(c: &[stadion_core::allocation::AllocationCandidate<'a>]) -> Vec<&'a str> {
    c.iter().map(|c| c.gameserver.name()).collect()
}

#[test]
fn selectors_are_tried_in_order_and_only_ready_servers_match_by_default() {
    let servers = vec![
        GameServerBuilder::new("eu-1").node("n1").label("region", "eu").build(),
        GameServerBuilder::new("us-1").node("n1").label("region", "us").build(),
        GameServerBuilder::new("eu-busy").node("n1").label("region", "eu").state(S::Allocated).build(),
        GameServerBuilder::new("eu-starting").node("n1").label("region", "eu").state(S::Scheduled).build(),
        GameServerBuilder::new("eu-deleting").node("n1").label("region", "eu").deleting().build(),
    ];
    let request = gsa(vec![match_labels(&[("region", "us")]), match_labels(&[("region", "eu")])]);
    let found = candidates(&request, &servers, &NodeLoad::default(), 0).unwrap();
    assert_eq!(names(&found), ["us-1", "eu-1"]);
    assert_eq!(found.iter().map(|c| c.selector_index).collect::<Vec<_>>(), [0, 1]);

    let mut allocated = match_labels(&[("region", "eu")]);
    allocated.game_server_state = Some(S::Allocated);
    let found = candidates(&gsa(vec![allocated]), &servers, &NodeLoad::default(), 0).unwrap();
    assert_eq!(names(&found), ["eu-busy"]);
}

#[test]
fn match_expressions_filter_candidates() {
    let servers = vec![
        GameServerBuilder::new("gold").node("n1").label("tier", "gold").build(),
        GameServerBuilder::new("iron").node("n1").label("tier", "iron").build(),
        GameServerBuilder::new("plain").node("n1").build(),
    ];
    let selector = |op: &str, values: &[&str]| GameServerSelector {
        label_selector: LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: op.into(),
                values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
            }]),
        },
        ..Default::default()
    };
    let run = |s| {
        let found = candidates(&gsa(vec![s]), &servers, &NodeLoad::default(), 0).unwrap();
        let mut n = names(&found);
        n.sort();
        n
    };
    assert_eq!(run(selector("In", &["gold", "silver"])), ["gold"]);
    assert_eq!(run(selector("NotIn", &["gold"])), ["iron", "plain"]);
    assert_eq!(run(selector("Exists", &[])), ["gold", "iron"]);
    assert_eq!(run(selector("DoesNotExist", &[])), ["plain"]);
    assert!(candidates(&gsa(vec![selector("Like", &[])]), &servers, &NodeLoad::default(), 0).is_err());
}

#[test]
fn counter_and_list_filters() {
    let servers = vec![
        GameServerBuilder::new("full").node("n1").counter("rooms", 10, 10).list("players", 2, &["a", "b"]).build(),
        GameServerBuilder::new("roomy").node("n1").counter("rooms", 2, 10).list("players", 4, &["a"]).build(),
        GameServerBuilder::new("none").node("n1").build(),
    ];
    let mut by_counter = GameServerSelector::default();
    by_counter.counters.insert("rooms".into(), CounterSelector { min_available: 1, ..Default::default() });
    assert_eq!(names(&candidates(&gsa(vec![by_counter]), &servers, &NodeLoad::default(), 0).unwrap()), ["roomy"]);

    let mut by_count = GameServerSelector::default();
    by_count.counters.insert("rooms".into(), CounterSelector { min_count: 5, max_count: 10, ..Default::default() });
    assert_eq!(names(&candidates(&gsa(vec![by_count]), &servers, &NodeLoad::default(), 0).unwrap()), ["full"]);

    let mut by_list = GameServerSelector::default();
    by_list
        .lists
        .insert("players".into(), ListSelector { contains_value: "a".into(), min_available: 1, max_available: 0 });
    assert_eq!(names(&candidates(&gsa(vec![by_list]), &servers, &NodeLoad::default(), 0).unwrap()), ["roomy"]);
}

#[test]
fn packed_prefers_the_node_with_most_allocated_servers() {
    let servers = vec![
        GameServerBuilder::new("on-empty").node("empty").build(),
        GameServerBuilder::new("on-busy").node("busy").build(),
        GameServerBuilder::new("busy-alloc").node("busy").state(S::Allocated).build(),
        GameServerBuilder::new("on-mid").node("mid").build(),
        GameServerBuilder::new("mid-2").node("mid").build(),
    ];
    let load = NodeLoad::from_gameservers(&servers);
    let found = candidates(&gsa(vec![GameServerSelector::default()]), &servers, &load, 0).unwrap();
    assert_eq!(names(&found), ["on-busy", "mid-2", "on-mid", "on-empty"]);
}

#[test]
fn distributed_spreads_over_nodes_and_is_deterministic_per_seed() {
    let mut servers = Vec::new();
    for node in ["a", "b", "c"] {
        servers.push(GameServerBuilder::new(&format!("{node}-alloc")).node(node).state(S::Allocated).build());
        for i in 0..3 {
            servers.push(GameServerBuilder::new(&format!("{node}-{i}")).node(node).build());
        }
    }
    servers.push(GameServerBuilder::new("a-alloc2").node("a").state(S::Allocated).build());
    let mut request = gsa(vec![GameServerSelector::default()]);
    request.spec.scheduling = Some(SchedulingStrategy::Distributed);
    let load = NodeLoad::from_gameservers(&servers);
    let first = candidates(&request, &servers, &load, 42).unwrap();
    assert_ne!(first[0].gameserver.status.as_ref().unwrap().node_name, "a", "node a already has the most allocated");
    assert_eq!(names(&first), names(&candidates(&request, &servers, &load, 42).unwrap()));
    let orders: std::collections::BTreeSet<Vec<&str>> =
        (0..20).map(|seed| names(&candidates(&request, &servers, &load, seed).unwrap())).collect();
    assert!(orders.len() > 1, "different seeds shuffle ties differently");

    // With equal load, allocating one at a time (load updated after each) uses every node.
    let mut pool: Vec<GameServer> = servers.iter().filter(|g| g.name() != "a-alloc2").cloned().collect();
    let mut picked_nodes = Vec::new();
    for round in 0..3 {
        let load = NodeLoad::from_gameservers(&pool);
        let name = candidates(&request, &pool, &load, round).unwrap()[0].gameserver.name().to_owned();
        let gs = pool.iter_mut().find(|g| g.name() == name).unwrap();
        picked_nodes.push(gs.status.as_ref().unwrap().node_name.clone());
        gs.status.as_mut().unwrap().state = Some(S::Allocated);
    }
    picked_nodes.sort();
    assert_eq!(picked_nodes, ["a", "b", "c"]);
}

#[test]
fn priorities_order_equal_candidates() {
    let servers = vec![
        GameServerBuilder::new("half").node("n1").counter("rooms", 5, 10).build(),
        GameServerBuilder::new("nearly-full").node("n1").counter("rooms", 9, 10).build(),
        GameServerBuilder::new("empty").node("n1").counter("rooms", 0, 10).build(),
    ];
    let mut request = gsa(vec![GameServerSelector::default()]);
    request.spec.priorities =
        vec![Priority { type_: PriorityType::Counter, key: "rooms".into(), order: PriorityOrder::Ascending }];
    let load = NodeLoad::from_gameservers(&servers);
    assert_eq!(names(&candidates(&request, &servers, &load, 0).unwrap()), ["nearly-full", "half", "empty"]);
}

#[test]
fn apply_allocation_sets_state_metadata_counters_lists_and_answer() {
    let mut gs: GameServer = GameServerBuilder::new("gs-1")
        .node("n1")
        .counter("rooms", 1, 3)
        .counter("slots", 0, 1)
        .list("players", 3, &["p1", "p2"])
        .build();
    gs.status.as_mut().unwrap().ports =
        vec![stadion_crds::gameserver::GameServerStatusPort { name: "default".into(), port: 7001 }];
    let mut spec = GameServerAllocationSpec {
        metadata: Some(MetaPatch {
            labels: [("match".to_owned(), "m-1".to_owned())].into(),
            annotations: [("mode".to_owned(), "ranked".to_owned())].into(),
        }),
        ..Default::default()
    };
    spec.counters.insert(
        "rooms".into(),
        CounterAction { action: Some(CounterActionKind::Increment), amount: Some(1), capacity: None },
    );
    spec.counters.insert(
        "slots".into(),
        CounterAction { action: Some(CounterActionKind::Decrement), amount: Some(1), capacity: None },
    );
    spec.lists.insert(
        "players".into(),
        ListAction { add_values: vec!["p3".into(), "p4".into()], delete_values: vec!["p1".into()], capacity: None },
    );
    let (answer, warnings) = apply_allocation(&mut gs, &spec, at(60));

    assert_eq!(gs.state(), Some(S::Allocated));
    let meta = gs.metadata.annotations.as_ref().unwrap();
    assert_eq!(meta[labels::LAST_ALLOCATED], "2026-01-01T00:01:00Z");
    assert_eq!(meta["mode"], "ranked");
    assert_eq!(gs.metadata.labels.as_ref().unwrap()["match"], "m-1");
    let status = gs.status.as_ref().unwrap();
    assert_eq!(status.counters["rooms"].count, 2);
    assert_eq!(status.counters["slots"].count, 0, "decrement below zero is skipped");
    assert_eq!(status.lists["players"].values, ["p2", "p3", "p4"]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");

    assert_eq!(answer.state, GameServerAllocationState::Allocated);
    assert_eq!(
        (answer.game_server_name.as_str(), answer.node_name.as_str(), answer.address.as_str()),
        ("gs-1", "n1", "10.0.0.1")
    );
    assert_eq!(answer.ports[0].port, 7001);
    assert_eq!(answer.source, "local");
    assert_eq!(answer.metadata.unwrap().labels["match"], "m-1");
    assert_eq!(answer.counters["rooms"].count, 2);
}

#[test]
fn candidate_allocate_returns_the_object_to_write() {
    let servers = vec![GameServerBuilder::new("only").node("n1").build()];
    let request = gsa(vec![GameServerSelector::default()]);
    let found = candidates(&request, &servers, &NodeLoad::default(), 0).unwrap();
    let attempt = found[0].allocate(&request.spec, at(1));
    assert_eq!(attempt.gameserver.state(), Some(S::Allocated));
    assert_eq!(servers[0].state(), Some(S::Ready), "the observed copy is untouched");
    assert_eq!(attempt.status.game_server_name, "only");
}

mod properties {
    use proptest::prelude::*;
    use stadion_core::NodeLoad;
    use stadion_core::allocation::{candidates, selector_matches};
    use stadion_core::testing::GameServerBuilder;
    use stadion_crds::allocation::GameServerSelector;
    use stadion_crds::common::SchedulingStrategy;
    use stadion_crds::{GameServer, GameServerState as S};

    const STATES: [S; 5] = [S::Ready, S::Allocated, S::Reserved, S::Scheduled, S::Shutdown];
    const REGIONS: [&str; 3] = ["eu", "us", "ap"];

    fn servers() -> impl Strategy<Value = Vec<GameServer>> {
        proptest::collection::vec((0usize..5, 0usize..3, 0usize..3, any::<bool>()), 0..30).prop_map(|specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (state, region, node, deleting))| {
                    let b = GameServerBuilder::new(&format!("gs-{i}"))
                        .state(STATES[state])
                        .node(&format!("n{node}"))
                        .label("region", REGIONS[region]);
                    if deleting { b.deleting().build() } else { b.build() }
                })
                .collect()
        })
    }

    fn selectors() -> impl Strategy<Value = Vec<GameServerSelector>> {
        proptest::collection::vec((proptest::option::of(0usize..3), any::<bool>()), 1..4).prop_map(|specs| {
            specs
                .into_iter()
                .map(|(region, allocated)| {
                    let mut s = GameServerSelector::default();
                    if let Some(r) = region {
                        s.label_selector.match_labels = Some([("region".to_owned(), REGIONS[r].to_owned())].into());
                    }
                    s.game_server_state = Some(if allocated { S::Allocated } else { S::Ready });
                    s
                })
                .collect()
        })
    }

    proptest! {
        /// Every server matching some selector is offered exactly once, under the first selector
        /// it matches, in selector order; nothing else is offered (no deleting, starting, Reserved
        /// or Shutdown server, whatever the strategy and seed).
        #[test]
        fn candidates_are_exactly_the_matches_in_selector_order(
            servers in servers(),
            selectors in selectors(),
            distributed in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut gsa = super::gsa(selectors.clone());
            gsa.spec.scheduling = Some(if distributed { SchedulingStrategy::Distributed } else { SchedulingStrategy::Packed });
            let found = candidates(&gsa, &servers, &NodeLoad::from_gameservers(&servers), seed).unwrap();
            let mut previous_index = 0;
            for c in &found {
                let first = selectors.iter().position(|s| selector_matches(s, c.gameserver).unwrap());
                prop_assert_eq!(first, Some(c.selector_index));
                prop_assert!(c.selector_index >= previous_index);
                previous_index = c.selector_index;
                prop_assert!(c.gameserver.metadata.deletion_timestamp.is_none());
                prop_assert!(matches!(c.gameserver.state(), Some(S::Ready | S::Allocated)));
            }
            let offered: std::collections::BTreeSet<&str> = found.iter().map(|c| c.gameserver.name()).collect();
            prop_assert_eq!(offered.len(), found.len(), "a server offered twice");
            let expected = servers.iter().filter(|gs| selectors.iter().any(|s| selector_matches(s, gs).unwrap())).count();
            prop_assert_eq!(found.len(), expected);
        }
    }
}

mod admission {
    use stadion_core::allocator::{CapacityEvent, admit_allocation, wakes_waiting_matches};
    use stadion_crds::allocation::{GameServerAllocationSpec, GameServerSelector, MultiClusterSetting};
    use stadion_crds::common::SchedulingStrategy;
    use stadion_crds::{GameServerAllocation, GameServerState as S};

    #[test]
    fn admission_defaults_the_namespace_state_and_scheduling() {
        let spec = GameServerAllocationSpec { selectors: vec![GameServerSelector::default()], ..Default::default() };
        let admitted = admit_allocation(GameServerAllocation::new(spec)).expect("valid");
        assert_eq!(admitted.namespace(), "default");
        let request = admitted.request();
        assert_eq!(request.spec.scheduling, Some(SchedulingStrategy::Packed));
        assert_eq!(request.spec.selectors[0].game_server_state, Some(S::Ready));
        assert_eq!(request.kind, "GameServerAllocation");

        let mut elsewhere = GameServerAllocation::new(GameServerAllocationSpec::default());
        elsewhere.metadata.namespace = Some("arena".into());
        assert_eq!(admit_allocation(elsewhere).expect("valid").namespace(), "arena");
    }

    #[test]
    fn admission_refuses_every_invalid_field_with_its_path() {
        let selector = GameServerSelector { game_server_state: Some(S::Shutdown), ..Default::default() };
        let spec = GameServerAllocationSpec {
            selectors: vec![selector],
            multi_cluster_setting: Some(MultiClusterSetting { enabled: true, ..Default::default() }),
            ..Default::default()
        };
        let errors = admit_allocation(GameServerAllocation::new(spec)).expect_err("invalid");
        let fields: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(fields, ["spec.selectors[0].gameServerState", "spec.multiClusterSetting.enabled"]);
    }

    #[test]
    fn waiting_matches_wake_when_a_server_turns_ready_or_the_first_list_is_in() {
        let changed = |before, after| wakes_waiting_matches(CapacityEvent::Changed { before, after });
        assert!(changed(None, Some(S::Ready)), "a new Ready server");
        assert!(changed(Some(S::Scheduled), Some(S::Ready)), "a server turning Ready");
        assert!(changed(Some(S::Allocated), Some(S::Ready)), "an Allocated server given back");
        assert!(!changed(Some(S::Ready), Some(S::Ready)), "a Ready server that changed a label");
        assert!(!changed(Some(S::Ready), Some(S::Allocated)));
        assert!(!changed(None, Some(S::Scheduled)));
        assert!(!wakes_waiting_matches(CapacityEvent::Removed));
        assert!(wakes_waiting_matches(CapacityEvent::Synced));
    }
}

//! Shapes found in Agones' published example manifests that Stadion must accept the way Agones
//! does. The snippets are written for these tests; each isolates one behaviour.

use stadion_crds::common::DEFAULT_CAPACITY;
use stadion_crds::manifest::{Resource, parse_documents};
use stadion_crds::{FleetAutoscaler, GameServer};

fn only_gameserver(text: &str) -> GameServer {
    match parse_documents(text, "test.yaml").expect("parses").pop() {
        Some(Resource::GameServer(gs)) => *gs,
        other => panic!("expected a GameServer, got {other:?}"),
    }
}

fn only_autoscaler(text: &str) -> FleetAutoscaler {
    match parse_documents(text, "test.yaml").expect("parses").pop() {
        Some(Resource::FleetAutoscaler(fas)) => *fas,
        other => panic!("expected a FleetAutoscaler, got {other:?}"),
    }
}

const TRACKING: &str = "\
apiVersion: agones.dev/v1
kind: GameServer
metadata: {name: lobby}
spec:
  counters:
    sessions: {count: 2}
    matches: {count: null, capacity: 4}
    slots: {capacity: null}
  lists:
    squad: {capacity: null}
    bans: {values: null}
    tags: {capacity: 3, values: [a, b]}
  template:
    spec:
      containers: [{name: game, image: registry.example/game:1}]
";

#[test]
fn counters_and_lists_default_missing_or_null_capacity_to_1000() {
    let mut gs = only_gameserver(TRACKING);
    let counters = &gs.spec.counters;
    assert_eq!((counters["sessions"].count, counters["sessions"].capacity), (2, DEFAULT_CAPACITY));
    assert_eq!((counters["matches"].count, counters["matches"].capacity), (0, 4));
    assert_eq!((counters["slots"].count, counters["slots"].capacity), (0, DEFAULT_CAPACITY));
    let lists = &gs.spec.lists;
    assert_eq!(lists["squad"].capacity, DEFAULT_CAPACITY);
    assert!(lists["squad"].values.is_empty());
    assert_eq!(lists["bans"].capacity, DEFAULT_CAPACITY);
    assert!(lists["bans"].values.is_empty());
    assert_eq!((lists["tags"].capacity, lists["tags"].values.len()), (3, 2));

    gs.apply_defaults();
    assert!(gs.validate().is_empty(), "{:?}", gs.validate());
}

#[test]
fn the_only_container_overrides_a_mismatched_spec_container() {
    let mut gs = only_gameserver(
        "\
apiVersion: agones.dev/v1
kind: GameServer
metadata: {name: solo}
spec:
  container: placeholder-name
  ports: [{name: game, containerPort: 7000}]
  template:
    spec:
      containers: [{name: real-server, image: registry.example/game:1}]
",
    );
    gs.apply_defaults();
    assert_eq!(gs.spec.container.as_deref(), Some("real-server"));
    assert_eq!(gs.spec.ports[0].container.as_deref(), Some("real-server"));
    assert!(gs.validate().is_empty(), "{:?}", gs.validate());
}

#[test]
fn webhook_service_path_may_omit_the_leading_slash() {
    let mut fas = only_autoscaler(
        "\
apiVersion: autoscaling.agones.dev/v1
kind: FleetAutoscaler
metadata: {name: by-hook}
spec:
  fleetName: arena
  policy:
    type: Webhook
    webhook:
      service: {name: sizer, namespace: games, path: resize}
",
    );
    fas.apply_defaults();
    assert!(fas.validate().is_empty(), "{:?}", fas.validate());
}

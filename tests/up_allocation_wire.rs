//! Agones' allocation wire against the real `stadion up`: the gRPC client generated from Agones'
//! `allocation.proto` (same package, field numbers and enums) drives every request feature a
//! backend uses, and each answer is checked against the servers the runtime really holds: label
//! and expression selectors (all four operators), re-allocation of an Allocated server,
//! counter and list selectors, counter and list actions, priorities, and metadata.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use stadion_sdk::allocation as pb;
use stadion_sdk::allocation::allocation_service_client::AllocationServiceClient;
use support::{Scratch, Up, copy_example, eventually, up_on};
use tonic::transport::Channel;

const SETTLE: Duration = Duration::from_secs(60);

/// One standalone GameServer with `labels`, and optional counter/list lines under `spec`.
fn gameserver(name: &str, labels: &[(&str, &str)], extra_spec: &str) -> String {
    let labels: String = labels.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    format!(
        "apiVersion: agones.dev/v1
kind: GameServer
metadata:
  name: {name}
  labels:
{labels}spec:
  ports:
    - name: default
      containerPort: 7654
      protocol: UDP
  health:
    initialDelaySeconds: 1
    periodSeconds: 1
{extra_spec}  template:
    spec:
      containers:
        - name: game
          command: [\"stadion\", \"simple-game-server\"]
          args: [\"--health-interval-ms\", \"250\"]
"
    )
}

const NAMES: [&str; 13] = [
    "silver",
    "gold-us",
    "gold-eu",
    "gold-canary",
    "gold-nomap",
    "c-low",
    "c-high",
    "l-vip",
    "l-plain",
    "p-few",
    "p-mid",
    "p-many",
    "spare",
];

fn manifests() -> String {
    let rooms = |count: i64| format!("  counters:\n    rooms:\n      count: {count}\n      capacity: 10\n");
    let players = |values: &str| format!("  lists:\n    players:\n      capacity: 4\n      values: [{values}]\n");
    [
        gameserver("silver", &[("tier", "silver")], ""),
        gameserver("gold-us", &[("tier", "gold"), ("region", "us"), ("map", "dust")], &rooms(1)),
        gameserver("gold-eu", &[("tier", "gold"), ("region", "eu"), ("map", "dust")], ""),
        gameserver("gold-canary", &[("tier", "gold"), ("region", "us"), ("map", "dust"), ("canary", "yes")], ""),
        gameserver("gold-nomap", &[("tier", "gold"), ("region", "us")], ""),
        gameserver("c-low", &[("pool", "counters")], &rooms(8)),
        gameserver("c-high", &[("pool", "counters")], &rooms(1)),
        gameserver("l-vip", &[("pool", "lists")], &players("vip")),
        gameserver("l-plain", &[("pool", "lists")], &players("")),
        gameserver("p-few", &[("pool", "prio")], &rooms(8)),
        gameserver("p-mid", &[("pool", "prio")], &rooms(5)),
        gameserver("p-many", &[("pool", "prio")], &rooms(1)),
        gameserver("spare", &[("pool", "spare")], ""),
    ]
    .join("---\n")
}

fn start(scratch: &Scratch) -> Up {
    let servers = scratch.write("servers.yaml", &manifests());
    let queues = copy_example(scratch, "matchmaker.yaml", |text| text);
    up_on(scratch, &[&servers, &queues], "21800-21849")
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn by_labels(pairs: &[(&str, &str)]) -> pb::GameServerSelector {
    pb::GameServerSelector { match_labels: map(pairs), ..Default::default() }
}

async fn allocate(
    client: &mut AllocationServiceClient<Channel>,
    request: pb::AllocationRequest,
) -> pb::AllocationResponse {
    client.allocate(request.clone()).await.unwrap_or_else(|status| panic!("{request:?}: {status}")).into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_feature_of_agones_allocation_proto_over_grpc() {
    use pb::game_server_selector::GameServerState as SelectorState;
    use pb::label_match_expressions::Operator;
    use pb::priority::{Order, Type};

    let scratch = Scratch::new("up-allocation-wire");
    let up = start(&scratch);
    for name in NAMES {
        eventually(SETTLE, &format!("{name} Ready"), || async {
            (up.state_of(name).await.as_deref() == Some("Ready")).then_some(())
        })
        .await;
    }
    let mut client = AllocationServiceClient::connect(up.api.clone()).await.expect("gRPC connects");

    // matchLabels, with metadata written on the server.
    let response = allocate(
        &mut client,
        pb::AllocationRequest {
            namespace: "default".into(),
            game_server_selectors: vec![by_labels(&[("tier", "silver")])],
            metadata: Some(pb::MetaPatch { labels: map(&[("session", "s1")]), annotations: map(&[("map", "garden")]) }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(response.game_server_name, "silver");
    let metadata = response.metadata.expect("the answer carries the server's metadata");
    assert_eq!(metadata.labels.get("session").map(String::as_str), Some("s1"));
    assert_eq!(metadata.annotations.get("map").map(String::as_str), Some("garden"));
    let listed = up.gameserver("silver").await.expect("listed");
    assert_eq!((listed["state"].as_str(), listed["labels"]["session"].as_str()), (Some("Allocated"), Some("s1")));
    assert!(
        response.ports.iter().any(|p| p.name == "default" && (21800..=21849).contains(&p.port)),
        "{:?}",
        response.ports
    );

    // matchExpressions with every operator: only gold-us is gold, outside eu, with a map and no canary.
    let expression = |key: &str, operator: Operator, values: &[&str]| pb::LabelMatchExpressions {
        key: key.into(),
        operator: operator as i32,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    };
    let expressions = pb::GameServerSelector {
        match_expressions: vec![
            expression("tier", Operator::In, &["gold"]),
            expression("region", Operator::NotIn, &["eu"]),
            expression("map", Operator::Exists, &[]),
            expression("canary", Operator::DoesNotExist, &[]),
        ],
        ..Default::default()
    };
    let request = pb::AllocationRequest { game_server_selectors: vec![expressions.clone()], ..Default::default() };
    assert_eq!(allocate(&mut client, request).await.game_server_name, "gold-us");

    // gameServerState ALLOCATED hands the Allocated server out again (high-density servers);
    // a Ready-only request for the same selector now finds nothing.
    let again = pb::GameServerSelector { game_server_state: SelectorState::Allocated as i32, ..expressions.clone() };
    let request = pb::AllocationRequest {
        game_server_selectors: vec![again],
        counters: [(
            "rooms".to_owned(),
            pb::CounterAction { action: Some("Increment".into()), amount: Some(1), capacity: None },
        )]
        .into(),
        ..Default::default()
    };
    let response = allocate(&mut client, request).await;
    assert_eq!(response.game_server_name, "gold-us");
    assert_eq!(response.counters["rooms"].count, Some(2), "the Increment action ran on the re-allocated server");
    let request = pb::AllocationRequest { game_server_selectors: vec![expressions], ..Default::default() };
    let status = client.allocate(request).await.expect_err("no Ready server matches any more");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);

    // A counter selector: only c-high has 5 rooms free; its action sets a new capacity.
    let counters = pb::GameServerSelector {
        counters: [("rooms".to_owned(), pb::CounterSelector { min_available: 5, ..Default::default() })].into(),
        ..by_labels(&[("pool", "counters")])
    };
    let request = pb::AllocationRequest {
        game_server_selectors: vec![counters],
        counters: [(
            "rooms".to_owned(),
            pb::CounterAction { action: Some("Decrement".into()), amount: Some(1), capacity: Some(20) },
        )]
        .into(),
        ..Default::default()
    };
    let response = allocate(&mut client, request).await;
    assert_eq!(response.game_server_name, "c-high");
    assert_eq!((response.counters["rooms"].count, response.counters["rooms"].capacity), (Some(0), Some(20)));

    // A list selector on a value, and a list action adding a player.
    let lists = pb::GameServerSelector {
        lists: [("players".to_owned(), pb::ListSelector { contains_value: "vip".into(), ..Default::default() })].into(),
        ..by_labels(&[("pool", "lists")])
    };
    let request = pb::AllocationRequest {
        game_server_selectors: vec![lists],
        lists: [("players".to_owned(), pb::ListAction { add_values: vec!["p9".into()], ..Default::default() })].into(),
        ..Default::default()
    };
    let response = allocate(&mut client, request).await;
    assert_eq!(response.game_server_name, "l-vip");
    assert_eq!(response.lists["players"].values, ["vip", "p9"]);

    // Ordered selectors: the first that matches a Ready server wins, later ones are fallbacks.
    let request = pb::AllocationRequest {
        game_server_selectors: vec![by_labels(&[("pool", "nothing-here")]), by_labels(&[("pool", "lists")])],
        ..Default::default()
    };
    assert_eq!(allocate(&mut client, request).await.game_server_name, "l-plain");

    // Priorities: every server runs on this one node, so they decide; Descending available
    // rooms takes the emptiest, Ascending the fullest, and p-mid is left.
    let priority =
        |order: Order| pb::Priority { r#type: Type::Counter as i32, key: "rooms".into(), order: order as i32 };
    for (order, expected) in [(Order::Descending, "p-many"), (Order::Ascending, "p-few")] {
        let request = pb::AllocationRequest {
            game_server_selectors: vec![by_labels(&[("pool", "prio")])],
            priorities: vec![priority(order)],
            ..Default::default()
        };
        assert_eq!(allocate(&mut client, request).await.game_server_name, expected, "{order:?}");
    }

    // Every answer above was a distinct allocation of the server it named; nothing else moved.
    let allocated = eventually(SETTLE, "allocations listed", || async {
        let all = support::get_json(&up.http, &format!("{}/api/gameservers", up.admin)).await?;
        let allocated: Vec<String> = all
            .as_array()?
            .iter()
            .filter(|gs| gs["state"] == "Allocated")
            .filter_map(|gs| gs["name"].as_str().map(str::to_owned))
            .collect();
        (allocated.len() == 7).then_some(allocated)
    })
    .await;
    let mut allocated = allocated;
    allocated.sort();
    assert_eq!(allocated, ["c-high", "gold-us", "l-plain", "l-vip", "p-few", "p-many", "silver"]);
}

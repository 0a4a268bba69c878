use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stadion_core::allocator::{AllocateError, AllocationOutcome};
use stadion_crds::allocation::{GameServerAllocation, GameServerAllocationStatus};
use stadion_crds::common::{AggregatedCounterStatus, MetaPatch, SchedulingStrategy};
use stadion_crds::fleet::{FleetSpec, FleetStatus};
use stadion_crds::fleetautoscaler::{BufferPolicy, FleetAutoscalerPolicy, FleetAutoscalerSpec, FleetAutoscalerStatus};
use stadion_crds::gameserver::{GameServerSpec, GameServerStatus, PlayerStatus};
use stadion_crds::gameserverset::{GameServerSetSpec, GameServerSetStatus};
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet, GameServerState, labels};

use super::*;

fn server(name: &str, fleet: Option<&str>, state: GameServerState) -> GameServer {
    let mut gs = GameServer::new(name, GameServerSpec::default());
    if let Some(fleet) = fleet {
        gs.metadata.labels = Some([(labels::FLEET.to_owned(), fleet.to_owned())].into());
    }
    gs.status = Some(GameServerStatus { state: Some(state), node_name: "n1".into(), ..GameServerStatus::default() });
    gs
}

fn has(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
}

#[test]
fn gameserver_counts_use_agones_labels_and_none_for_a_lone_server() {
    let metrics = Metrics::new();
    let servers = [
        server("a", Some("f"), GameServerState::Ready),
        server("b", Some("f"), GameServerState::Ready),
        server("c", None, GameServerState::Allocated),
    ];
    metrics.observe_gameservers(&servers);
    let text = metrics.encode();
    has(&text, r#"agones_gameservers_count{fleet_name="f",namespace="default",type="Ready"} 2"#);
    has(&text, r#"agones_gameservers_count{fleet_name="none",namespace="default",type="Allocated"} 1"#);
}

#[test]
fn an_emptied_state_reads_zero_while_its_fleet_exists_and_goes_with_it() {
    let metrics = Metrics::new();
    let mut servers = vec![server("a", Some("f"), GameServerState::Ready), server("c", None, GameServerState::Ready)];
    metrics.observe_gameservers(&servers);
    servers[0] = server("a", Some("f"), GameServerState::Allocated);
    servers.pop();
    metrics.observe_gameservers(&servers);
    let text = metrics.encode();
    has(&text, r#"agones_gameservers_count{fleet_name="f",namespace="default",type="Ready"} 0"#);
    has(&text, r#"agones_gameservers_count{fleet_name="f",namespace="default",type="Allocated"} 1"#);
    assert!(!text.contains(r#"fleet_name="none""#), "a fleet with no server left has no series: {text}");
}

#[test]
fn player_gauges_per_server() {
    let metrics = Metrics::new();
    let mut gs = server("a", None, GameServerState::Allocated);
    gs.status.as_mut().unwrap().players = Some(PlayerStatus { count: 3, capacity: 10, ids: vec![] });
    metrics.observe_gameservers([&gs]);
    let text = metrics.encode();
    has(&text, r#"agones_gameserver_player_connected_total{fleet_name="none",name="a",namespace="default"} 3"#);
    has(&text, r#"agones_gameserver_player_capacity_total{fleet_name="none",name="a",namespace="default"} 7"#);
}

#[test]
fn state_changes_count_the_state_entered_and_time_the_state_left() {
    let metrics = Metrics::new();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    assert_eq!(metrics.observe_state_at(&server("a", Some("f"), GameServerState::Scheduled), t0), None);
    let ready = server("a", Some("f"), GameServerState::Ready);
    let change = metrics.observe_state_at(&ready, t0 + Duration::from_secs(3)).unwrap();
    assert_eq!((change.from, change.to, change.seconds), (GameServerState::Scheduled, GameServerState::Ready, 3.0));
    assert_eq!(metrics.observe_state_at(&ready, t0 + Duration::from_secs(9)), None, "same state: no change");
    let text = metrics.encode();
    has(&text, r#"agones_gameservers_total{fleet_name="f",namespace="default",type="Ready"} 1"#);
    has(&text, r#"agones_gameserver_state_duration_count{fleet_name="f",namespace="default",type="Scheduled"} 1"#);
    has(&text, r#"agones_gameserver_state_duration_sum{fleet_name="f",namespace="default",type="Scheduled"} 3.0"#);
    has(
        &text,
        r#"agones_gameserver_state_duration_bucket{le="2.0",fleet_name="f",namespace="default",type="Scheduled"} 0"#,
    );
    has(
        &text,
        r#"agones_gameserver_state_duration_bucket{le="4.0",fleet_name="f",namespace="default",type="Scheduled"} 1"#,
    );
}

#[test]
fn fleet_replicas_rollout_counters_and_lists() {
    let metrics = Metrics::new();
    let mut fleet = Fleet::new("f", FleetSpec { replicas: 3, ..FleetSpec::default() });
    let aggregate = AggregatedCounterStatus { allocated_count: 1, allocated_capacity: 5, count: 2, capacity: 10 };
    fleet.status = Some(FleetStatus {
        replicas: 3,
        ready_replicas: 2,
        allocated_replicas: 1,
        counters: [("rooms".to_owned(), aggregate.clone())].into(),
        lists: [("players".to_owned(), aggregate)].into(),
        ..Default::default()
    });
    let mut set = GameServerSet::new(
        "f-abc",
        GameServerSetSpec { replicas: 3, template: fleet.spec.template.clone(), ..Default::default() },
    );
    set.metadata.labels = Some([(labels::FLEET.to_owned(), "f".to_owned())].into());
    set.status = Some(GameServerSetStatus { replicas: 2, ..Default::default() });
    metrics.observe_fleets([&fleet], [&set]);
    let text = metrics.encode();
    for (kind, value) in [("total", 3), ("allocated", 1), ("ready", 2), ("desired", 3), ("reserved", 0)] {
        has(&text, &format!(r#"agones_fleets_replicas_count{{name="f",namespace="default",type="{kind}"}} {value}"#));
    }
    has(&text, r#"agones_fleet_rollout_percent{name="f",namespace="default",type="current_replicas"} 2"#);
    has(&text, r#"agones_fleet_rollout_percent{name="f",namespace="default",type="desired_replicas"} 3"#);
    has(&text, r#"agones_fleet_counters{counter="rooms",name="f",namespace="default",type="allocated_count"} 1"#);
    has(&text, r#"agones_fleet_counters{counter="rooms",name="f",namespace="default",type="total_capacity"} 10"#);
    has(&text, r#"agones_fleet_lists{list="players",name="f",namespace="default",type="allocated_capacity"} 5"#);
    has(&text, r#"agones_fleet_lists{list="players",name="f",namespace="default",type="total_count"} 2"#);
    metrics.observe_fleets([], []);
    assert!(!metrics.encode().contains(r#"name="f""#), "a deleted fleet's series go");
}

#[test]
fn autoscaler_status_and_buffer_policy() {
    let metrics = Metrics::new();
    let buffer = |size| FleetAutoscalerPolicy {
        buffer: Some(BufferPolicy { max_replicas: 10, min_replicas: 2, buffer_size: size }),
        ..Default::default()
    };
    let mut count = FleetAutoscaler::new(
        "by-count",
        FleetAutoscalerSpec { fleet_name: "f".into(), policy: buffer(IntOrString::Int(3)), ..Default::default() },
    );
    count.status = Some(FleetAutoscalerStatus {
        current_replicas: 4,
        desired_replicas: 5,
        able_to_scale: true,
        ..Default::default()
    });
    let percent = FleetAutoscaler::new(
        "by-percent",
        FleetAutoscalerSpec {
            fleet_name: "g".into(),
            policy: buffer(IntOrString::String("20%".into())),
            ..Default::default()
        },
    );
    metrics.observe_autoscalers([&count, &percent]);
    let text = metrics.encode();
    has(
        &text,
        r#"agones_fleet_autoscalers_desired_replicas_count{fleet_name="f",name="by-count",namespace="default"} 5"#,
    );
    has(
        &text,
        r#"agones_fleet_autoscalers_current_replicas_count{fleet_name="f",name="by-count",namespace="default"} 4"#,
    );
    has(&text, r#"agones_fleet_autoscalers_able_to_scale{fleet_name="f",name="by-count",namespace="default"} 1"#);
    has(&text, r#"agones_fleet_autoscalers_limited{fleet_name="f",name="by-count",namespace="default"} 0"#);
    has(
        &text,
        r#"agones_fleet_autoscalers_buffer_limits{fleet_name="f",name="by-count",namespace="default",type="max"} 10"#,
    );
    has(
        &text,
        r#"agones_fleet_autoscalers_buffer_limits{fleet_name="f",name="by-count",namespace="default",type="min"} 2"#,
    );
    has(
        &text,
        r#"agones_fleet_autoscalers_buffer_size{fleet_name="f",name="by-count",namespace="default",type="count"} 3"#,
    );
    has(
        &text,
        r#"agones_fleet_autoscalers_buffer_size{fleet_name="g",name="by-percent",namespace="default",type="percentage"} 20"#,
    );
}

#[test]
fn nodes_with_and_without_servers() {
    let metrics = Metrics::new();
    let servers = [server("a", None, GameServerState::Ready), server("b", None, GameServerState::Ready)];
    metrics.observe_nodes(["n1", "n2"], &servers, true);
    metrics.observe_nodes(["n1", "n2"], &servers, false);
    let text = metrics.encode();
    has(&text, r#"agones_nodes_count{empty="true"} 1"#);
    has(&text, r#"agones_nodes_count{empty="false"} 1"#);
    has(&text, "agones_gameservers_node_count_count 2");
    has(&text, r#"agones_gameservers_node_count_bucket{le="0.00001"} 1"#);
    has(&text, r#"agones_gameservers_node_count_bucket{le="2.00001"} 2"#);
}

#[test]
fn allocation_labels_follow_agones() {
    let mut request = GameServerAllocation::default();
    request.spec.scheduling = Some(SchedulingStrategy::Distributed);
    let status = GameServerAllocationStatus {
        metadata: Some(MetaPatch { labels: [(labels::FLEET.to_owned(), "f".to_owned())].into(), ..Default::default() }),
        ..Default::default()
    };
    let allocated = allocation_labels(&request, &Ok(AllocationOutcome::Allocated(status)));
    assert_eq!(
        allocated,
        AllocationLabels {
            cluster_name: "none".into(),
            fleet_name: "f".into(),
            is_multicluster: "false".into(),
            scheduling_strategy: "Distributed".into(),
            status: "Allocated".into(),
        }
    );
    let failed = allocation_labels(&request, &Err(AllocateError::Backend("down".into())));
    assert_eq!((failed.status.as_str(), failed.fleet_name.as_str()), ("error", "none"));
    let metrics = Metrics::new();
    metrics.observe_allocation(&allocated, Duration::from_millis(30));
    metrics.observe_allocation_attempts(&allocated, 2);
    let text = metrics.encode();
    has(
        &text,
        r#"agones_gameserver_allocations_retry_total_bucket{le="1.0",cluster_name="none",fleet_name="f",is_multicluster="false",scheduling_strategy="Distributed",status="Allocated"} 0"#,
    );
    has(
        &text,
        r#"agones_gameserver_allocations_retry_total_bucket{le="2.0",cluster_name="none",fleet_name="f",is_multicluster="false",scheduling_strategy="Distributed",status="Allocated"} 1"#,
    );
    has(
        &text,
        r#"agones_gameserver_allocations_duration_seconds_bucket{le="0.025",cluster_name="none",fleet_name="f",is_multicluster="false",scheduling_strategy="Distributed",status="Allocated"} 0"#,
    );
    has(
        &text,
        r#"agones_gameserver_allocations_duration_seconds_bucket{le="0.05",cluster_name="none",fleet_name="f",is_multicluster="false",scheduling_strategy="Distributed",status="Allocated"} 1"#,
    );
}

#[test]
fn every_listed_family_is_exported_and_only_the_controller_adds_its_own() {
    let metrics = Metrics::new();
    let mut gs = server("a", Some("f"), GameServerState::Scheduled);
    gs.status.as_mut().unwrap().players = Some(PlayerStatus { count: 1, capacity: 2, ids: vec![] });
    metrics.observe_state(&gs);
    gs.status.as_mut().unwrap().state = Some(GameServerState::Ready);
    metrics.observe_state(&gs);
    metrics.observe_gameservers([&gs]);
    let mut fleet = Fleet::new("f", FleetSpec::default());
    let aggregate = AggregatedCounterStatus::default();
    fleet.status = Some(FleetStatus {
        counters: [("rooms".to_owned(), aggregate.clone())].into(),
        lists: [("players".to_owned(), aggregate)].into(),
        ..Default::default()
    });
    metrics.observe_fleets([&fleet], []);
    let policy = FleetAutoscalerPolicy {
        buffer: Some(BufferPolicy { max_replicas: 1, min_replicas: 0, buffer_size: IntOrString::Int(1) }),
        ..Default::default()
    };
    let fas = FleetAutoscaler::new("fas", FleetAutoscalerSpec { fleet_name: "f".into(), policy, ..Default::default() });
    metrics.observe_autoscalers([&fas]);
    metrics.observe_nodes(["n1"], [&gs], true);
    let labels = allocation_labels(&GameServerAllocation::default(), &Ok(AllocationOutcome::UnAllocated));
    metrics.observe_allocation(&labels, Duration::from_millis(1));
    metrics.observe_allocation_attempts(&labels, 0);
    let text = metrics.encode();
    for family in AGONES_FAMILIES {
        // prometheus-client names a counter's family without its `_total` suffix.
        let base = if *family == "agones_gameservers_total" { "agones_gameservers" } else { family };
        assert!(text.contains(&format!("# TYPE {base} ")), "{family} is not exported:\n{text}");
    }
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(types, AGONES_FAMILIES.len(), "AGONES_FAMILIES lists every family:\n{text}");
    assert!(!text.contains("stadion_"), "{text}");
    assert!(Metrics::controller().encode().contains("# TYPE stadion_leader gauge"));
}

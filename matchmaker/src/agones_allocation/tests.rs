//! Unit tests of the conversions and of the service over an in-test allocator.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use stadion_core::allocator::AdmittedAllocation;
use stadion_crds::allocation::{
    CounterActionKind, GameServerAllocation, GameServerAllocationState, GameServerAllocationStatus,
};
use stadion_crds::common::{CounterStatus, ListStatus, MetaPatch, PriorityOrder, PriorityType, SchedulingStrategy};
use stadion_crds::gameserver::{GameServerState, GameServerStatusPort};
use stadion_crds::k8s_openapi::api::core::v1::NodeAddress;
use stadion_crds::{FieldError, FieldErrors};
use stadion_sdk::allocation as pb;
use tokio::sync::watch;

use super::request::{MetadataSource, request_paths, to_allocation};
use super::{AgonesAllocationService, grpc_code, http_status, json, response};
use crate::metrics::Metrics;
use crate::{AllocateError, AllocationOutcome, Allocator, Error};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn selector(pairs: &[(&str, &str)]) -> pb::GameServerSelector {
    pb::GameServerSelector { match_labels: labels(pairs), ..Default::default() }
}

fn convert(request: pb::AllocationRequest) -> GameServerAllocation {
    to_allocation(request).expect("converts").allocation
}

fn error_paths(request: pb::AllocationRequest) -> Vec<String> {
    let errors = to_allocation(request).expect_err("rejected");
    errors.paths().into_iter().map(str::to_owned).collect()
}

#[test]
fn converts_selectors_in_order_with_state_expressions_counters_lists_and_players() {
    let mut first = selector(&[("agones.dev/fleet", "blue")]);
    first.game_server_state = pb::game_server_selector::GameServerState::Allocated as i32;
    first.match_expressions = vec![
        pb::LabelMatchExpressions {
            key: "tier".into(),
            operator: pb::label_match_expressions::Operator::In as i32,
            values: vec!["gold".into()],
        },
        pb::LabelMatchExpressions {
            key: "canary".into(),
            operator: pb::label_match_expressions::Operator::DoesNotExist as i32,
            values: vec![],
        },
    ];
    first
        .counters
        .insert("rooms".into(), pb::CounterSelector { min_count: 1, max_count: 4, min_available: 2, max_available: 0 });
    first.lists.insert(
        "players".into(),
        pb::ListSelector { contains_value: "alice".into(), min_available: 1, max_available: 9 },
    );
    first.players = Some(pb::PlayerSelector { min_available: 2, max_available: 10 });
    let request = pb::AllocationRequest {
        game_server_selectors: vec![first, selector(&[("agones.dev/fleet", "green")])],
        ..Default::default()
    };
    let allocation = convert(request);
    assert_eq!(allocation.metadata.namespace.as_deref(), Some("default"));
    let selectors = &allocation.spec.selectors;
    assert_eq!(selectors.len(), 2);
    assert_eq!(selectors[0].label_selector.match_labels, Some(labels(&[("agones.dev/fleet", "blue")])));
    assert_eq!(selectors[1].label_selector.match_labels, Some(labels(&[("agones.dev/fleet", "green")])));
    assert_eq!(selectors[0].game_server_state, Some(GameServerState::Allocated));
    assert_eq!(selectors[1].game_server_state, Some(GameServerState::Ready));
    let expressions = selectors[0].label_selector.match_expressions.clone().unwrap_or_default();
    assert_eq!(expressions.len(), 2);
    assert_eq!((expressions[0].key.as_str(), expressions[0].operator.as_str()), ("tier", "In"));
    assert_eq!(expressions[0].values, Some(vec!["gold".to_owned()]));
    assert_eq!(expressions[1].values, None);
    assert_eq!(selectors[0].counters["rooms"].min_count, 1);
    assert_eq!(selectors[0].counters["rooms"].max_count, 4);
    assert_eq!(selectors[0].counters["rooms"].min_available, 2);
    assert_eq!(selectors[0].lists["players"].contains_value, "alice");
    assert_eq!(selectors[0].lists["players"].max_available, 9);
    let players = selectors[0].players.clone().unwrap_or_default();
    assert_eq!((players.min_available, players.max_available), (2, 10));
    assert!(allocation.validate().is_empty(), "{}", allocation.validate());
}

#[test]
fn converts_scheduling_metadata_priorities_and_actions() {
    let mut request = pb::AllocationRequest {
        namespace: "games".into(),
        scheduling: pb::allocation_request::SchedulingStrategy::Distributed as i32,
        metadata: Some(pb::MetaPatch { labels: labels(&[("match", "m-1")]), annotations: labels(&[("map", "dust2")]) }),
        priorities: vec![pb::Priority {
            r#type: pb::priority::Type::List as i32,
            key: "players".into(),
            order: pb::priority::Order::Descending as i32,
        }],
        ..Default::default()
    };
    request.counters.insert(
        "rooms".into(),
        pb::CounterAction { action: Some("Increment".into()), amount: Some(2), capacity: Some(10) },
    );
    request.counters.insert(
        "seats".into(),
        pb::CounterAction { action: Some("decrement".into()), amount: Some(1), capacity: None },
    );
    request.lists.insert(
        "players".into(),
        pb::ListAction { add_values: vec!["bob".into()], capacity: Some(8), delete_values: vec!["eve".into()] },
    );
    let allocation = convert(request);
    assert_eq!(allocation.metadata.namespace.as_deref(), Some("games"));
    let spec = &allocation.spec;
    assert_eq!(spec.scheduling, Some(SchedulingStrategy::Distributed));
    let metadata = spec.metadata.clone().unwrap_or_default();
    assert_eq!(metadata.labels, labels(&[("match", "m-1")]));
    assert_eq!(metadata.annotations, labels(&[("map", "dust2")]));
    assert_eq!(spec.priorities.len(), 1);
    assert_eq!(spec.priorities[0].type_, PriorityType::List);
    assert_eq!(spec.priorities[0].order, PriorityOrder::Descending);
    assert_eq!(spec.counters["rooms"].action, Some(CounterActionKind::Increment));
    assert_eq!((spec.counters["rooms"].amount, spec.counters["rooms"].capacity), (Some(2), Some(10)));
    assert_eq!(spec.counters["seats"].action, Some(CounterActionKind::Decrement));
    assert_eq!(spec.lists["players"].add_values, vec!["bob".to_owned()]);
    assert_eq!(spec.lists["players"].delete_values, vec!["eve".to_owned()]);
    assert_eq!(spec.lists["players"].capacity, Some(8));
}

#[test]
#[allow(deprecated)]
fn deprecated_fields_are_used_only_when_their_successors_are_unset() {
    let request = pb::AllocationRequest {
        required_game_server_selector: Some(selector(&[("game", "chess")])),
        preferred_game_server_selectors: vec![selector(&[("tier", "gold")])],
        meta_patch: Some(pb::MetaPatch { labels: labels(&[("old", "yes")]), ..Default::default() }),
        ..Default::default()
    };
    let converted = to_allocation(request).expect("converts");
    assert_eq!(converted.metadata_source, MetadataSource::MetaPatch);
    let allocation = converted.allocation;
    assert_eq!(allocation.spec.metadata.clone().unwrap_or_default().labels, labels(&[("old", "yes")]));
    // Preferred (narrowed by required) first, then required.
    let effective = allocation.effective_selectors();
    assert_eq!(effective.len(), 2);
    assert_eq!(effective[0].label_selector.match_labels, Some(labels(&[("game", "chess"), ("tier", "gold")])));
    assert_eq!(effective[1].label_selector.match_labels, Some(labels(&[("game", "chess")])));

    let both = pb::AllocationRequest {
        meta_patch: Some(pb::MetaPatch { labels: labels(&[("old", "yes")]), ..Default::default() }),
        metadata: Some(pb::MetaPatch { labels: labels(&[("new", "yes")]), ..Default::default() }),
        game_server_selectors: vec![selector(&[("fleet", "a")])],
        required_game_server_selector: Some(selector(&[("fleet", "b")])),
        ..Default::default()
    };
    let converted = to_allocation(both).expect("converts");
    assert_eq!(converted.metadata_source, MetadataSource::Metadata);
    assert_eq!(converted.allocation.spec.metadata.clone().unwrap_or_default().labels, labels(&[("new", "yes")]));
    let effective = converted.allocation.effective_selectors();
    assert_eq!(effective.len(), 1);
    assert_eq!(effective[0].label_selector.match_labels, Some(labels(&[("fleet", "a")])));
}

#[test]
fn rejects_unknown_enums_multi_cluster_bad_namespace_and_bad_actions_naming_each_field() {
    let mut bad_state = selector(&[]);
    bad_state.game_server_state = 7;
    let mut request = pb::AllocationRequest {
        namespace: "Not_A_Namespace".into(),
        multi_cluster_setting: Some(pb::MultiClusterSetting { enabled: true, policy_selector: None }),
        scheduling: 5,
        game_server_selectors: vec![selector(&[]), bad_state],
        priorities: vec![pb::Priority { r#type: 3, key: "x".into(), order: 9 }],
        ..Default::default()
    };
    request
        .counters
        .insert("rooms".into(), pb::CounterAction { action: Some("Double".into()), amount: Some(1), capacity: None });
    let paths = error_paths(request);
    for expected in [
        "namespace",
        "multiClusterSetting.enabled",
        "scheduling",
        "gameServerSelectors[1].gameServerState",
        "priorities[0].type",
        "priorities[0].order",
        "counters[rooms].action",
    ] {
        assert!(paths.iter().any(|p| p == expected), "{expected} not in {paths:?}");
    }
    // A disabled multi-cluster setting is fine.
    let request = pb::AllocationRequest {
        multi_cluster_setting: Some(pb::MultiClusterSetting { enabled: false, policy_selector: None }),
        ..Default::default()
    };
    assert!(to_allocation(request).is_ok());
}

#[test]
fn validation_paths_are_renamed_to_request_fields() {
    let errors = FieldErrors(vec![
        FieldError::new("spec.selectors[0].matchLabels", "bad key"),
        FieldError::new("spec.required.matchExpressions[0].values", "empty"),
        FieldError::new("spec.preferred[1].gameServerState", "no"),
        FieldError::new("spec.metadata.labels", "bad"),
        FieldError::new("spec.counters[rooms].amount", "negative"),
        FieldError::new("spec.listsX", "not a list path"),
        FieldError::new("metadata.namespace", "bad"),
    ]);
    let renamed = request_paths(errors.clone(), MetadataSource::Metadata);
    assert_eq!(
        renamed.paths(),
        vec![
            "gameServerSelectors[0].matchLabels",
            "requiredGameServerSelector.matchExpressions[0].values",
            "preferredGameServerSelectors[1].gameServerState",
            "metadata.labels",
            "counters[rooms].amount",
            "spec.listsX",
            "namespace",
        ]
    );
    assert_eq!(request_paths(errors, MetadataSource::MetaPatch).paths()[3], "metaPatch.labels");
}

fn allocated_status() -> GameServerAllocationStatus {
    GameServerAllocationStatus {
        state: GameServerAllocationState::Allocated,
        game_server_name: "gs-1".into(),
        ports: vec![GameServerStatusPort { name: "default".into(), port: 7001 }],
        address: "10.0.0.7".into(),
        addresses: vec![NodeAddress { type_: "InternalIP".into(), address: "10.0.0.7".into() }],
        node_name: "node-a".into(),
        source: "local".into(),
        metadata: Some(MetaPatch { labels: labels(&[("match", "m-1")]), annotations: labels(&[("map", "dust2")]) }),
        counters: [("rooms".to_owned(), CounterStatus { count: 3, capacity: 10 })].into(),
        lists: [("players".to_owned(), ListStatus { capacity: 8, values: vec!["bob".into()] })].into(),
    }
}

#[test]
fn response_carries_everything_agones_fills() {
    let response = response::to_response(allocated_status());
    assert_eq!(response.game_server_name, "gs-1");
    assert_eq!(response.ports.len(), 1);
    assert_eq!((response.ports[0].name.as_str(), response.ports[0].port), ("default", 7001));
    assert_eq!(response.address, "10.0.0.7");
    assert_eq!(response.addresses[0].r#type, "InternalIP");
    assert_eq!(response.node_name, "node-a");
    assert_eq!(response.source, "local");
    let metadata = response.metadata.clone().unwrap_or_default();
    assert_eq!(metadata.labels, labels(&[("match", "m-1")]));
    assert_eq!(metadata.annotations, labels(&[("map", "dust2")]));
    assert_eq!((response.counters["rooms"].count, response.counters["rooms"].capacity), (Some(3), Some(10)));
    assert_eq!(response.lists["players"].values, vec!["bob".to_owned()]);
    assert_eq!(response.lists["players"].capacity, Some(8));

    let body = json::response_body(&response);
    assert_eq!(
        body,
        json!({
            "gameServerName": "gs-1",
            "ports": [{"name": "default", "port": 7001}],
            "address": "10.0.0.7",
            "addresses": [{"type": "InternalIP", "address": "10.0.0.7"}],
            "nodeName": "node-a",
            "source": "local",
            "metadata": {"labels": {"match": "m-1"}, "annotations": {"map": "dust2"}},
            "counters": {"rooms": {"count": "3", "capacity": "10"}},
            "lists": {"players": {"values": ["bob"], "capacity": "8"}}
        })
    );
    // Unset fields are still emitted, as gRPC-gateway does; absent metadata is left out.
    let empty = json::response_body(&pb::AllocationResponse::default());
    assert_eq!(empty["gameServerName"], "");
    assert_eq!(empty["ports"], json!([]));
    assert_eq!(empty["counters"], json!({}));
    assert!(empty.get("metadata").is_none());
}

#[test]
fn json_accepts_enum_names_or_numbers_and_integers_as_strings() {
    let body = br#"{
        "namespace": "games",
        "scheduling": "Distributed",
        "gameServerSelectors": [
            {"matchLabels": {"agones.dev/fleet": "blue"}, "gameServerState": "ALLOCATED",
             "counters": {"rooms": {"minCount": "1", "maxAvailable": 4}},
             "lists": {"players": {"containsValue": "alice", "minAvailable": 1.0}},
             "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["bronze"]}]},
            {"gameServerState": 0, "players": {"minAvailable": "2"},
             "matchExpressions": [{"key": "canary", "operator": 3}]}
        ],
        "priorities": [{"type": 1, "key": "players", "order": "Descending"}],
        "counters": {"rooms": {"action": "Increment", "amount": "1", "capacity": null}},
        "lists": {"players": {"addValues": ["bob"], "capacity": 8}},
        "metadata": {"labels": {"match": "m-1"}},
        "multiClusterSetting": null
    }"#;
    let request = json::parse_request(body).expect("parses");
    assert_eq!(request.namespace, "games");
    assert_eq!(request.scheduling, 1);
    assert_eq!(request.game_server_selectors.len(), 2);
    let first = &request.game_server_selectors[0];
    assert_eq!(first.game_server_state, 1);
    assert_eq!(first.counters["rooms"].min_count, 1);
    assert_eq!(first.counters["rooms"].max_available, 4);
    assert_eq!(first.lists["players"].min_available, 1);
    // The operator enum by name or by number, as Agones' gateway takes it.
    assert_eq!(first.match_expressions[0].operator, pb::label_match_expressions::Operator::NotIn as i32);
    let second = &request.game_server_selectors[1];
    assert_eq!(second.match_expressions[0].operator, pb::label_match_expressions::Operator::DoesNotExist as i32);
    assert_eq!(request.game_server_selectors[1].players.as_ref().map(|p| p.min_available), Some(2));
    assert_eq!((request.priorities[0].r#type, request.priorities[0].order), (1, 1));
    assert_eq!(request.counters["rooms"].amount, Some(1));
    assert_eq!(request.counters["rooms"].capacity, None);
    assert_eq!(request.lists["players"].capacity, Some(8));
    assert_eq!(request.metadata.as_ref().map(|m| m.labels.clone()), Some(labels(&[("match", "m-1")])));
    assert!(request.multi_cluster_setting.is_none());

    assert_eq!(json::parse_request(b"").expect("empty body"), pb::AllocationRequest::default());
    assert_eq!(json::parse_request(b" \n").expect("blank body"), pb::AllocationRequest::default());
}

fn invalid_field(error: Error) -> String {
    match error {
        Error::Invalid(errors) => errors.paths().join(","),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn json_errors_name_the_field() {
    let error = json::parse_request(br#"{"gameServerSelectors": [{}, {"gameServerState": "BUSY"}]}"#).unwrap_err();
    assert_eq!(invalid_field(error), "gameServerSelectors[1].gameServerState");
    let error = json::parse_request(br#"{"scheduling": "Sideways", "priorities": [{"order": "Up"}]}"#).unwrap_err();
    assert_eq!(invalid_field(error), "scheduling,priorities[0].order");
    let error = json::parse_request(br#"{"gameServerSelectors": [{"matchLabels": "x"}]}"#).unwrap_err();
    assert_eq!(invalid_field(error), "gameServerSelectors[0].matchLabels");
    let error = json::parse_request(br#"{"counters": {"a": {"amount": "lots"}}}"#).unwrap_err();
    assert_eq!(invalid_field(error), "counters.a.amount");
    let error = json::parse_request(br#"{"gameServerSelectors": [{"players": {"minAvailable": -1}}]}"#).unwrap_err();
    assert_eq!(invalid_field(error), "gameServerSelectors[0].players.minAvailable");
    for malformed in [&b"{"[..], b"{\"namespace\": }", b"{} trailing"] {
        let error = json::parse_request(malformed).unwrap_err();
        assert!(matches!(error, Error::MalformedBody(_)), "{error:?}");
        assert_eq!(http_status(&error), 400);
    }
}

/// Records requests and answers with a fixed result.
struct ScriptedAllocator {
    answer: Result<AllocationOutcome, AllocateError>,
    seen: Mutex<Vec<GameServerAllocation>>,
    capacity: watch::Sender<u64>,
}

impl ScriptedAllocator {
    fn new(answer: Result<AllocationOutcome, AllocateError>) -> Arc<Self> {
        Arc::new(Self { answer, seen: Mutex::new(Vec::new()), capacity: watch::channel(0).0 })
    }
}

#[async_trait]
impl Allocator for ScriptedAllocator {
    async fn allocate(&self, request: AdmittedAllocation) -> Result<AllocationOutcome, AllocateError> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(request.into_inner());
        self.answer.clone()
    }

    fn capacity_changes(&self) -> watch::Receiver<u64> {
        self.capacity.subscribe()
    }
}

fn service(allocator: Arc<ScriptedAllocator>) -> (AgonesAllocationService, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (AgonesAllocationService::new(allocator, metrics.clone()), metrics)
}

#[tokio::test]
async fn allocates_through_the_allocator_with_defaults_applied() {
    let allocator = ScriptedAllocator::new(Ok(AllocationOutcome::Allocated(allocated_status())));
    let (service, metrics) = service(allocator.clone());
    let request =
        pb::AllocationRequest { game_server_selectors: vec![selector(&[("fleet", "a")])], ..Default::default() };
    let response = service.allocate_request(request).await.expect("allocated");
    assert_eq!(response.game_server_name, "gs-1");
    let seen = allocator.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].metadata.namespace.as_deref(), Some("default"));
    assert_eq!(seen[0].spec.scheduling, Some(SchedulingStrategy::Packed));
    assert!(metrics.encode().contains(r#"stadion_matchmaker_allocations_total{source="agones"} 1"#));
}

#[tokio::test]
async fn maps_allocator_outcomes_to_agones_codes() {
    let cases: [(Result<AllocationOutcome, AllocateError>, tonic::Code, u16); 4] = [
        (Ok(AllocationOutcome::UnAllocated), tonic::Code::ResourceExhausted, 429),
        (Err(AllocateError::Backend("down".into())), tonic::Code::Unavailable, 503),
        (
            Err(AllocateError::Invalid(FieldErrors(vec![FieldError::new("spec.selectors", "bad")]))),
            tonic::Code::InvalidArgument,
            400,
        ),
        (Ok(AllocationOutcome::Contention), tonic::Code::Aborted, 409),
    ];
    for (answer, code, status) in cases {
        let (service, _) = service(ScriptedAllocator::new(answer));
        let error = service.allocate_request(pb::AllocationRequest::default()).await.expect_err("fails");
        assert_eq!((grpc_code(&error), http_status(&error).as_u16()), (code, status), "{error:?}");
        if let Error::Invalid(errors) = &error {
            assert_eq!(errors.paths(), vec!["gameServerSelectors"]);
        }
    }
}

#[tokio::test]
async fn invalid_requests_never_reach_the_allocator() {
    let allocator = ScriptedAllocator::new(Ok(AllocationOutcome::Allocated(allocated_status())));
    let (service, metrics) = service(allocator.clone());
    let mut bad = selector(&[("bad key!", "x")]);
    bad.match_expressions = vec![pb::LabelMatchExpressions {
        key: "tier".into(),
        operator: pb::label_match_expressions::Operator::In as i32,
        values: vec![],
    }];
    let request = pb::AllocationRequest {
        game_server_selectors: vec![selector(&[]), bad],
        metadata: Some(pb::MetaPatch { labels: labels(&[("ok", "not valid!")]), ..Default::default() }),
        ..Default::default()
    };
    let error = service.allocate_request(request).await.expect_err("invalid");
    assert_eq!(grpc_code(&error), tonic::Code::InvalidArgument);
    let message = error.to_string();
    for field in
        ["gameServerSelectors[1].matchLabels", "gameServerSelectors[1].matchExpressions[0].values", "metadata.labels"]
    {
        assert!(message.contains(field), "{field} not named in {message}");
    }
    assert!(allocator.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty());
    assert!(
        metrics
            .encode()
            .contains(r#"stadion_matchmaker_allocation_failures_total{source="agones",reason="invalid"} 1"#)
    );
    let body: Value = error.body();
    assert_eq!(body["error"]["code"], "invalid");
}

#[test]
fn json_refuses_unknown_keys_at_any_depth_and_takes_proto_names() {
    for (body, field) in [
        (r#"{"somethingNew": 42}"#, "somethingNew"),
        (r#"{"gameServerSelectors": [{}, {"matchLabel": {"a": "b"}}]}"#, "gameServerSelectors[1].matchLabel"),
        (
            r#"{"requiredGameServerSelector": {"players": {"minAvail": 1}}}"#,
            "requiredGameServerSelector.players.minAvail",
        ),
        (r#"{"lists": {"players": {"addValue": ["bob"]}}}"#, "lists.players.addValue"),
        (
            r#"{"multiClusterSetting": {"policySelector": {"matchLabel": {}}}}"#,
            "multiClusterSetting.policySelector.matchLabel",
        ),
    ] {
        match json::parse_request(body.as_bytes()) {
            Err(crate::Error::UnknownFields(errors)) => {
                let first = errors.iter().next().expect("one error");
                assert_eq!(first.path, field, "{body}");
                assert!(first.message.starts_with("unknown field"), "{}", first.message);
            }
            other => panic!("{body} → {other:?}"),
        }
    }
    let snake = br#"{"game_server_selectors": [{"match_labels": {"agones.dev/fleet": "blue"}, "game_server_state": "ALLOCATED"}],
                     "meta_patch": {"labels": {"m": "1"}}}"#;
    let request = json::parse_request(snake).expect("protobuf's JSON mapping also takes the proto field names");
    assert_eq!(request.game_server_selectors[0].match_labels["agones.dev/fleet"], "blue");
    assert_eq!(request.game_server_selectors[0].game_server_state, 1);
    assert_eq!(request.meta_patch.map(|m| m.labels), Some([("m".to_owned(), "1".to_owned())].into()));
}

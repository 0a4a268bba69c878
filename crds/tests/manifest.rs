//! Manifest parsing errors name the source, the document and the field; state strings are
//! Agones' exact ones.

use std::str::FromStr;

use stadion_crds::GameServerState;
use stadion_crds::manifest::{ManifestError, Resource, parse_documents, parse_gameserver};

const FLEET_THEN_BAD_SET: &str = "\
apiVersion: agones.dev/v1
kind: Fleet
metadata: {name: arena}
spec:
  replicas: 2
---
apiVersion: agones.dev/v1
kind: GameServerSet
metadata: {name: arena-abc}
spec:
  replicas: many
";

fn field_error(text: &str) -> (usize, String, String, String) {
    match parse_documents(text, "fleet.yaml") {
        Err(ManifestError::Field { document, kind, path, message, .. }) => (document, kind, path, message),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn wrong_type_names_document_kind_and_field() {
    let (document, kind, path, message) = field_error(FLEET_THEN_BAD_SET);
    assert_eq!((document, kind.as_str(), path.as_str()), (2, "GameServerSet", "spec.replicas"));
    assert!(message.contains("invalid type"), "{message}");
    let shown = parse_documents(FLEET_THEN_BAD_SET, "fleet.yaml").expect_err("invalid").to_string();
    assert!(shown.starts_with("fleet.yaml: document 2 (GameServerSet): spec.replicas: "), "{shown}");
}

#[test]
fn nested_fields_and_enum_values_have_full_paths() {
    let cases = [
        ("spec:\n  ports:\n    - name: a\n      containerPort: seven\n", "spec.ports[0].containerPort"),
        ("spec:\n  ports:\n    - name: a\n      portPolicy: Sometimes\n", "spec.ports[0].portPolicy"),
        ("spec:\n  health:\n    periodSeconds: [1]\n", "spec.health.periodSeconds"),
        ("status:\n  state: Sleeping\n", "status.state"),
    ];
    for (body, expected) in cases {
        let text = format!("apiVersion: agones.dev/v1\nkind: GameServer\nmetadata: {{name: gs}}\n{body}");
        let (document, kind, path, _) = field_error(&text);
        assert_eq!((document, kind.as_str(), path.as_str()), (1, "GameServer", expected), "{body}");
    }
}

#[test]
fn unknown_kinds_and_api_versions_are_refused() {
    let cases = [
        ("apiVersion: v1\nkind: Pod\n", "unsupported kind \"Pod\""),
        ("apiVersion: agones.dev/v1\n", "kind: required"),
        ("apiVersion: agones.dev/v1beta1\nkind: Fleet\n", "apiVersion: Fleet must be \"agones.dev/v1\""),
        ("apiVersion: agones.dev/v1\nkind: FleetAutoscaler\n", "must be \"autoscaling.agones.dev/v1\""),
    ];
    for (text, expected) in cases {
        match parse_documents(text, "x.yaml") {
            Err(error @ ManifestError::UnknownKind { document: 1, .. }) => {
                assert!(error.to_string().contains(expected), "{error} lacks {expected}");
            }
            other => panic!("{text:?}: expected UnknownKind, got {other:?}"),
        }
    }
}

#[test]
fn syntax_errors_name_the_document() {
    let text = "apiVersion: agones.dev/v1\nkind: Fleet\nmetadata: {name: a}\n---\nspec: [unclosed\n";
    match parse_documents(text, "broken.yaml") {
        Err(ManifestError::Syntax { source_name, document, .. }) => {
            assert_eq!((source_name.as_str(), document), ("broken.yaml", 2));
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn empty_documents_are_skipped_and_json_is_accepted() {
    let text =
        "---\n---\n{\"apiVersion\": \"agones.dev/v1\", \"kind\": \"Fleet\", \"metadata\": {\"name\": \"a\"}}\n---\n";
    let docs = parse_documents(text, "x").expect("parses");
    assert_eq!(docs.len(), 1);
    assert!(matches!(&docs[0], Resource::Fleet(f) if f.name() == "a"));
}

#[test]
fn parse_gameserver_wants_exactly_one_gameserver() {
    let gs = "apiVersion: agones.dev/v1\nkind: GameServer\nmetadata: {name: local}\n";
    assert_eq!(parse_gameserver(gs, "gs.yaml").expect("parses").name(), "local");
    let fleet = "apiVersion: agones.dev/v1\nkind: Fleet\nmetadata: {name: a}\n";
    let error = parse_gameserver(fleet, "f.yaml").expect_err("not a GameServer").to_string();
    assert!(error.contains("expected a GameServer, found a Fleet"), "{error}");
    let two = format!("{gs}---\n{gs}");
    assert!(parse_gameserver(&two, "two.yaml").is_err());
}

#[test]
fn states_use_agones_strings_everywhere() {
    let expected = [
        "PortAllocation",
        "Creating",
        "Starting",
        "Scheduled",
        "RequestReady",
        "Ready",
        "Reserved",
        "Allocated",
        "Shutdown",
        "Error",
        "Unhealthy",
    ];
    for (state, name) in GameServerState::ALL.into_iter().zip(expected) {
        assert_eq!(state.as_str(), name);
        assert_eq!(state.to_string(), name);
        assert_eq!(GameServerState::from_str(name), Ok(state));
        assert_eq!(serde_json::to_value(state).expect("serializes"), serde_json::json!(name));
        assert_eq!(serde_json::from_value::<GameServerState>(serde_json::json!(name)).expect("reads"), state);
    }
    let error = GameServerState::from_str("ready").expect_err("case matters");
    assert_eq!(error.to_string(), "unknown GameServer state \"ready\"");
}

#[test]
fn state_helpers_match_the_lifecycle() {
    use GameServerState as S;
    let terminal = [S::Shutdown, S::Error, S::Unhealthy];
    let protected = [S::Allocated, S::Reserved];
    let starting = [S::PortAllocation, S::Creating, S::Starting, S::Scheduled, S::RequestReady];
    for state in S::ALL {
        assert_eq!(state.is_terminal(), terminal.contains(&state), "{state} is_terminal");
        assert_eq!(state.is_active(), !terminal.contains(&state), "{state} is_active");
        assert_eq!(state.is_deletable_by_set(), !protected.contains(&state), "{state} is_deletable_by_set");
        assert_eq!(state.is_before_ready(), starting.contains(&state), "{state} is_before_ready");
        assert_eq!(state.is_allocatable(), state == S::Ready, "{state} is_allocatable");
    }
}

//! Manifest parsing errors name the source, the document and the field; state strings are
//! Agones' exact ones.

use std::str::FromStr;

use stadion_crds::GameServerState;
use stadion_crds::manifest::{ManifestError, Resource, parse_documents, parse_gameserver, parse_manifest};

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
        ("apiVersion: agones.dev/v1\nkind: Flet\n", "unsupported kind \"Flet\" in agones.dev/v1"),
        ("apiVersion: autoscaling.agones.dev/v1\nkind: FleetAutoScaler\n", "unsupported kind \"FleetAutoScaler\""),
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
fn syntax_errors_name_the_document_line_and_column() {
    let text = "apiVersion: agones.dev/v1\nkind: Fleet\nmetadata: {name: a}\n---\nspec: [unclosed\nkind: x\n";
    match parse_documents(text, "broken.yaml") {
        Err(error @ ManifestError::Syntax { .. }) => {
            let shown = error.to_string();
            let ManifestError::Syntax { source_name, document, line, column, message } = error else { unreachable!() };
            assert_eq!((source_name.as_str(), document), ("broken.yaml", 2));
            assert!(line >= 5 && column >= 1, "{line}:{column}");
            assert!(shown.starts_with(&format!("broken.yaml:{line}:{column}: not valid YAML: ")), "{shown}");
            assert!(!message.is_empty() && !message.contains(" --> "), "one line, no snippet: {message}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn other_apis_are_skipped_and_listed() {
    let text = "\
apiVersion: v1
kind: Service
metadata: {name: game-svc}
---
apiVersion: agones.dev/v1
kind: Fleet
metadata: {name: arena}
---
apiVersion: apps/v1
kind: Deployment
metadata: {generateName: backend-}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
";
    let parsed = parse_manifest(text, "mixed.yaml").expect("parses");
    assert_eq!(parsed.resources.len(), 1);
    assert!(matches!(&parsed.resources[0], Resource::Fleet(f) if f.name() == "arena"));
    let skipped: Vec<_> =
        parsed.skipped.iter().map(|s| (s.document, s.kind.as_str(), s.name.as_str(), s.api_version.as_str())).collect();
    assert_eq!(
        skipped,
        [
            (1, "Service", "game-svc", "v1"),
            (3, "Deployment", "backend-", "apps/v1"),
            (4, "ClusterRole", "reader", "rbac.authorization.k8s.io/v1")
        ]
    );
}

fn unknown_fields(text: &str) -> Vec<String> {
    match parse_documents(text, "strict.yaml") {
        Err(ManifestError::UnknownFields { fields, .. }) => fields,
        other => panic!("expected unknown fields, got {other:?}"),
    }
}

#[test]
fn unknown_fields_are_refused_with_every_path_as_kubectl_strict_does() {
    let fleet = "\
apiVersion: agones.dev/v1
kind: Fleet
metadata:
  name: arena
  lables: {a: b}
spec:
  replcas: 5
  template:
    metadata:
      labels: {any-key: any-value}
    spec:
      ports:
        - name: default
          containerPrt: 7654
      template:
        spec:
          containers:
            - name: game
              comand: [./game]
              resources:
                limits: {cpu: 20m, memory: 64Mi}
";
    assert_eq!(
        unknown_fields(fleet),
        [
            "metadata.lables",
            "spec.replcas",
            "spec.template.spec.ports[0].containerPrt",
            "spec.template.spec.template.spec.containers[0].comand",
        ]
    );
    let shown = parse_documents(fleet, "strict.yaml").expect_err("strict").to_string();
    assert!(shown.contains("unknown field \"spec.replcas\""), "{shown}");

    let gameserver = "apiVersion: agones.dev/v1\nkind: GameServer\nmetadata: {name: gs}\nspec:\n  helth: {}\n  template:\n    spec:\n      containerz: []\n";
    assert_eq!(unknown_fields(gameserver), ["spec.helth", "spec.template.spec.containerz"]);

    let autoscaler = "\
apiVersion: autoscaling.agones.dev/v1
kind: FleetAutoscaler
metadata: {name: fas}
spec:
  fleetName: arena
  policy:
    type: Chain
    chain:
      - id: weekday
        type: Buffer
        buffer: {bufferSize: 20%, maxReplicas: 10, minReplica: 1}
";
    assert_eq!(unknown_fields(autoscaler), ["spec.policy.chain[0].buffer.minReplica"]);

    let allocation = "apiVersion: allocation.agones.dev/v1\nkind: GameServerAllocation\nspec:\n  selectors:\n    - matchLabel: {a: b}\n";
    assert_eq!(unknown_fields(allocation), ["spec.selectors[0].matchLabel"]);
}

#[test]
fn free_form_maps_and_int_or_string_fields_are_not_unknown() {
    let text = "\
apiVersion: autoscaling.agones.dev/v1
kind: FleetAutoscaler
metadata:
  name: fas
  annotations: {team/owner: games}
spec:
  fleetName: arena
  policy:
    type: Buffer
    buffer: {bufferSize: 20%, minReplicas: 1, maxReplicas: 10}
";
    assert_eq!(parse_documents(text, "ok.yaml").expect("valid").len(), 1);
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

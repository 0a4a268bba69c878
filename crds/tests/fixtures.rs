//! Realistic Agones manifests: they parse, round-trip to JSON without losing a field, validate,
//! and default to exactly the expected objects.

use std::path::Path;

use serde_json::Value;
use stadion_crds::manifest::{Resource, parse_documents};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(name: &str) -> Vec<Resource> {
    parse_documents(&fixture(name), name).unwrap_or_else(|e| panic!("{e}"))
}

/// The raw documents of a fixture as JSON values, untouched by our types.
fn raw_documents(name: &str) -> Vec<Value> {
    let text = fixture(name);
    serde_saphyr::from_multiple(&text).expect("fixture is valid YAML")
}

fn to_json(resource: &Resource) -> Value {
    match resource {
        Resource::GameServer(r) => serde_json::to_value(r),
        Resource::GameServerSet(r) => serde_json::to_value(r),
        Resource::Fleet(r) => serde_json::to_value(r),
        Resource::FleetAutoscaler(r) => serde_json::to_value(r),
        Resource::GameServerAllocation(r) => serde_json::to_value(r),
    }
    .expect("serializes")
}

/// Every field of `input` is in `output` with the same value (the output may add defaults).
fn assert_no_lost_fields(input: &Value, output: &Value, path: &str) {
    match (input, output) {
        (Value::Object(inp), Value::Object(out)) => {
            for (key, value) in inp {
                let child = format!("{path}.{key}");
                let Some(got) = out.get(key) else { panic!("lost field {child}") };
                assert_no_lost_fields(value, got, &child);
            }
        }
        (Value::Array(inp), Value::Array(out)) => {
            assert_eq!(inp.len(), out.len(), "length of {path}");
            for (i, (a, b)) in inp.iter().zip(out).enumerate() {
                assert_no_lost_fields(a, b, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(input, output, "value of {path}"),
    }
}

fn defaulted(resource: Resource) -> Resource {
    match resource {
        Resource::GameServer(mut r) => {
            r.apply_defaults();
            Resource::GameServer(r)
        }
        Resource::GameServerSet(mut r) => {
            r.apply_defaults();
            Resource::GameServerSet(r)
        }
        Resource::Fleet(mut r) => {
            r.apply_defaults();
            Resource::Fleet(r)
        }
        Resource::FleetAutoscaler(mut r) => {
            r.apply_defaults();
            Resource::FleetAutoscaler(r)
        }
        Resource::GameServerAllocation(mut r) => {
            r.apply_defaults();
            Resource::GameServerAllocation(r)
        }
    }
}

fn validate(resource: &Resource) -> stadion_crds::FieldErrors {
    match resource {
        Resource::GameServer(r) => r.validate(),
        Resource::GameServerSet(r) => r.validate(),
        Resource::Fleet(r) => r.validate(),
        Resource::FleetAutoscaler(r) => r.validate(),
        Resource::GameServerAllocation(r) => r.validate(),
    }
}

const FIXTURES: [&str; 5] =
    ["gameserver.yaml", "fleet.yaml", "fleetautoscaler-buffer.yaml", "fleetautoscaler-webhook.yaml", "allocation.yaml"];

#[test]
fn fixtures_round_trip_to_json_without_losing_fields() {
    for name in FIXTURES {
        let raw = raw_documents(name);
        let parsed = parse(name);
        assert_eq!(raw.len(), parsed.len(), "{name}: document count");
        for (i, (input, resource)) in raw.iter().zip(&parsed).enumerate() {
            let output = to_json(resource);
            assert_no_lost_fields(input, &output, &format!("{name}#{}", i + 1));
            // And back again: the JSON we emit reads into the same object.
            let text = serde_json::to_string(&output).expect("json");
            let again = parse_documents(&text, name).expect("our JSON parses");
            assert_eq!(again, vec![resource.clone()], "{name}#{}", i + 1);
        }
    }
}

#[test]
fn fixtures_are_valid_before_and_after_defaults() {
    for name in FIXTURES {
        for resource in parse(name) {
            let errors = validate(&resource);
            assert!(errors.is_empty(), "{name} {}: {errors}", resource.name());
            let errors = validate(&defaulted(resource.clone()));
            assert!(errors.is_empty(), "{name} {} defaulted: {errors}", resource.name());
        }
    }
}

#[test]
fn defaults_give_exactly_the_expected_objects() {
    for (input, expected) in [
        ("gameserver.yaml", "gameserver.defaulted.yaml"),
        ("fleet.yaml", "fleet.defaulted.yaml"),
        ("fleetautoscaler-buffer.yaml", "fleetautoscaler-buffer.defaulted.yaml"),
        ("allocation.yaml", "allocation.defaulted.yaml"),
    ] {
        let got: Vec<Resource> = parse(input).into_iter().map(defaulted).collect();
        let want = parse(expected);
        assert_eq!(got, want, "{input} defaulted differs from {expected}");
        // Defaulting is idempotent: a second pass changes nothing.
        let twice: Vec<Resource> = got.clone().into_iter().map(defaulted).collect();
        assert_eq!(twice, got, "{input}: apply_defaults is not idempotent");
    }
}

#[test]
fn webhook_autoscalers_default_their_sync_and_keep_their_target() {
    let docs = parse("fleetautoscaler-webhook.yaml");
    let [Resource::FleetAutoscaler(service), Resource::FleetAutoscaler(url)] = docs.as_slice() else {
        panic!("expected two FleetAutoscalers, got {docs:?}");
    };
    let (mut service, mut url) = (service.clone(), url.clone());
    service.apply_defaults();
    url.apply_defaults();
    assert_eq!(service.sync_seconds(), 10, "an explicit interval is kept");
    assert_eq!(url.sync_seconds(), 30, "Agones' default interval");
    let target = service.spec.policy.webhook.as_ref().and_then(|w| w.service.as_ref()).expect("service");
    assert_eq!((target.name.as_str(), target.namespace.as_str()), ("autoscaler-webhook", "games"));
    assert_eq!((target.path.as_deref(), target.port), (Some("/scale"), Some(8000)));
    let webhook = url.spec.policy.webhook.as_ref().expect("webhook");
    assert_eq!(webhook.url.as_deref(), Some("https://scaler.example.com:8443/scale"));
    let ca = webhook.ca_bundle.as_ref().expect("caBundle decoded");
    assert!(ca.0.starts_with(b"-----BEGIN CERTIFICATE-----"));
}

#[test]
fn gameserver_fixture_reads_as_agones_means_it() {
    let Some(Resource::GameServer(gs)) = parse("gameserver.yaml").pop() else { panic!("not a GameServer") };
    use stadion_crds::gameserver::{PortPolicy, Protocol};
    let ports: Vec<_> = gs.spec.ports.iter().map(|p| (p.name.as_str(), p.policy(), p.protocol())).collect();
    assert_eq!(
        ports,
        [("default", PortPolicy::Dynamic, Protocol::Udp), ("query", PortPolicy::Passthrough, Protocol::Tcp)]
    );
    assert_eq!(gs.game_container_name(), Some("simple-game-server"));
    assert_eq!(gs.pod_containers().len(), 2);
    let limits = gs.pod_containers()[0].resources.as_ref().and_then(|r| r.limits.as_ref()).expect("limits");
    assert_eq!(limits.get("memory").map(|q| q.0.as_str()), Some("64Mi"));
    assert!(gs.needs_port_allocation());
    assert_eq!(gs.namespace(), "games");
}

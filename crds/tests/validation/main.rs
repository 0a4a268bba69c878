//! Invalid manifests are rejected with every problem and its exact field path (table-driven:
//! a valid base manifest per kind, one change per case; one module per kind).

mod allocation;
mod fleet;
mod fleetautoscaler;
mod gameserver;

use serde_json::{Value, json};
use stadion_crds::manifest::{Resource, parse_documents};

pub(crate) const GAMESERVER: &str = r#"{
  "apiVersion": "agones.dev/v1", "kind": "GameServer",
  "metadata": { "name": "gs-1" },
  "spec": {
    "ports": [ { "name": "default", "containerPort": 7654 } ],
    "template": { "spec": { "containers": [ { "name": "game", "image": "example.com/game:1" } ] } }
  }
}"#;

pub(crate) const FLEET: &str = r#"{
  "apiVersion": "agones.dev/v1", "kind": "Fleet",
  "metadata": { "name": "arena" },
  "spec": {
    "replicas": 2,
    "template": { "spec": {
      "ports": [ { "name": "default", "containerPort": 7654 } ],
      "template": { "spec": { "containers": [ { "name": "game", "image": "example.com/game:1" } ] } }
    } }
  }
}"#;

pub(crate) const GAMESERVERSET: &str = r#"{
  "apiVersion": "agones.dev/v1", "kind": "GameServerSet",
  "metadata": { "name": "arena-x7k2p" },
  "spec": {
    "replicas": 2,
    "template": { "spec": {
      "ports": [ { "name": "default", "containerPort": 7654 } ],
      "template": { "spec": { "containers": [ { "name": "game", "image": "example.com/game:1" } ] } }
    } }
  }
}"#;

pub(crate) const FLEET_AUTOSCALER: &str = r#"{
  "apiVersion": "autoscaling.agones.dev/v1", "kind": "FleetAutoscaler",
  "metadata": { "name": "arena-autoscaler" },
  "spec": {
    "fleetName": "arena",
    "policy": { "type": "Buffer", "buffer": { "bufferSize": 5, "minReplicas": 0, "maxReplicas": 10 } }
  }
}"#;

pub(crate) const ALLOCATION: &str = r#"{
  "apiVersion": "allocation.agones.dev/v1", "kind": "GameServerAllocation",
  "spec": { "selectors": [ { "matchLabels": { "agones.dev/fleet": "arena" } } ] }
}"#;

/// Sets (or with `null`, removes) the value at a JSON pointer, creating objects on the way.
pub(crate) fn set(doc: &mut Value, pointer: &str, value: &Value) {
    let mut segments: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let last = segments.pop().expect("non-empty pointer");
    let mut node = doc;
    for segment in segments {
        node = match node {
            Value::Array(items) => &mut items[segment.parse::<usize>().expect("array index")],
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                other.as_object_mut().expect("object").entry(segment).or_insert_with(|| json!({}))
            }
        };
    }
    match (node, value) {
        (Value::Object(map), Value::Null) => {
            map.remove(last);
        }
        (Value::Object(map), v) => {
            map.insert(last.to_owned(), v.clone());
        }
        (Value::Array(items), v) => {
            let index = last.parse::<usize>().expect("array index");
            if index == items.len() {
                items.push(v.clone());
            } else {
                items[index] = v.clone();
            }
        }
        (other, _) => panic!("cannot set {pointer} in {other}"),
    }
}

/// Parses `base` with `changes` applied, applies defaults, validates; returns `path: message`s.
pub(crate) fn problems(base: &str, changes: &[(&str, Value)]) -> Vec<String> {
    let mut doc: Value = serde_json::from_str(base).expect("base is JSON");
    for (pointer, value) in changes {
        set(&mut doc, pointer, value);
    }
    let text = serde_json::to_string(&doc).expect("json");
    let mut resources = parse_documents(&text, "case").unwrap_or_else(|e| panic!("{e}"));
    let errors = match resources.pop().expect("one document") {
        Resource::GameServer(mut r) => {
            r.apply_defaults();
            r.validate()
        }
        Resource::GameServerSet(mut r) => {
            r.apply_defaults();
            r.validate()
        }
        Resource::Fleet(mut r) => {
            r.apply_defaults();
            r.validate()
        }
        Resource::FleetAutoscaler(mut r) => {
            r.apply_defaults();
            r.validate()
        }
        Resource::GameServerAllocation(mut r) => {
            r.apply_defaults();
            r.validate()
        }
    };
    errors.iter().map(ToString::to_string).collect()
}

/// One table row: a change to a valid base manifest and the problems it must cause.
pub(crate) struct Case {
    name: &'static str,
    base: &'static str,
    changes: Vec<(&'static str, Value)>,
    /// Every expected problem: `(path, part of the message)`, in any order.
    expected: Vec<(&'static str, &'static str)>,
}

pub(crate) fn case(
    name: &'static str,
    base: &'static str,
    changes: Vec<(&'static str, Value)>,
    expected: Vec<(&'static str, &'static str)>,
) -> Case {
    Case { name, base, changes, expected }
}

pub(crate) fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let found = problems(c.base, &c.changes);
        let mut missing = Vec::new();
        for (path, message) in &c.expected {
            let hit = found.iter().any(|f| f.starts_with(&format!("{path}: ")) && f.contains(message));
            if !hit {
                missing.push(format!("{path}: …{message}…"));
            }
        }
        if !missing.is_empty() || found.len() != c.expected.len() {
            failures.push(format!("{}\n  expected {:?}\n  found    {found:?}", c.name, c.expected));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

pub(crate) fn game_container(name: &str) -> Value {
    json!({ "name": name, "image": "example.com/game:1" })
}

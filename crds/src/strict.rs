//! Strict field validation, as `kubectl apply --validate=strict` gets it from the API server:
//! every field of an applied object that its schema does not declare is reported with its path,
//! instead of being dropped without a word (`replcas: 5` running a fleet of 0).
//!
//! The schemas are the ones [`crate::crd`] generates for `crds/*.yaml`, so the local runtime and
//! an API server refuse the same objects. Where the CRDs keep an embedded Kubernetes object as
//! written (`x-kubernetes-preserve-unknown-fields`: object metadata, the pod template, autoscaler
//! chains), it is checked against that object's own schema instead, as the API server checks a
//! Pod or ObjectMeta when it is created: a misspelt `comand:` in a container would otherwise
//! start a game with no command.

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::fleetautoscaler::ChainEntry;
use crate::{Fleet, FleetAutoscaler, GameServer, GameServerAllocation, GameServerSet};

/// The schemas an object is checked against.
struct Schemas {
    /// Per kind: the CRD's `openAPIV3Schema` (GameServerAllocation: the same generation).
    kinds: HashMap<&'static str, Value>,
    object_meta: Value,
    pod_template: Value,
    chain_entry: Value,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut kinds = HashMap::new();
        kinds.insert(GameServer::KIND, crate::crd::schema_for::<GameServer>());
        kinds.insert(GameServerSet::KIND, crate::crd::schema_for::<GameServerSet>());
        kinds.insert(Fleet::KIND, crate::crd::schema_for::<Fleet>());
        kinds.insert(FleetAutoscaler::KIND, crate::crd::schema_for::<FleetAutoscaler>());
        kinds.insert(GameServerAllocation::KIND, crate::crd::schema_for::<GameServerAllocation>());
        Schemas {
            kinds,
            object_meta: crate::crd::derived_schema::<ObjectMeta>(),
            pod_template: crate::crd::derived_schema::<PodTemplateSpec>(),
            chain_entry: crate::crd::derived_schema::<ChainEntry>(),
        }
    })
}

/// Every field of `object` (a whole `kind` object as JSON) that its schema does not declare, as
/// dotted paths (`spec.replcas`, `spec.template.spec.containers[0].comand`), in document order.
/// An unknown `kind` yields nothing: the caller refuses it on its own terms.
pub fn unknown_fields(kind: &str, object: &Value) -> Vec<String> {
    let schemas = schemas();
    let Some(schema) = schemas.kinds.get(kind) else { return Vec::new() };
    let mut walk = Walk { kind, schemas, found: Vec::new() };
    walk.node(schema, schema, object, "");
    walk.found
}

struct Walk<'a> {
    kind: &'a str,
    schemas: &'static Schemas,
    found: Vec<String>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// `#/$defs/Name` inside `root`.
fn resolve<'s>(root: &'s Value, schema: &'s Value) -> &'s Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            reference.strip_prefix("#/").and_then(|pointer| root.pointer(&format!("/{pointer}"))).unwrap_or(schema)
        }
        None => schema,
    }
}

impl Walk<'_> {
    /// The schema of an embedded object that the CRD keeps as written at `path`, if we know it.
    fn embedded(&self, path: &str) -> Option<&'static Value> {
        let pod_template_path = match self.kind {
            "GameServer" => "spec.template",
            "GameServerSet" | "Fleet" => "spec.template.spec.template",
            _ => "",
        };
        if path == "metadata" || path.ends_with(".metadata") {
            Some(&self.schemas.object_meta)
        } else if path == pod_template_path {
            Some(&self.schemas.pod_template)
        } else {
            None
        }
    }

    fn node(&mut self, root: &Value, schema: &Value, value: &Value, path: &str) {
        let schema = resolve(root, schema);
        // Nullable branches (`anyOf: [{…}, {nullable}]`) carry the real schema in one arm.
        if let Some(arms) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Value::as_array)
            && schema.get("properties").is_none()
            && let Some(arm) = arms.iter().find(|arm| resolve(root, arm).get("properties").is_some())
        {
            return self.node(root, arm, value, path);
        }
        let opaque = schema.get("properties").is_none() && schema.get("additionalProperties").is_none();
        if opaque && let Some(embedded) = self.embedded(path).filter(|e| !std::ptr::eq(*e, root)) {
            return self.node(embedded, embedded, value, path);
        }
        if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
            // A Chain's entries are kept as written because a policy nests policies; each entry
            // is still a ChainEntry.
            let last = path.rsplit('.').next().unwrap_or(path);
            if self.kind == "FleetAutoscaler" && last.starts_with("chain[") {
                let entry = &self.schemas.chain_entry;
                self.node(entry, entry, value, path);
            }
            return;
        }
        match value {
            Value::Object(fields) => {
                let properties = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties");
                for (key, child) in fields {
                    let child_path = join(path, key);
                    match (properties.and_then(|p| p.get(key)), additional) {
                        (Some(child_schema), _) => self.node(root, child_schema, child, &child_path),
                        (None, Some(Value::Object(_))) => {
                            let additional = additional.unwrap_or(&Value::Null);
                            self.node(root, additional, child, &child_path);
                        }
                        (None, Some(Value::Bool(true))) => {}
                        // A schema that declares no properties at all (`type: object` alone)
                        // says nothing about its fields.
                        (None, _) if properties.is_none() => {}
                        (None, _) => self.found.push(child_path),
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter().enumerate() {
                        self.node(root, item_schema, item, &format!("{path}[{index}]"));
                    }
                }
            }
            _ => {}
        }
    }
}

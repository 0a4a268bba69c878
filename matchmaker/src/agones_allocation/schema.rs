//! OpenAPI schemas of the REST body (written by hand: the request and response are protobuf
//! messages, and the sibling `json` module reads and writes them).

use serde_json::{Value, json};

fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

fn map_of(schema: &str) -> Value {
    json!({"type": "object", "additionalProperties": {"$ref": format!("#/components/schemas/{schema}")}})
}

fn reference(schema: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{schema}")})
}

fn int64(description: &str) -> Value {
    json!({"oneOf": [{"type": "integer", "format": "int64"}, {"type": "string", "pattern": "^-?[0-9]+$"}], "description": description})
}

fn enumeration(names: &[&str], description: &str) -> Value {
    json!({"oneOf": [{"type": "string", "enum": names}, {"type": "integer"}], "description": description})
}

/// The component schemas, by name, that `POST /gameserverallocation` refers to.
pub fn components() -> Vec<(&'static str, Value)> {
    let selector = json!({
        "type": "object",
        "description": "Which servers match. Tried in order; the first selector matching a free server wins.",
        "properties": {
            "matchLabels": string_map(),
            "matchExpressions": {"type": "array", "items": {"type": "object", "properties": {
                "key": {"type": "string"},
                "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                "values": {"type": "array", "items": {"type": "string"}}
            }}},
            "gameServerState": enumeration(&["READY", "ALLOCATED"], "READY (0, default) or ALLOCATED (1)"),
            "players": {"type": "object", "properties": {
                "minAvailable": int64("Minimum free player slots"),
                "maxAvailable": int64("Maximum free player slots (0: no limit)")
            }},
            "counters": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "minCount": int64(""), "maxCount": int64("0: no limit"),
                "minAvailable": int64(""), "maxAvailable": int64("0: no limit")
            }}},
            "lists": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "containsValue": {"type": "string"},
                "minAvailable": int64(""), "maxAvailable": int64("0: no limit")
            }}}
        }
    });
    let meta_patch = json!({"type": "object", "properties": {"labels": string_map(), "annotations": string_map()}});
    let request = json!({
        "type": "object",
        "description": "Agones' AllocationRequest in protobuf's JSON mapping. Enums take names or numbers, 64-bit integers numbers or decimal strings; unknown keys are ignored; an empty body allocates any Ready server in `default`.",
        "properties": {
            "namespace": {"type": "string", "description": "Empty: default"},
            "multiClusterSetting": {"type": "object", "description": "`enabled: true` is refused (400): Stadion allocates in its own cluster", "properties": {
                "enabled": {"type": "boolean"},
                "policySelector": {"type": "object", "properties": {"matchLabels": string_map()}}
            }},
            "gameServerSelectors": {"type": "array", "items": reference("AgonesGameServerSelector")},
            "requiredGameServerSelector": {"allOf": [reference("AgonesGameServerSelector")], "deprecated": true},
            "preferredGameServerSelectors": {"type": "array", "items": reference("AgonesGameServerSelector"), "deprecated": true},
            "scheduling": enumeration(&["Packed", "Distributed"], "Packed (0, default) or Distributed (1)"),
            "metadata": {"allOf": [reference("AgonesMetaPatch")], "description": "Written on the allocated server"},
            "metaPatch": {"allOf": [reference("AgonesMetaPatch")], "deprecated": true, "description": "Used only when metadata is unset"},
            "priorities": {"type": "array", "items": {"type": "object", "properties": {
                "type": enumeration(&["Counter", "List"], "Counter (0) or List (1)"),
                "key": {"type": "string"},
                "order": enumeration(&["Ascending", "Descending"], "Ascending (0) or Descending (1)")
            }}},
            "counters": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "action": {"type": "string", "enum": ["Increment", "Decrement"]},
                "amount": int64("Needed with action"),
                "capacity": int64("New capacity")
            }}},
            "lists": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "addValues": {"type": "array", "items": {"type": "string"}},
                "deleteValues": {"type": "array", "items": {"type": "string"}},
                "capacity": int64("New capacity (0 to 1000)")
            }}}
        }
    });
    let response = json!({
        "type": "object",
        "description": "Agones' AllocationResponse. Every field is present (empty when unset) except metadata.",
        "properties": {
            "gameServerName": {"type": "string"},
            "ports": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "port": {"type": "integer", "format": "int32"}
            }}},
            "address": {"type": "string"},
            "addresses": {"type": "array", "items": {"type": "object", "properties": {
                "type": {"type": "string"}, "address": {"type": "string"}
            }}},
            "nodeName": {"type": "string"},
            "source": {"type": "string", "description": "`local`: this cluster"},
            "metadata": meta_patch.clone(),
            "counters": map_of("AgonesCounterStatus"),
            "lists": map_of("AgonesListStatus")
        }
    });
    let error = json!({
        "type": "object",
        "description": "gRPC-gateway's error (code: the gRPC code number) plus the matchmaker's error object",
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object"}},
            "error": {"type": "object", "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string", "nullable": true, "description": "Request field at fault, e.g. gameServerSelectors[0].matchLabels"},
                "details": {"type": "array", "items": {"type": "object"}}
            }}
        }
    });
    vec![
        ("AgonesAllocationRequest", request),
        ("AgonesAllocationResponse", response),
        ("AgonesGameServerSelector", selector),
        ("AgonesMetaPatch", meta_patch),
        (
            "AgonesCounterStatus",
            json!({"type": "object", "properties": {"count": {"type": "string"}, "capacity": {"type": "string"}}}),
        ),
        (
            "AgonesListStatus",
            json!({"type": "object", "properties": {
                "values": {"type": "array", "items": {"type": "string"}}, "capacity": {"type": "string"}
            }}),
        ),
        ("AgonesError", error),
    ]
}

//! A checker for the Kubernetes *structural schema* rules our generated CRDs must satisfy.
//!
//! The API server rejects a CRD whose schema is not structural; there is no cluster in CI, so this
//! walks the schema and enforces the rules (stricter where that keeps the check simple): every node
//! typed, no `$ref` or combinators, int-or-string without a type, no `additionalProperties` beside
//! `properties`, defaults only where we put them on purpose, and the root `metadata` left to the
//! API server.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Map, Value};

/// Types a structural schema may use.
const TYPES: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];
/// `format`s the API server knows (unknown ones are silently not validated, which hides mistakes).
const FORMATS: [&str; 8] = ["int32", "int64", "float", "double", "byte", "date", "date-time", "uri"];
/// Keywords the API server does not accept in a CRD schema, or that make it non-structural here.
const FORBIDDEN: [&str; 8] = ["$ref", "$schema", "definitions", "$defs", "anyOf", "oneOf", "allOf", "not"];
/// Paths (dotted, below the root) where a `default` is intended.
const ALLOWED_DEFAULTS: [&str; 2] = ["spec.immutableReplicas", "status.immutableReplicas"];

/// Every structural-schema violation in `schema`, each as `<path>: <problem>` (empty: valid).
pub fn problems(schema: &JSONSchemaProps) -> Vec<String> {
    match serde_json::to_value(schema) {
        Ok(value) => problems_in_value(&value),
        Err(error) => vec![format!("<root>: does not serialize: {error}")],
    }
}

/// Like [`problems`], on a schema already in JSON form.
pub fn problems_in_value(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(root) = schema.as_object() else {
        return vec!["<root>: schema must be an object".to_owned()];
    };
    if root.get("type").and_then(Value::as_str) != Some("object") {
        out.push("<root>: type must be object".to_owned());
    }
    if root.contains_key("nullable") {
        out.push("<root>: must not be nullable".to_owned());
    }
    if let Some(properties) = root.get("properties").and_then(Value::as_object) {
        for field in ["apiVersion", "kind"] {
            if let Some(node) = properties.get(field)
                && node.get("type").and_then(Value::as_str) != Some("string")
            {
                out.push(format!("{field}: must be type string"));
            }
        }
        if let Some(metadata) = properties.get("metadata")
            && metadata != &serde_json::json!({ "type": "object" })
        {
            out.push("metadata: at the root only `type: object` is allowed".to_owned());
        }
    }
    check_node(root, "", &mut out);
    out
}

fn child_path(path: &str, segment: &str) -> String {
    if path.is_empty() { segment.to_owned() } else { format!("{path}.{segment}") }
}

fn check_node(node: &Map<String, Value>, path: &str, out: &mut Vec<String>) {
    let shown = if path.is_empty() { "<root>" } else { path };
    for keyword in FORBIDDEN {
        if node.contains_key(keyword) {
            out.push(format!("{shown}: `{keyword}` is not allowed"));
        }
    }
    let int_or_string = node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let type_ = node.get("type").and_then(Value::as_str);
    match (int_or_string, type_) {
        (true, Some(_)) => out.push(format!("{shown}: x-kubernetes-int-or-string must not have a type")),
        (false, None) => out.push(format!("{shown}: type is required")),
        (false, Some(t)) if !TYPES.contains(&t) => out.push(format!("{shown}: unsupported type {t:?}")),
        _ => {}
    }
    if preserve && type_ != Some("object") {
        out.push(format!("{shown}: x-kubernetes-preserve-unknown-fields only on objects here"));
    }
    if let Some(format) = node.get("format").and_then(Value::as_str)
        && !FORMATS.contains(&format)
    {
        out.push(format!("{shown}: unknown format {format:?}"));
    }
    if node.contains_key("default") && !ALLOWED_DEFAULTS.contains(&path) {
        out.push(format!("{shown}: unexpected default"));
    }
    let properties = node.get("properties").and_then(Value::as_object);
    if properties.is_some() && node.contains_key("additionalProperties") {
        out.push(format!("{shown}: additionalProperties must not be combined with properties"));
    }
    if properties.is_some() && type_ != Some("object") {
        out.push(format!("{shown}: properties on a non-object"));
    }
    if let Some(required) = node.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !properties.is_some_and(|p| p.contains_key(name)) {
                out.push(format!("{shown}: required field {name:?} is not a property"));
            }
        }
    }
    for (name, child) in properties.into_iter().flatten() {
        match child.as_object() {
            Some(child) => check_node(child, &child_path(path, name), out),
            None => out.push(format!("{}: property schema must be an object", child_path(path, name))),
        }
    }
    match node.get("additionalProperties") {
        Some(Value::Object(values)) => check_node(values, &child_path(path, "*"), out),
        Some(Value::Bool(_)) | None => {}
        Some(_) => out.push(format!("{shown}: additionalProperties must be a schema or a boolean")),
    }
    match (type_, node.get("items")) {
        (Some("array"), Some(Value::Object(items))) => check_node(items, &format!("{path}[]"), out),
        (Some("array"), _) => out.push(format!("{shown}: an array needs one `items` schema")),
        (_, Some(_)) => out.push(format!("{shown}: items on a non-array")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::problems_in_value;

    #[test]
    fn accepts_a_small_structural_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "metadata": { "type": "object" },
                "spec": {
                    "type": "object",
                    "properties": {
                        "size": { "x-kubernetes-int-or-string": true, "nullable": true },
                        "tags": { "type": "array", "items": { "type": "string" } },
                        "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                        "template": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
                    },
                    "required": ["tags"]
                }
            }
        });
        assert_eq!(problems_in_value(&schema), Vec::<String>::new());
    }

    #[test]
    fn reports_every_violation_with_its_path() {
        let schema = json!({
            "type": "object",
            "properties": {
                "metadata": { "type": "object", "properties": { "name": { "type": "string" }, "labels": {"type": "object"} } },
                "spec": {
                    "type": "object",
                    "properties": {
                        "a": { "$ref": "#/definitions/A" },
                        "b": { "anyOf": [{ "type": "string" }, { "type": "integer" }] },
                        "c": { "type": "string", "x-kubernetes-int-or-string": true },
                        "d": { "type": "array" },
                        "e": { "type": "object", "properties": { "x": { "type": "string" } }, "additionalProperties": true },
                        "f": { "type": "integer", "default": 3 }
                    },
                    "required": ["zzz"]
                }
            }
        });
        let found = problems_in_value(&schema);
        let expected = [
            "metadata: at the root only `type: object` is allowed",
            "spec: required field \"zzz\" is not a property",
            "spec.a: `$ref` is not allowed",
            "spec.a: type is required",
            "spec.b: `anyOf` is not allowed",
            "spec.c: x-kubernetes-int-or-string must not have a type",
            "spec.d: an array needs one `items` schema",
            "spec.e: additionalProperties must not be combined with properties",
            "spec.f: unexpected default",
        ];
        for message in expected {
            assert!(found.iter().any(|f| f == message), "missing {message:?} in {found:#?}");
        }
    }
}

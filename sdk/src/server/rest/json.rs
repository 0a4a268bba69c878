//! grpc-gateway's JSON mapping of the SDK messages, by hand: keys are the proto field names,
//! every field is emitted even when it holds its default, int64 values are strings, and on input
//! unknown keys are ignored while known keys of the wrong type are an INVALID_ARGUMENT.

use serde_json::{Map, Value, json};

use crate::proto::{self, beta};
use crate::server::SdkError;

fn int64(value: i64) -> Value {
    Value::String(value.to_string())
}

fn string_map(map: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Object(map.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// `GameServer`, as GET /gameserver and /watch/gameserver send it.
pub fn game_server(gs: &proto::GameServer) -> Value {
    let meta = gs.object_meta.clone().unwrap_or_default();
    let health = gs.spec.unwrap_or_default().health.unwrap_or_default();
    let status = gs.status.clone().unwrap_or_default();
    let players = status.players.clone().unwrap_or_default();
    json!({
        "object_meta": {
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
            "resource_version": meta.resource_version,
            "generation": int64(meta.generation),
            "creation_timestamp": int64(meta.creation_timestamp),
            "deletion_timestamp": int64(meta.deletion_timestamp),
            "annotations": string_map(&meta.annotations),
            "labels": string_map(&meta.labels),
        },
        "spec": {
            "health": {
                "disabled": health.disabled,
                "period_seconds": health.period_seconds,
                "failure_threshold": health.failure_threshold,
                "initial_delay_seconds": health.initial_delay_seconds,
            },
        },
        "status": {
            "state": status.state,
            "address": status.address,
            "ports": status.ports.iter().map(|p| json!({"name": p.name, "port": p.port})).collect::<Vec<_>>(),
            "players": {
                "count": int64(players.count),
                "capacity": int64(players.capacity),
                "ids": players.ids,
            },
            "counters": status.counters.iter().map(|(name, c)| {
                (name.clone(), json!({"count": int64(c.count), "capacity": int64(c.capacity)}))
            }).collect::<Map<_, _>>(),
            "lists": status.lists.iter().map(|(name, l)| {
                (name.clone(), json!({"capacity": int64(l.capacity), "values": l.values}))
            }).collect::<Map<_, _>>(),
            "addresses": status.addresses.iter().map(|a| json!({"type": a.r#type, "address": a.address})).collect::<Vec<_>>(),
        },
    })
}

/// beta `Counter`.
pub fn counter(counter: &beta::Counter) -> Value {
    json!({"name": counter.name, "count": int64(counter.count), "capacity": int64(counter.capacity)})
}

/// beta `List`.
pub fn list(list: &beta::List) -> Value {
    json!({"name": list.name, "capacity": int64(list.capacity), "values": list.values})
}

/// alpha `Count`.
pub fn count(count: i64) -> Value {
    json!({"count": int64(count)})
}

/// alpha `Bool`.
pub fn boolean(value: bool) -> Value {
    json!({"bool": value})
}

/// alpha `PlayerIDList`.
pub fn player_ids(ids: &[String]) -> Value {
    json!({"list": ids})
}

/// The `Empty` message.
pub fn empty() -> Value {
    json!({})
}

/// Reads the fields of one input message. A field is found under its proto name or its JSON
/// (lowerCamelCase) name; `null` means unset, as in protojson.
#[derive(Debug)]
pub struct Fields<'a> {
    message: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// The fields of `value`, which must be a JSON object.
    pub fn of(message: &'static str, value: &'a Value) -> Result<Self, SdkError> {
        match value {
            Value::Object(map) => Ok(Self { message, map }),
            other => Err(SdkError::InvalidArgument(format!("{message}: expected a JSON object, got {}", kind(other)))),
        }
    }

    fn get<'n>(&self, names: &[&'n str]) -> Option<(&'n str, &'a Value)> {
        names.iter().find_map(|n| self.map.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))
    }

    fn wrong(&self, field: &str, expected: &str, got: &Value) -> SdkError {
        SdkError::InvalidArgument(format!("{}.{field}: expected {expected}, got {}", self.message, kind(got)))
    }

    /// Whether any of `names` is present (even as `null`).
    pub fn has(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.map.contains_key(*n))
    }

    /// A string field ("" when unset).
    pub fn string(&self, names: &[&str]) -> Result<String, SdkError> {
        match self.get(names) {
            None => Ok(String::new()),
            Some((_, Value::String(s))) => Ok(s.clone()),
            Some((field, other)) => Err(self.wrong(field, "a string", other)),
        }
    }

    /// An int64 field: a JSON string of digits or a JSON integer (None when unset).
    pub fn int64(&self, names: &[&str]) -> Result<Option<i64>, SdkError> {
        match self.get(names) {
            None => Ok(None),
            Some((field, Value::String(s))) => {
                s.trim().parse().map(Some).map_err(|_| self.wrong(field, "an int64", &Value::String(s.clone())))
            }
            Some((field, Value::Number(n))) => {
                n.as_i64().map(Some).ok_or_else(|| self.wrong(field, "an int64", &Value::Number(n.clone())))
            }
            Some((field, other)) => Err(self.wrong(field, "an int64", other)),
        }
    }

    /// A repeated string field (empty when unset).
    pub fn strings(&self, names: &[&str]) -> Result<Vec<String>, SdkError> {
        match self.get(names) {
            None => Ok(Vec::new()),
            Some((field, Value::Array(items))) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.wrong(field, "an array of strings", other)),
                })
                .collect(),
            Some((field, other)) => Err(self.wrong(field, "an array of strings", other)),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(s) if s.is_empty() => "an empty string",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int64_accepts_strings_and_integers_only() {
        let value = json!({"a": "5", "b": 6, "c": 1.5, "d": true, "e": null});
        let fields = Fields::of("M", &value).expect("object");
        assert_eq!(fields.int64(&["a"]), Ok(Some(5)));
        assert_eq!(fields.int64(&["b"]), Ok(Some(6)));
        assert!(fields.int64(&["c"]).is_err());
        assert_eq!(
            fields.int64(&["d"]).map_err(|e| e.to_string()),
            Err("M.d: expected an int64, got a boolean".into())
        );
        assert_eq!(fields.int64(&["e", "missing"]), Ok(None));
        assert!(Fields::of("M", &json!([1])).is_err());
    }
}

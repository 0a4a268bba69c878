//! The REST body of `POST /gameserverallocation`, as Agones' allocator (a gRPC-gateway using
//! protobuf's JSON mapping) reads and writes it.
//!
//! Input: keys are the proto field names (`gameServerSelectors`, `matchLabels`); enums are
//! their names (`"ALLOCATED"`, `"Distributed"`) or numbers; 64-bit integers are JSON numbers or
//! decimal strings; `null` means unset; the proto's own snake_case names are accepted too (as
//! protobuf's JSON parser does); an unknown key at any depth is refused (422 naming its path,
//! `gameServerSelectors[0].matchLabel`), so a typo never widens the choice; an empty body is an
//! empty request. Output: every field, unset ones included (`""`, `[]`, `{}`), except `metadata`
//! when the allocator reported none; counter and list `count`/`capacity` are decimal strings
//! (protobuf's JSON form of int64 wrappers).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::{Value, json};
use stadion_crds::FieldErrors;
use stadion_sdk::allocation as pb;
use stadion_sdk::allocation::allocation_request::SchedulingStrategy as PbScheduling;
use stadion_sdk::allocation::game_server_selector::GameServerState as PbState;
use stadion_sdk::allocation::label_match_expressions::Operator as PbOperator;
use stadion_sdk::allocation::priority::{Order as PbOrder, Type as PbType};

use crate::Error;
use crate::http::body::parse_json;

/// Parses a REST body into the request the gRPC service receives.
pub fn parse_request(body: &[u8]) -> Result<pb::AllocationRequest, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(pb::AllocationRequest::default());
    }
    let request: Request = parse_json(body)?;
    let mut errors = FieldErrors::default();
    let request = request.into_proto(&mut errors);
    errors.into_result().map_err(Error::Invalid)?;
    Ok(request)
}

/// The REST body of an allocated server.
pub fn response_body(response: &pb::AllocationResponse) -> Value {
    let wrapped = |v: Option<i64>| v.map_or(Value::Null, |n| Value::String(n.to_string()));
    let counters: serde_json::Map<String, Value> = response
        .counters
        .iter()
        .map(|(name, c)| (name.clone(), json!({"count": wrapped(c.count), "capacity": wrapped(c.capacity)})))
        .collect();
    let lists: serde_json::Map<String, Value> = response
        .lists
        .iter()
        .map(|(name, l)| (name.clone(), json!({"values": l.values, "capacity": wrapped(l.capacity)})))
        .collect();
    let mut body = json!({
        "gameServerName": response.game_server_name,
        "ports": response.ports.iter().map(|p| json!({"name": p.name, "port": p.port})).collect::<Vec<_>>(),
        "address": response.address,
        "addresses": response
            .addresses
            .iter()
            .map(|a| json!({"type": a.r#type, "address": a.address}))
            .collect::<Vec<_>>(),
        "nodeName": response.node_name,
        "source": response.source,
        "counters": counters,
        "lists": lists,
    });
    if let Some(metadata) = &response.metadata {
        body["metadata"] = json!({"labels": metadata.labels, "annotations": metadata.annotations});
    }
    body
}

type Labels = Option<BTreeMap<String, String>>;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct Request {
    namespace: Option<String>,
    #[serde(alias = "multi_cluster_setting")]
    multi_cluster_setting: Option<MultiClusterSetting>,
    #[serde(alias = "required_game_server_selector")]
    required_game_server_selector: Option<Selector>,
    #[serde(alias = "preferred_game_server_selectors")]
    preferred_game_server_selectors: Option<Vec<Selector>>,
    scheduling: Option<EnumValue>,
    #[serde(alias = "meta_patch")]
    meta_patch: Option<MetaPatch>,
    metadata: Option<MetaPatch>,
    #[serde(alias = "game_server_selectors")]
    game_server_selectors: Option<Vec<Selector>>,
    priorities: Option<Vec<Priority>>,
    counters: Option<BTreeMap<String, CounterAction>>,
    lists: Option<BTreeMap<String, ListAction>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct MultiClusterSetting {
    enabled: Option<bool>,
    #[serde(alias = "policy_selector")]
    policy_selector: Option<LabelSelector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct LabelSelector {
    #[serde(alias = "match_labels")]
    match_labels: Labels,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MetaPatch {
    labels: Labels,
    annotations: Labels,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct Selector {
    #[serde(alias = "match_labels")]
    match_labels: Labels,
    #[serde(alias = "game_server_state")]
    game_server_state: Option<EnumValue>,
    players: Option<PlayerSelector>,
    counters: Option<BTreeMap<String, CounterSelector>>,
    lists: Option<BTreeMap<String, ListSelector>>,
    #[serde(alias = "match_expressions")]
    match_expressions: Option<Vec<MatchExpression>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MatchExpression {
    key: Option<String>,
    operator: Option<EnumValue>,
    values: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct PlayerSelector {
    #[serde(alias = "min_available")]
    min_available: Option<Integer<u64>>,
    #[serde(alias = "max_available")]
    max_available: Option<Integer<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct CounterSelector {
    #[serde(alias = "min_count")]
    min_count: Option<Integer<i64>>,
    #[serde(alias = "max_count")]
    max_count: Option<Integer<i64>>,
    #[serde(alias = "min_available")]
    min_available: Option<Integer<i64>>,
    #[serde(alias = "max_available")]
    max_available: Option<Integer<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct ListSelector {
    #[serde(alias = "contains_value")]
    contains_value: Option<String>,
    #[serde(alias = "min_available")]
    min_available: Option<Integer<i64>>,
    #[serde(alias = "max_available")]
    max_available: Option<Integer<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Priority {
    #[serde(rename = "type")]
    type_: Option<EnumValue>,
    key: Option<String>,
    order: Option<EnumValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CounterAction {
    action: Option<String>,
    amount: Option<Integer<i64>>,
    capacity: Option<Integer<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct ListAction {
    #[serde(alias = "add_values")]
    add_values: Option<Vec<String>>,
    capacity: Option<Integer<i64>>,
    #[serde(alias = "delete_values")]
    delete_values: Option<Vec<String>>,
}

impl Request {
    fn into_proto(self, errors: &mut FieldErrors) -> pb::AllocationRequest {
        let selectors = |list: Option<Vec<Selector>>, field: &str, errors: &mut FieldErrors| {
            list.unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, s)| s.into_proto(&format!("{field}[{i}]"), errors))
                .collect::<Vec<_>>()
        };
        let game_server_selectors = selectors(self.game_server_selectors, "gameServerSelectors", errors);
        let preferred = selectors(self.preferred_game_server_selectors, "preferredGameServerSelectors", errors);
        let required = self.required_game_server_selector.map(|s| s.into_proto("requiredGameServerSelector", errors));
        let scheduling = resolve(
            "scheduling",
            self.scheduling,
            |n| PbScheduling::from_str_name(n).map(|v| v as i32),
            "Packed or Distributed",
            errors,
        );
        // The deprecated selector fields are part of the wire contract: old clients send them.
        #[allow(deprecated)]
        pb::AllocationRequest {
            namespace: self.namespace.unwrap_or_default(),
            multi_cluster_setting: self.multi_cluster_setting.map(|m| pb::MultiClusterSetting {
                enabled: m.enabled.unwrap_or_default(),
                policy_selector: m
                    .policy_selector
                    .map(|s| pb::LabelSelector { match_labels: s.match_labels.unwrap_or_default() }),
            }),
            required_game_server_selector: required,
            preferred_game_server_selectors: preferred,
            scheduling,
            meta_patch: self.meta_patch.map(MetaPatch::into_proto),
            metadata: self.metadata.map(MetaPatch::into_proto),
            game_server_selectors,
            priorities: self
                .priorities
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, p)| p.into_proto(&format!("priorities[{i}]"), errors))
                .collect(),
            counters: self
                .counters
                .unwrap_or_default()
                .into_iter()
                .map(|(name, c)| {
                    let action = pb::CounterAction {
                        action: c.action,
                        amount: c.amount.map(|v| v.0),
                        capacity: c.capacity.map(|v| v.0),
                    };
                    (name, action)
                })
                .collect(),
            lists: self
                .lists
                .unwrap_or_default()
                .into_iter()
                .map(|(name, l)| {
                    let action = pb::ListAction {
                        add_values: l.add_values.unwrap_or_default(),
                        capacity: l.capacity.map(|v| v.0),
                        delete_values: l.delete_values.unwrap_or_default(),
                    };
                    (name, action)
                })
                .collect(),
        }
    }
}

impl MetaPatch {
    fn into_proto(self) -> pb::MetaPatch {
        pb::MetaPatch { labels: self.labels.unwrap_or_default(), annotations: self.annotations.unwrap_or_default() }
    }
}

impl Selector {
    fn into_proto(self, path: &str, errors: &mut FieldErrors) -> pb::GameServerSelector {
        let state = resolve(
            &format!("{path}.gameServerState"),
            self.game_server_state,
            |n| PbState::from_str_name(n).map(|v| v as i32),
            "READY or ALLOCATED",
            errors,
        );
        let int = |v: Option<Integer<i64>>| v.map_or(0, |v| v.0);
        pb::GameServerSelector {
            match_labels: self.match_labels.unwrap_or_default(),
            game_server_state: state,
            players: self.players.map(|p| pb::PlayerSelector {
                min_available: p.min_available.map_or(0, |v| v.0),
                max_available: p.max_available.map_or(0, |v| v.0),
            }),
            counters: self
                .counters
                .unwrap_or_default()
                .into_iter()
                .map(|(name, c)| {
                    let selector = pb::CounterSelector {
                        min_count: int(c.min_count),
                        max_count: int(c.max_count),
                        min_available: int(c.min_available),
                        max_available: int(c.max_available),
                    };
                    (name, selector)
                })
                .collect(),
            lists: self
                .lists
                .unwrap_or_default()
                .into_iter()
                .map(|(name, l)| {
                    let selector = pb::ListSelector {
                        contains_value: l.contains_value.unwrap_or_default(),
                        min_available: int(l.min_available),
                        max_available: int(l.max_available),
                    };
                    (name, selector)
                })
                .collect(),
            match_expressions: self
                .match_expressions
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(index, e)| pb::LabelMatchExpressions {
                    key: e.key.unwrap_or_default(),
                    // By name or by number, as Agones' gateway takes any enum.
                    operator: resolve(
                        &format!("{path}.matchExpressions[{index}].operator"),
                        e.operator,
                        |n| PbOperator::from_str_name(n).map(|v| v as i32),
                        "In, NotIn, Exists or DoesNotExist",
                        errors,
                    ),
                    values: e.values.unwrap_or_default(),
                })
                .collect(),
        }
    }
}

impl Priority {
    fn into_proto(self, path: &str, errors: &mut FieldErrors) -> pb::Priority {
        pb::Priority {
            r#type: resolve(
                &format!("{path}.type"),
                self.type_,
                |n| PbType::from_str_name(n).map(|v| v as i32),
                "Counter or List",
                errors,
            ),
            key: self.key.unwrap_or_default(),
            order: resolve(
                &format!("{path}.order"),
                self.order,
                |n| PbOrder::from_str_name(n).map(|v| v as i32),
                "Ascending or Descending",
                errors,
            ),
        }
    }
}

/// An enum as JSON writes it: its name, or its number.
#[derive(Debug)]
enum EnumValue {
    Name(String),
    Number(i64),
}

/// The enum's number: a known name, or any number that fits (the gRPC conversion then rejects
/// numbers it does not know, as it does for binary requests).
fn resolve(
    path: &str,
    value: Option<EnumValue>,
    by_name: impl Fn(&str) -> Option<i32>,
    known: &str,
    errors: &mut FieldErrors,
) -> i32 {
    match value {
        None => 0,
        Some(EnumValue::Name(name)) => by_name(&name).unwrap_or_else(|| {
            errors.push(path, format!("{name:?} is not a known value; expected {known}"));
            0
        }),
        Some(EnumValue::Number(number)) => i32::try_from(number).unwrap_or_else(|_| {
            errors.push(path, format!("{number} is not a known value; expected {known}"));
            0
        }),
    }
}

impl<'de> Deserialize<'de> for EnumValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnumVisitor;
        impl Visitor<'_> for EnumVisitor {
            type Value = EnumValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an enum name or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnumValue, E> {
                Ok(EnumValue::Name(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnumValue, E> {
                Ok(EnumValue::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnumValue, E> {
                i64::try_from(v).map(EnumValue::Number).map_err(|_| E::custom(format!("{v} is out of range")))
            }
        }
        deserializer.deserialize_any(EnumVisitor)
    }
}

/// An integer as protobuf's JSON mapping allows it: a number (an integral float too) or a
/// decimal string.
#[derive(Debug, Clone, Copy)]
struct Integer<T>(T);

impl<'de, T: TryFrom<i128>> Deserialize<'de> for Integer<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntegerVisitor<T>(PhantomData<T>);
        impl<T: TryFrom<i128>> IntegerVisitor<T> {
            fn fit<E: de::Error>(v: i128) -> Result<Integer<T>, E> {
                T::try_from(v).map(Integer).map_err(|_| E::custom(format!("{v} is out of range")))
            }
        }
        impl<T: TryFrom<i128>> Visitor<'_> for IntegerVisitor<T> {
            type Value = Integer<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer, as a number or a decimal string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Integer<T>, E> {
                Self::fit(i128::from(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Integer<T>, E> {
                Self::fit(i128::from(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Integer<T>, E> {
                // 2^64 bounds every target type; the range check in `fit` does the rest.
                if v.fract() == 0.0 && v.abs() < 18_446_744_073_709_551_616.0 {
                    Self::fit(v as i128)
                } else {
                    Err(E::custom(format!("{v} is not an integer")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Integer<T>, E> {
                let parsed: i128 = v.parse().map_err(|_| E::custom(format!("{v:?} is not an integer")))?;
                Self::fit(parsed)
            }
        }
        deserializer.deserialize_any(IntegerVisitor(PhantomData))
    }
}

//! `AllocationRequest` (Agones' allocation proto) → [`GameServerAllocation`], and the paths of
//! validation errors back into the request's own field names.
//!
//! Everything wrong is reported at once, each problem at its path in the request as a client
//! wrote it (`gameServerSelectors[1].gameServerState`), never at the GameServerAllocation path
//! the client never saw.

use std::collections::BTreeMap;

use stadion_crds::FieldErrors;
use stadion_crds::allocation::{
    CounterAction, CounterActionKind, CounterSelector, GameServerAllocation, GameServerAllocationSpec,
    GameServerSelector, ListAction, ListSelector, MultiClusterSetting, PlayerSelector,
};
use stadion_crds::common::{MetaPatch, Priority, PriorityOrder, PriorityType, SchedulingStrategy};
use stadion_crds::gameserver::GameServerState;
use stadion_crds::k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use stadion_sdk::allocation as pb;
use stadion_sdk::allocation::allocation_request::SchedulingStrategy as PbScheduling;
use stadion_sdk::allocation::game_server_selector::GameServerState as PbState;
use stadion_sdk::allocation::label_match_expressions::Operator as PbOperator;
use stadion_sdk::allocation::priority::{Order as PbOrder, Type as PbType};

use crate::config::validate::dns_label;

/// The namespace an empty `namespace` means.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Which request field the allocation's `spec.metadata` came from, so its errors name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataSource {
    /// `metadata` (field 7).
    Metadata,
    /// The deprecated `metaPatch` (field 6), used because `metadata` was unset.
    MetaPatch,
}

/// A converted request: the allocation, and where its metadata came from.
#[derive(Clone, Debug)]
pub struct Converted {
    /// Ready for `apply_defaults`, `validate` and the allocator.
    pub allocation: GameServerAllocation,
    /// For naming metadata errors.
    pub metadata_source: MetadataSource,
}

/// Converts `request`, or returns every field it cannot take (unknown enum numbers, an
/// enabled multi-cluster setting, numbers out of range, a bad namespace).
pub fn to_allocation(request: pb::AllocationRequest) -> Result<Converted, FieldErrors> {
    let mut errors = FieldErrors::default();
    let namespace = if request.namespace.is_empty() { DEFAULT_NAMESPACE.to_owned() } else { request.namespace };
    if let Err(message) = dns_label(&namespace) {
        errors.push("namespace", message);
    }
    let multi_cluster_setting = request.multi_cluster_setting.map(|setting| {
        if setting.enabled {
            errors.push(
                "multiClusterSetting.enabled",
                "multi-cluster allocation is not supported: Stadion allocates in its own cluster; leave it false",
            );
        }
        MultiClusterSetting {
            enabled: setting.enabled,
            policy_selector: setting
                .policy_selector
                .map(|s| LabelSelector { match_labels: non_empty(s.match_labels), match_expressions: None }),
        }
    });
    // The deprecated selector fields are the wire contract too: old clients still send them.
    #[allow(deprecated)]
    let (required, preferred) = (request.required_game_server_selector, request.preferred_game_server_selectors);
    let selectors = request
        .game_server_selectors
        .into_iter()
        .enumerate()
        .map(|(i, s)| selector(&format!("gameServerSelectors[{i}]"), s, &mut errors))
        .collect();
    let required = required.map(|s| selector("requiredGameServerSelector", s, &mut errors));
    let preferred = preferred
        .into_iter()
        .enumerate()
        .map(|(i, s)| selector(&format!("preferredGameServerSelectors[{i}]"), s, &mut errors))
        .collect();
    let scheduling = match PbScheduling::try_from(request.scheduling) {
        Ok(PbScheduling::Packed) => SchedulingStrategy::Packed,
        Ok(PbScheduling::Distributed) => SchedulingStrategy::Distributed,
        Err(_) => {
            errors.push("scheduling", unknown_enum(request.scheduling, "Packed (0) or Distributed (1)"));
            SchedulingStrategy::Packed
        }
    };
    // Agones ignores the deprecated metaPatch whenever metadata is set.
    let (patch, metadata_source) = match (request.metadata, request.meta_patch) {
        (Some(metadata), _) => (Some(metadata), MetadataSource::Metadata),
        (None, Some(patch)) => (Some(patch), MetadataSource::MetaPatch),
        (None, None) => (None, MetadataSource::Metadata),
    };
    let priorities = request
        .priorities
        .into_iter()
        .enumerate()
        .map(|(i, p)| priority(&format!("priorities[{i}]"), p, &mut errors))
        .collect();
    let counters = request
        .counters
        .into_iter()
        .map(|(name, action)| {
            let converted = counter_action(&format!("counters[{name}]"), action, &mut errors);
            (name, converted)
        })
        .collect();
    let lists = request
        .lists
        .into_iter()
        .map(|(name, action)| {
            let converted = ListAction {
                add_values: action.add_values,
                delete_values: action.delete_values,
                capacity: action.capacity,
            };
            (name, converted)
        })
        .collect();
    let spec = GameServerAllocationSpec {
        multi_cluster_setting,
        required,
        preferred,
        priorities,
        selectors,
        scheduling: Some(scheduling),
        metadata: patch.map(|p| MetaPatch { labels: p.labels, annotations: p.annotations }),
        counters,
        lists,
    };
    let mut allocation = GameServerAllocation::new(spec);
    allocation.metadata.namespace = Some(namespace);
    errors.into_result()?;
    Ok(Converted { allocation, metadata_source })
}

fn selector(path: &str, selector: pb::GameServerSelector, errors: &mut FieldErrors) -> GameServerSelector {
    let state = match PbState::try_from(selector.game_server_state) {
        Ok(PbState::Ready) => GameServerState::Ready,
        Ok(PbState::Allocated) => GameServerState::Allocated,
        Err(_) => {
            errors.push(
                format!("{path}.gameServerState"),
                unknown_enum(selector.game_server_state, "READY (0) or ALLOCATED (1)"),
            );
            GameServerState::Ready
        }
    };
    let expressions: Vec<LabelSelectorRequirement> = selector
        .match_expressions
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let operator = match PbOperator::try_from(e.operator) {
                Ok(operator) => operator.as_str_name().to_owned(),
                Err(_) => {
                    errors.push(
                        format!("{path}.matchExpressions[{index}].operator"),
                        unknown_enum(e.operator, "In (0), NotIn (1), Exists (2) or DoesNotExist (3)"),
                    );
                    String::new()
                }
            };
            LabelSelectorRequirement {
                key: e.key,
                operator,
                values: if e.values.is_empty() { None } else { Some(e.values) },
            }
        })
        .collect();
    let players = selector.players.map(|p| PlayerSelector {
        min_available: to_i64(&format!("{path}.players.minAvailable"), p.min_available, errors),
        max_available: to_i64(&format!("{path}.players.maxAvailable"), p.max_available, errors),
    });
    GameServerSelector {
        label_selector: LabelSelector {
            match_labels: non_empty(selector.match_labels),
            match_expressions: if expressions.is_empty() { None } else { Some(expressions) },
        },
        game_server_state: Some(state),
        players,
        counters: selector
            .counters
            .into_iter()
            .map(|(name, c)| {
                let converted = CounterSelector {
                    min_count: c.min_count,
                    max_count: c.max_count,
                    min_available: c.min_available,
                    max_available: c.max_available,
                };
                (name, converted)
            })
            .collect(),
        lists: selector
            .lists
            .into_iter()
            .map(|(name, l)| {
                let converted = ListSelector {
                    contains_value: l.contains_value,
                    min_available: l.min_available,
                    max_available: l.max_available,
                };
                (name, converted)
            })
            .collect(),
    }
}

fn priority(path: &str, priority: pb::Priority, errors: &mut FieldErrors) -> Priority {
    let type_ = match PbType::try_from(priority.r#type) {
        Ok(PbType::Counter) => PriorityType::Counter,
        Ok(PbType::List) => PriorityType::List,
        Err(_) => {
            errors.push(format!("{path}.type"), unknown_enum(priority.r#type, "Counter (0) or List (1)"));
            PriorityType::Counter
        }
    };
    let order = match PbOrder::try_from(priority.order) {
        Ok(PbOrder::Ascending) => PriorityOrder::Ascending,
        Ok(PbOrder::Descending) => PriorityOrder::Descending,
        Err(_) => {
            errors.push(format!("{path}.order"), unknown_enum(priority.order, "Ascending (0) or Descending (1)"));
            PriorityOrder::Ascending
        }
    };
    Priority { type_, key: priority.key, order }
}

fn counter_action(path: &str, action: pb::CounterAction, errors: &mut FieldErrors) -> CounterAction {
    // Agones documents the values capitalised and shows them lower-case in examples: take both.
    let kind = match action.action.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(a) if a.eq_ignore_ascii_case("Increment") => Some(CounterActionKind::Increment),
        Some(a) if a.eq_ignore_ascii_case("Decrement") => Some(CounterActionKind::Decrement),
        Some(other) => {
            errors.push(format!("{path}.action"), format!("{other:?} is not Increment or Decrement"));
            None
        }
    };
    CounterAction { action: kind, amount: action.amount, capacity: action.capacity }
}

fn to_i64(path: &str, value: u64, errors: &mut FieldErrors) -> i64 {
    i64::try_from(value).unwrap_or_else(|_| {
        errors.push(path, format!("{value} is larger than {}", i64::MAX));
        i64::MAX
    })
}

fn unknown_enum(value: i32, known: &str) -> String {
    format!("{value} is not a known value; expected {known}")
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    if map.is_empty() { None } else { Some(map) }
}

/// Rewrites the GameServerAllocation paths of `errors` (from `validate()` or the allocator) into
/// the request's field names: `spec.selectors[0].matchLabels` → `gameServerSelectors[0].matchLabels`.
pub fn request_paths(errors: FieldErrors, metadata_source: MetadataSource) -> FieldErrors {
    let metadata = match metadata_source {
        MetadataSource::Metadata => "metadata",
        MetadataSource::MetaPatch => "metaPatch",
    };
    let renames: [(&str, &str); 10] = [
        ("metadata.namespace", "namespace"),
        ("spec.selectors", "gameServerSelectors"),
        ("spec.required", "requiredGameServerSelector"),
        ("spec.preferred", "preferredGameServerSelectors"),
        ("spec.metadata", metadata),
        ("spec.priorities", "priorities"),
        ("spec.counters", "counters"),
        ("spec.lists", "lists"),
        ("spec.scheduling", "scheduling"),
        ("spec.multiClusterSetting", "multiClusterSetting"),
    ];
    let mut out = FieldErrors::default();
    for error in errors.iter() {
        let path = renames
            .iter()
            .find_map(|(from, to)| {
                let rest = error.path.strip_prefix(from)?;
                // Only whole segments: `spec.listsX` is not `spec.lists`.
                (rest.is_empty() || rest.starts_with(['.', '['])).then(|| format!("{to}{rest}"))
            })
            .unwrap_or_else(|| error.path.clone());
        out.push(path, error.message.clone());
    }
    out
}

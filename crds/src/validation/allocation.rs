//! GameServerAllocation rules: selectors (state, label selector, counter/list/player filters),
//! the metadata patch, priorities, and the counter and list actions.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::fleet::check_priorities;
use super::{
    FieldErrors, check_annotations, check_labels, check_template_metadata, validate_label_value,
    validate_qualified_name,
};
use crate::allocation::{CounterSelector, GameServerAllocation, GameServerSelector, ListSelector};
use crate::allocation_ttl;
use crate::common::MAX_LIST_CAPACITY;
use crate::gameserver::GameServerState;

impl GameServerAllocation {
    /// Every problem with this allocation request, each with its field path. The name is
    /// optional: allocations are create-only and usually nameless.
    pub fn validate(&self) -> FieldErrors {
        let mut errors = FieldErrors::default();
        check_template_metadata("metadata", &self.metadata, &mut errors);
        let spec = &self.spec;
        for (i, selector) in spec.selectors.iter().enumerate() {
            check_selector(&format!("spec.selectors[{i}]"), selector, &mut errors);
        }
        if let Some(required) = &spec.required {
            check_selector("spec.required", required, &mut errors);
        }
        for (i, selector) in spec.preferred.iter().enumerate() {
            check_selector(&format!("spec.preferred[{i}]"), selector, &mut errors);
        }
        if let Some(metadata) = &spec.metadata {
            check_labels("spec.metadata.labels", &metadata.labels, &mut errors);
            check_annotations("spec.metadata.annotations", &metadata.annotations, &mut errors);
            // The patch lands on the allocated server, so it may set that server's TTL.
            allocation_ttl::check_annotation("spec.metadata.annotations", Some(&metadata.annotations), &mut errors);
        }
        check_priorities("spec.priorities", &spec.priorities, &mut errors);
        for (name, action) in &spec.counters {
            let at = format!("spec.counters[{name}]");
            match (action.action, action.amount) {
                (None, Some(_)) => errors.push(format!("{at}.action"), "required when amount is set"),
                (Some(_), None) => errors.push(format!("{at}.amount"), "required when action is set"),
                _ => {}
            }
            if let Some(amount) = action.amount
                && amount < 0
            {
                errors.push(format!("{at}.amount"), format!("{amount} must not be negative"));
            }
            if let Some(capacity) = action.capacity
                && capacity < 0
            {
                errors.push(format!("{at}.capacity"), format!("{capacity} must not be negative"));
            }
        }
        for (name, action) in &spec.lists {
            if let Some(capacity) = action.capacity
                && !(0..=MAX_LIST_CAPACITY).contains(&capacity)
            {
                errors.push(
                    format!("spec.lists[{name}].capacity"),
                    format!("{capacity} must be between 0 and {MAX_LIST_CAPACITY}"),
                );
            }
        }
        errors
    }
}

fn check_selector(path: &str, selector: &GameServerSelector, errors: &mut FieldErrors) {
    if let Some(state) = selector.game_server_state
        && !matches!(state, GameServerState::Ready | GameServerState::Allocated)
    {
        errors.push(format!("{path}.gameServerState"), format!("{state} must be Ready or Allocated"));
    }
    check_label_selector(path, &selector.label_selector, errors);
    if let Some(players) = &selector.players {
        check_range(
            &format!("{path}.players"),
            ("minAvailable", players.min_available),
            ("maxAvailable", players.max_available),
            errors,
        );
    }
    for (name, counter) in &selector.counters {
        check_counter_selector(&format!("{path}.counters[{name}]"), counter, errors);
    }
    for (name, list) in &selector.lists {
        check_list_selector(&format!("{path}.lists[{name}]"), list, errors);
    }
}

/// `matchLabels` keys/values and `matchExpressions` (In/NotIn need values, Exists/DoesNotExist
/// take none), as the API server checks label selectors.
pub(crate) fn check_label_selector(path: &str, selector: &LabelSelector, errors: &mut FieldErrors) {
    check_labels(&format!("{path}.matchLabels"), selector.match_labels.as_ref().unwrap_or(&BTreeMap::new()), errors);
    for (j, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{j}]");
        if let Err(e) = validate_qualified_name(&requirement.key) {
            errors.push(format!("{at}.key"), e);
        }
        let values = requirement.values.as_deref().unwrap_or_default();
        match requirement.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                errors.push(
                    format!("{at}.values"),
                    format!("must be non-empty when operator is {}", requirement.operator),
                );
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                errors.push(format!("{at}.values"), format!("must be empty when operator is {}", requirement.operator));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push(
                format!("{at}.operator"),
                format!("{other:?} is not a valid operator: In, NotIn, Exists or DoesNotExist"),
            ),
        }
        for (k, value) in values.iter().enumerate() {
            if let Err(e) = validate_label_value(value) {
                errors.push(format!("{at}.values[{k}]"), e);
            }
        }
    }
}

/// Both bounds ≥ 0, and min ≤ max unless max is 0 (no limit).
fn check_range(path: &str, min: (&str, i64), max: (&str, i64), errors: &mut FieldErrors) {
    for (field, value) in [min, max] {
        if value < 0 {
            errors.push(format!("{path}.{field}"), format!("{value} must not be negative"));
        }
    }
    if max.1 > 0 && min.1 > max.1 {
        errors.push(format!("{path}.{}", min.0), format!("{} must not be greater than {} {}", min.1, max.0, max.1));
    }
}

fn check_counter_selector(path: &str, counter: &CounterSelector, errors: &mut FieldErrors) {
    check_range(path, ("minCount", counter.min_count), ("maxCount", counter.max_count), errors);
    check_range(path, ("minAvailable", counter.min_available), ("maxAvailable", counter.max_available), errors);
}

fn check_list_selector(path: &str, list: &ListSelector, errors: &mut FieldErrors) {
    check_range(path, ("minAvailable", list.min_available), ("maxAvailable", list.max_available), errors);
    for (field, value) in [("minAvailable", list.min_available), ("maxAvailable", list.max_available)] {
        if value > MAX_LIST_CAPACITY {
            errors.push(format!("{path}.{field}"), format!("{value} must not be greater than {MAX_LIST_CAPACITY}"));
        }
    }
}

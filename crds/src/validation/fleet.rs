//! GameServerSet and Fleet rules: names, replicas, priorities, allocation overflow, the
//! GameServer template, and the Fleet rollout strategy.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::gameserver::check_spec;
use super::{
    FieldErrors, IntOrPercent, LABELLED_NAME_MAX, check_annotations, check_labels, check_metadata,
    check_template_metadata, parse_int_or_percent,
};
use crate::allocation_ttl;
use crate::common::{MetaPatch, Priority};
use crate::fleet::{Fleet, FleetStrategyType};
use crate::gameserverset::{GameServerSet, GameServerTemplateSpec};

impl GameServerSet {
    /// Every problem with this GameServerSet, each with its field path. The name becomes the
    /// `agones.dev/gameserverset` label value, so it is limited to 63 characters.
    pub fn validate(&self) -> FieldErrors {
        let mut errors = FieldErrors::default();
        check_metadata("metadata", &self.metadata, false, LABELLED_NAME_MAX, &mut errors);
        check_replicas(self.spec.replicas, &mut errors);
        check_priorities("spec.priorities", &self.spec.priorities, &mut errors);
        check_overflow(self.spec.allocation_overflow.as_ref(), &mut errors);
        check_template(&self.spec.template, &mut errors);
        errors
    }
}

impl Fleet {
    /// Every problem with this Fleet, each with its field path: the GameServerSet rules plus the
    /// rollout strategy (rollingUpdate only with RollingUpdate; maxSurge and maxUnavailable an
    /// int ≥ 0 or a percentage 0–100%, not both zero).
    pub fn validate(&self) -> FieldErrors {
        let mut errors = FieldErrors::default();
        check_metadata("metadata", &self.metadata, false, LABELLED_NAME_MAX, &mut errors);
        check_replicas(self.spec.replicas, &mut errors);
        check_priorities("spec.priorities", &self.spec.priorities, &mut errors);
        check_overflow(self.spec.allocation_overflow.as_ref(), &mut errors);
        if let Some(strategy) = &self.spec.strategy {
            let kind = strategy.type_.unwrap_or_default();
            match (&strategy.rolling_update, kind) {
                (Some(_), FleetStrategyType::Recreate) => {
                    errors.push("spec.strategy.rollingUpdate", "may only be set when type is RollingUpdate");
                }
                (Some(ru), FleetStrategyType::RollingUpdate) => {
                    let surge = ru.max_surge.as_ref().and_then(|v| rolling_limit("maxSurge", v, &mut errors));
                    let unavailable =
                        ru.max_unavailable.as_ref().and_then(|v| rolling_limit("maxUnavailable", v, &mut errors));
                    if surge.is_some_and(is_zero) && unavailable.is_some_and(is_zero) {
                        // Neither new servers above replicas nor missing ready ones: the rollout
                        // could never make progress.
                        errors.push("spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when maxSurge is 0");
                    }
                }
                (None, _) => {}
            }
        }
        check_template(&self.spec.template, &mut errors);
        errors
    }
}

fn is_zero(value: IntOrPercent) -> bool {
    matches!(value, IntOrPercent::Int(0) | IntOrPercent::Percent(0))
}

fn rolling_limit(field: &str, value: &IntOrString, errors: &mut FieldErrors) -> Option<IntOrPercent> {
    let path = format!("spec.strategy.rollingUpdate.{field}");
    match parse_int_or_percent(value) {
        Ok(IntOrPercent::Int(n)) if n < 0 => errors.push(path, format!("{n} must not be negative")),
        Ok(IntOrPercent::Percent(p)) if !(0..=100).contains(&p) => {
            errors.push(path, format!("{p}% must be between 0% and 100%"));
        }
        Ok(parsed) => return Some(parsed),
        Err(e) => errors.push(path, e),
    }
    None
}

fn check_replicas(replicas: i32, errors: &mut FieldErrors) {
    if replicas < 0 {
        errors.push("spec.replicas", format!("{replicas} must not be negative"));
    }
}

fn check_overflow(overflow: Option<&MetaPatch>, errors: &mut FieldErrors) {
    if let Some(overflow) = overflow {
        check_labels("spec.allocationOverflow.labels", &overflow.labels, errors);
        check_annotations("spec.allocationOverflow.annotations", &overflow.annotations, errors);
    }
}

fn check_template(template: &GameServerTemplateSpec, errors: &mut FieldErrors) {
    check_template_metadata("spec.template.metadata", &template.metadata, errors);
    // Every server made from the template carries its annotations: refuse a bad TTL here
    // rather than on each of them.
    allocation_ttl::check_annotation(
        "spec.template.metadata.annotations",
        template.metadata.annotations.as_ref(),
        errors,
    );
    check_spec("spec.template.spec", &template.spec, false, errors);
}

/// Priorities: a non-empty key, each (type, key) once.
pub(crate) fn check_priorities(path: &str, priorities: &[Priority], errors: &mut FieldErrors) {
    for (i, priority) in priorities.iter().enumerate() {
        if priority.key.is_empty() {
            errors.push(format!("{path}[{i}].key"), "required");
        } else if priorities[..i].iter().any(|p| p.type_ == priority.type_ && p.key == priority.key) {
            errors.push(format!("{path}[{i}].key"), format!("duplicate priority for {:?}", priority.key));
        }
    }
}

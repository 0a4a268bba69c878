//! Status conditions. Stadion writes one, `Valid`, on GameServerSets and Fleets: with no
//! admission webhook in front of the API server an invalid spec can be stored, and the
//! condition is where `kubectl describe` and `kubectl wait --for=condition=Valid` find out.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stadion_crds::FieldErrors;
use stadion_crds::common::{Condition, ConditionStatus};

/// Type of the condition saying whether the spec passed validation.
pub const VALID: &str = "Valid";
/// Reason of `Valid=False`.
pub const REASON_VALIDATION_FAILED: &str = "ValidationFailed";
/// Reason of `Valid=True`.
pub const REASON_VALIDATED: &str = "Validated";

/// The `Valid` condition for an object at `generation` whose validation found `errors`
/// (none: valid). The transition time is filled in by [`set_condition`].
pub fn validity(errors: &FieldErrors, generation: Option<i64>) -> Condition {
    let (status, reason, message) = if errors.is_empty() {
        (ConditionStatus::True, REASON_VALIDATED, "the spec is valid".to_owned())
    } else {
        (ConditionStatus::False, REASON_VALIDATION_FAILED, errors.to_string())
    };
    Condition {
        type_: VALID.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: None,
    }
}

/// Puts `condition` into `conditions`, replacing the one of the same type. The transition time
/// moves to `now` only when the status changes, as Kubernetes' conventions ask. Returns whether
/// anything changed, so a caller writes (and reports) only real changes and never loops hot.
pub fn set_condition(conditions: &mut Vec<Condition>, mut condition: Condition, now: Timestamp) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            condition.last_transition_time = if existing.status == condition.status {
                existing.last_transition_time.clone().or(Some(Time(now)))
            } else {
                Some(Time(now))
            };
            if *existing == condition {
                return false;
            }
            *existing = condition;
        }
        None => {
            condition.last_transition_time = Some(Time(now));
            conditions.push(condition);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("valid")
    }

    fn invalid(message: &str) -> FieldErrors {
        let mut errors = FieldErrors::default();
        errors.push("spec.replicas", message);
        errors
    }

    #[test]
    fn a_new_condition_is_added_with_its_transition_time() {
        let mut conditions = Vec::new();
        assert!(set_condition(&mut conditions, validity(&invalid("must be ≥ 0"), Some(2)), at(10)));
        assert_eq!(conditions.len(), 1);
        let c = &conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status, c.reason.as_str()),
            (VALID, ConditionStatus::False, "ValidationFailed")
        );
        assert!(c.message.contains("spec.replicas") && c.message.contains("must be ≥ 0"), "{}", c.message);
        assert_eq!(c.observed_generation, Some(2));
        assert_eq!(c.last_transition_time, Some(Time(at(10))));
    }

    #[test]
    fn the_same_condition_again_changes_nothing() {
        let mut conditions = Vec::new();
        set_condition(&mut conditions, validity(&invalid("bad"), Some(2)), at(10));
        let before = conditions.clone();
        assert!(!set_condition(&mut conditions, validity(&invalid("bad"), Some(2)), at(99)));
        assert_eq!(conditions, before);
    }

    #[test]
    fn a_new_message_keeps_the_transition_time_and_a_new_status_moves_it() {
        let mut conditions = Vec::new();
        set_condition(&mut conditions, validity(&invalid("bad"), Some(2)), at(10));
        assert!(set_condition(&mut conditions, validity(&invalid("worse"), Some(3)), at(20)));
        assert_eq!(conditions[0].last_transition_time, Some(Time(at(10))), "still False");
        assert_eq!(conditions[0].observed_generation, Some(3));
        assert!(set_condition(&mut conditions, validity(&FieldErrors::default(), Some(4)), at(30)));
        assert_eq!(conditions.len(), 1, "replaced by type, not appended");
        assert_eq!(conditions[0].status, ConditionStatus::True);
        assert_eq!(conditions[0].reason, REASON_VALIDATED);
        assert_eq!(conditions[0].last_transition_time, Some(Time(at(30))));
    }

    #[test]
    fn other_conditions_are_left_alone() {
        let other = Condition {
            type_: "Progressing".into(),
            status: ConditionStatus::True,
            reason: "Rollout".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Some(Time(at(1))),
        };
        let mut conditions = vec![other.clone()];
        set_condition(&mut conditions, validity(&FieldErrors::default(), None), at(5));
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0], other);
    }
}

//! The one admission step every runtime runs on an Agones object before acting on it: apply the
//! defaults, then validate the defaulted object, then (for GameServerSets and Fleets) compute
//! the `Valid` condition.
//!
//! Agones does the first two in its admission webhooks. Stadion may run without one (a
//! cluster where the webhook is not installed, or the local runtime), so the same pure step
//! runs where objects enter: the local runtime's apply path (which refuses invalid manifests
//! and stores the defaulted object), and the executors (which write defaults back and report an
//! invalid spec as `Valid=False`, whoever stored it). Defaults come before validation because
//! Agones validates the defaulted object: a single-container template without `container`, for
//! example, is valid once the default names the container.

use jiff::Timestamp;
use stadion_crds::common::Condition;
use stadion_crds::{FieldErrors, Fleet, FleetAutoscaler, GameServer, GameServerSet};

use crate::conditions::{set_condition, validity};

/// A kind that goes through admission: it has Agones' defaults and validation rules.
pub trait Admissible: Clone + PartialEq {
    /// Applies the defaults in place (idempotent).
    fn apply_defaults(&mut self);

    /// Every problem with the object, each with its field path.
    fn validate(&self) -> FieldErrors;
}

macro_rules! admissible {
    ($($ty:ty),* $(,)?) => {$(
        impl Admissible for $ty {
            fn apply_defaults(&mut self) {
                <$ty>::apply_defaults(self);
            }

            fn validate(&self) -> FieldErrors {
                <$ty>::validate(self)
            }
        }
    )*};
}

admissible!(GameServer, GameServerSet, Fleet, FleetAutoscaler);

/// What admission made of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Admitted<K> {
    /// The object with every default applied: what should be stored.
    pub object: K,
    /// Whether the defaults changed anything (the stored copy lacks some).
    pub defaulted: bool,
    /// What validation of the defaulted object found (empty: valid).
    pub errors: FieldErrors,
}

impl<K> Admitted<K> {
    /// Whether the defaulted object passed validation.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Defaults `object`, then validates the result.
pub fn admit<K: Admissible>(object: &K) -> Admitted<K> {
    let mut defaulted = object.clone();
    defaulted.apply_defaults();
    let changed = defaulted != *object;
    let errors = defaulted.validate();
    Admitted { object: defaulted, defaulted: changed, errors }
}

/// A kind whose status carries the `Valid` condition (GameServerSet and Fleet).
pub trait HasConditions {
    /// The status conditions as stored (none without a status).
    fn conditions(&self) -> &[Condition];

    /// The status conditions, to change (a missing status is created).
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;

    /// `metadata.generation`, which the condition's `observedGeneration` reports.
    fn generation(&self) -> Option<i64>;
}

// Both kinds keep the conditions in the same place of their status.
macro_rules! has_conditions {
    ($($kind:ty),*) => {$(
        impl HasConditions for $kind {
            fn conditions(&self) -> &[Condition] {
                self.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default()
            }

            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                &mut self.status.get_or_insert_with(Default::default).conditions
            }

            fn generation(&self) -> Option<i64> {
                self.metadata.generation
            }
        }
    )*};
}

has_conditions!(GameServerSet, Fleet);

/// Puts the `Valid` condition for `errors` into `conditions` (a status about to be written),
/// for an object at `generation`. Returns whether that changed anything: only a change is
/// written and reported, so an invalid object costs one write and one Event, never a hot loop.
pub fn record_validity(
    conditions: &mut Vec<Condition>,
    errors: &FieldErrors,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    set_condition(conditions, validity(errors, generation), now)
}

/// `object` with its `Valid` condition saying `errors`, when that differs from what it carries
/// (`None`: nothing to write).
pub fn with_validity<K: HasConditions + Clone>(object: &K, errors: &FieldErrors, now: Timestamp) -> Option<K> {
    let mut conditions = object.conditions().to_vec();
    if !record_validity(&mut conditions, errors, object.generation(), now) {
        return None;
    }
    let mut next = object.clone();
    *next.conditions_mut() = conditions;
    Some(next)
}

#[cfg(test)]
mod tests {
    use stadion_crds::common::ConditionStatus;
    use stadion_crds::fleet::FleetSpec;
    use stadion_crds::gameserver::GameServerSpec;
    use stadion_crds::gameserverset::GameServerTemplateSpec;

    use super::*;
    use crate::conditions::VALID;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("valid")
    }

    fn spec() -> GameServerSpec {
        crate::testing::game_spec()
    }

    fn fleet(replicas: i32) -> Fleet {
        let template = GameServerTemplateSpec { metadata: Default::default(), spec: spec() };
        let mut fleet = Fleet::new("f", FleetSpec { replicas, template, ..Default::default() });
        fleet.metadata.generation = Some(2);
        fleet
    }

    #[test]
    fn defaults_come_before_validation_and_are_reported_once() {
        let mut gs = GameServer::new("gs", spec());
        // Agones' own example names no container in a single-container template: the default
        // names it, so the defaulted object is valid.
        gs.spec.container = None;
        let admitted = admit(&gs);
        assert!(admitted.defaulted);
        assert!(admitted.is_valid(), "{}", admitted.errors);
        assert_eq!(admitted.object.spec.container.as_deref(), Some("game"));
        assert_eq!(admitted.object.spec.ports[0].container.as_deref(), Some("game"));

        let again = admit(&admitted.object);
        assert!(!again.defaulted, "defaults are idempotent");
        assert_eq!(again.object, admitted.object);
    }

    #[test]
    fn an_invalid_fleet_is_defaulted_and_its_problems_named() {
        let admitted = admit(&fleet(-1));
        assert!(admitted.defaulted);
        assert!(admitted.object.spec.strategy.is_some(), "RollingUpdate is the default");
        assert!(admitted.errors.has_path("spec.replicas"), "{}", admitted.errors);
        assert!(admit(&fleet(3)).is_valid());
    }

    #[test]
    fn validity_is_written_only_when_it_changes() {
        let bad = admit(&fleet(-1));
        let marked = with_validity(&bad.object, &bad.errors, at(10)).expect("a new condition");
        let valid = &marked.conditions()[0];
        assert_eq!((valid.type_.as_str(), valid.status), (VALID, ConditionStatus::False));
        assert_eq!(valid.observed_generation, Some(2));
        assert!(valid.message.contains("spec.replicas"), "{}", valid.message);
        assert_eq!(with_validity(&marked, &bad.errors, at(20)), None, "already says so");

        let fixed = with_validity(&marked, &FieldErrors::default(), at(30)).expect("turns True");
        assert_eq!(fixed.conditions()[0].status, ConditionStatus::True);
        assert_eq!(fixed.conditions().len(), 1);
    }
}

//! Declarative apply: validation before anything is written, create/update by name, pruning.

mod local_runtime;

use local_runtime::{manifests, set_yaml, with_runtime};
use stadion_controller::local::runtime::ApplyError;
use stadion_crds::GameServerSet;

#[tokio::test]
async fn invalid_manifests_are_rejected_with_their_messages_and_nothing_is_applied() {
    with_runtime(|runtime| async move {
        let good = set_yaml("good", 0, &[]);
        let bad = set_yaml("bad", -3, &[]);
        let error = runtime.apply(&manifests(&format!("{good}---\n{bad}")), true).expect_err("invalid");
        let ApplyError::Invalid(lines) = error else { panic!("expected Invalid") };
        assert!(
            lines.iter().any(|l| l.contains("GameServerSet default/bad") && l.contains("spec.replicas")),
            "{lines:?}"
        );
        assert!(runtime.store().api::<GameServerSet>().is_empty(), "nothing may be applied");

        let twice = runtime.apply(&manifests(&format!("{good}---\n{good}")), true).expect_err("duplicate");
        assert!(twice.to_string().contains("declared more than once"), "{twice}");
        runtime
    })
    .await;
}

#[tokio::test]
async fn apply_creates_updates_skips_unchanged_and_prunes() {
    with_runtime(|runtime| async move {
        let first =
            runtime.apply(&manifests(&format!("{}---\n{}", set_yaml("a", 0, &[]), set_yaml("b", 0, &[]))), true);
        let first = first.expect("applies");
        assert_eq!(first.created, ["GameServerSet default/a", "GameServerSet default/b"]);

        let again = runtime
            .apply(&manifests(&format!("{}---\n{}", set_yaml("a", 0, &[]), set_yaml("b", 0, &[]))), true)
            .expect("applies");
        assert_eq!(again.unchanged.len(), 2);
        assert!(again.updated.is_empty() && again.created.is_empty());

        let edited = runtime.apply(&manifests(&set_yaml("a", 0, &["--no-health"])), true).expect("applies");
        assert_eq!(edited.updated, ["GameServerSet default/a"]);
        assert_eq!(edited.deleted, ["GameServerSet default/b"]);
        let sets = runtime.store().api::<GameServerSet>();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets.get("default", "a").expect("a").metadata.generation, Some(2));
        runtime
    })
    .await;
}

#[tokio::test]
async fn applied_objects_are_stored_with_their_defaults_validated_after_defaulting() {
    with_runtime(|runtime| async move {
        runtime.apply(&manifests(&set_yaml("plain", 0, &[])), true).expect("applies");
        let set = runtime.store().api::<GameServerSet>().get("default", "plain").expect("stored");
        // What the kube runtime writes back: the set's and its template's defaults.
        assert_eq!(set.spec.scheduling, Some(stadion_crds::common::SchedulingStrategy::Packed));
        assert_eq!(set.spec.template.spec.container.as_deref(), Some("game"));
        assert_eq!(set.spec.template.spec.ports[0].range.as_deref(), Some("default"));

        // A single-container template naming another container is valid once defaulted: the
        // default names the one container, as in Agones.
        let yaml =
            set_yaml("renamed", 0, &[]).replace("\n        ports:", "\n        container: not-there\n        ports:");
        runtime.apply(&manifests(&yaml), false).expect("defaults come before validation");
        let set = runtime.store().api::<GameServerSet>().get("default", "renamed").expect("stored");
        assert_eq!(set.spec.template.spec.container.as_deref(), Some("game"));
        runtime
    })
    .await;
}

#[tokio::test]
async fn an_invalid_fleet_stored_past_apply_gets_valid_false_and_a_warning_event() {
    use stadion_crds::manifest::Resource;
    with_runtime(|runtime| async move {
        let Resource::Fleet(fleet) = manifests(&local_runtime::fleet_yaml("broken", -1, &[])).remove(0).resource else {
            panic!("a Fleet manifest")
        };
        // Apply refuses it; anything else writing to the store does not.
        runtime.store().api::<stadion_crds::Fleet>().create(*fleet).expect("stored");
        let fleet = local_runtime::eventually(std::time::Duration::from_secs(10), "Valid=False", || {
            let fleet = runtime.store().api::<stadion_crds::Fleet>().get("default", "broken").ok()?;
            let valid = fleet.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Valid")?.clone();
            (valid.status == stadion_crds::common::ConditionStatus::False).then_some(valid)
        })
        .await;
        assert!(fleet.message.contains("spec.replicas"), "{}", fleet.message);
        let events = runtime.recorder().events_for("Fleet", "default", "broken");
        assert!(events.iter().any(|e| e.type_ == "Warning" && e.reason == "ValidationFailed"), "{events:?}");
        assert!(runtime.store().api::<GameServerSet>().is_empty(), "an invalid fleet gets no set");
        runtime
    })
    .await;
}

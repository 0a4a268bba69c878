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

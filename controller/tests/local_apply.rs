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

#[tokio::test]
async fn generate_name_objects_get_api_server_names_and_keep_them_across_re_applies() {
    use stadion_crds::{Fleet, GameServer};
    with_runtime(|runtime| async move {
        let gameserver = |prefix: &str, extra: &str| {
            format!(
                "apiVersion: agones.dev/v1\nkind: GameServer\nmetadata:\n  generateName: {prefix}\n{extra}spec:\n  ports:\n    - name: default\n      containerPort: 7654\n  template:\n    spec:\n      containers:\n        - name: game\n          command: [\"sleep\", \"60\"]\n"
            )
        };
        let fleet = |replicas: i32| {
            local_runtime::fleet_yaml("unused", replicas, &[]).replace("name: unused", "generateName: simple-game-server-")
        };
        let folder = |gs_extra: &str, replicas: i32| {
            format!("{}---\n{}---\n{}", gameserver("duel-", gs_extra), gameserver("duel-", ""), fleet(replicas))
        };
        let first = runtime.apply(&manifests(&folder("", 0)), true).expect("two generateName servers are not duplicates");
        assert_eq!(first.created.len(), 3, "{first:?}");
        let servers = runtime.store().api::<GameServer>();
        let fleets = runtime.store().api::<Fleet>();
        let names = |prefix: &str| -> Vec<String> {
            let mut names: Vec<String> = servers
                .list(None, &stadion_controller::local::store::Selector::everything())
                .iter()
                .filter(|gs| gs.metadata.deletion_timestamp.is_none())
                .map(|gs| gs.name().to_owned())
                .filter(|n| n.starts_with(prefix))
                .collect();
            names.sort();
            names
        };
        let duels = names("duel-");
        assert_eq!(duels.len(), 2, "{duels:?}");
        for name in &duels {
            let suffix = name.strip_prefix("duel-").expect("prefix");
            assert_eq!(suffix.len(), 5, "{name}");
            assert!(suffix.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{name}");
        }
        let fleet_list = fleets.list(None, &stadion_controller::local::store::Selector::everything());
        assert_eq!(fleet_list.len(), 1);
        let fleet_name = fleet_list[0].name().to_owned();
        assert!(fleet_name.starts_with("simple-game-server-") && fleet_name.len() == "simple-game-server-".len() + 5);
        let fleet_uid = fleet_list[0].metadata.uid.clone();

        // The same folder again (a file saved unchanged): nothing new, nothing re-created.
        let again = runtime.apply(&manifests(&folder("", 0)), true).expect("applies");
        assert_eq!(again.unchanged.len(), 3, "{again:?}");
        assert!(again.created.is_empty() && again.deleted.is_empty(), "{again:?}");
        assert_eq!(names("duel-"), duels);

        // An edited document updates its own object; the fleet keeps its name and uid.
        let edited = runtime.apply(&manifests(&folder("  labels:\n    mode: ctf\n", 2)), true).expect("applies");
        assert_eq!(edited.updated.len(), 2, "{edited:?}");
        assert!(edited.created.is_empty() && edited.deleted.is_empty(), "{edited:?}");
        assert_eq!(names("duel-"), duels);
        let fleet_now = fleets.get("default", &fleet_name).expect("same fleet");
        assert_eq!((fleet_now.spec.replicas, fleet_now.metadata.uid.clone()), (2, fleet_uid));

        // A document removed: its object goes, the others stay.
        let fewer = format!("{}---\n{}", gameserver("duel-", "  labels:\n    mode: ctf\n"), fleet(2));
        let pruned = runtime.apply(&manifests(&fewer), true).expect("applies");
        assert_eq!(pruned.deleted.len(), 1, "{pruned:?}");
        assert_eq!(pruned.unchanged.len(), 2, "{pruned:?}");
        assert!(fleets.try_get("default", &fleet_name).is_some(), "the fleet keeps its name: {pruned:?}");
        let left = names("duel-");
        assert_eq!(left.len(), 1);
        let kept = servers.get("default", &left[0]).expect("kept");
        assert_eq!(kept.metadata.labels.as_ref().and_then(|l| l.get("mode")).map(String::as_str), Some("ctf"), "the edited one stays");
        runtime
    })
    .await;
}

//! The embedded store keeps the Kubernetes API contract the runtime relies on.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use stadion_controller::local::store::{Deletion, Selector, Store, StoreError, WatchEvent};
use stadion_crds::gameserver::GameServerSpec;
use stadion_crds::gameserverset::GameServerSetSpec;
use stadion_crds::{Fleet, GameServer, GameServerSet, GameServerState};

fn gameserver(name: &str) -> GameServer {
    GameServer::new(name, GameServerSpec::default())
}

fn with_state(gs: &GameServer, state: GameServerState) -> GameServer {
    let mut gs = gs.clone();
    gs.status.get_or_insert_with(Default::default).state = Some(state);
    gs
}

fn owned_by(uid: &str, kind: &str) -> Vec<OwnerReference> {
    vec![OwnerReference {
        api_version: "agones.dev/v1".into(),
        kind: kind.into(),
        name: "owner".into(),
        uid: uid.into(),
        controller: Some(true),
        ..OwnerReference::default()
    }]
}

fn version(meta: &ObjectMeta) -> u64 {
    meta.resource_version.as_deref().expect("stored objects have a version").parse().expect("numeric version")
}

#[test]
fn create_assigns_server_owned_metadata_and_rejects_duplicates() {
    let store = Store::new();
    let api = store.api::<GameServer>();
    let created = api.create(gameserver("gs-1")).expect("create");
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(meta.generation, Some(1));
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    assert!(version(meta) > 0);
    assert!(matches!(api.create(gameserver("gs-1")), Err(StoreError::AlreadyExists { .. })));

    // The same name in another namespace is a different object.
    let mut other = gameserver("gs-1");
    other.metadata.namespace = Some("team-b".into());
    assert!(api.create(other).is_ok());
    assert_eq!(api.list(Some("default"), &Selector::everything()).len(), 1);
    assert_eq!(api.list(None, &Selector::everything()).len(), 2);

    let mut with_version = gameserver("gs-2");
    with_version.metadata.resource_version = Some("7".into());
    assert!(matches!(api.create(with_version), Err(StoreError::Invalid { .. })));
    assert!(matches!(api.create(gameserver("Not_A_Name")), Err(StoreError::Invalid { .. })));
    assert!(matches!(api.create(gameserver("")), Err(StoreError::Invalid { .. })));
}

#[test]
fn generate_name_gives_unique_prefixed_names() {
    let api = Store::new().api::<GameServer>();
    let names: HashSet<String> = (0..200)
        .map(|_| {
            let mut gs = gameserver("");
            gs.metadata.name = None;
            gs.metadata.generate_name = Some("fleet-a-".into());
            api.create(gs).expect("create").name().to_owned()
        })
        .collect();
    assert_eq!(names.len(), 200);
    assert!(names.iter().all(|n| n.starts_with("fleet-a-") && n.len() == "fleet-a-".len() + 5));
}

#[test]
fn stale_resource_version_is_a_conflict_and_absent_one_is_unconditional() {
    let api = Store::new().api::<GameServer>();
    let v1 = api.create(gameserver("gs")).expect("create");
    let v2 = api.update(with_state(&v1, GameServerState::Ready)).expect("update with current version");
    assert!(version(&v2.metadata) > version(&v1.metadata));

    let stale = api.update(with_state(&v1, GameServerState::Allocated));
    assert!(matches!(&stale, Err(e) if e.is_conflict()), "{stale:?}");
    assert_eq!(api.get("default", "gs").expect("get").state(), Some(GameServerState::Ready));

    let mut blind = with_state(&v1, GameServerState::Shutdown);
    blind.metadata.resource_version = None;
    let v3 = api.update(blind).expect("unconditional update");
    assert_eq!(v3.state(), Some(GameServerState::Shutdown));

    assert!(api.update(gameserver("missing")).is_err_and(|e| e.is_not_found()));
}

#[test]
fn generation_moves_only_with_the_spec_and_no_op_updates_are_not_writes() {
    let api = Store::new().api::<GameServer>();
    let created = api.create(gameserver("gs")).expect("create");
    let status_only = api.update(with_state(&created, GameServerState::Ready)).expect("status update");
    assert_eq!(status_only.metadata.generation, Some(1));

    let mut labelled = (*status_only).clone();
    labelled.metadata.labels = Some(BTreeMap::from([("a".into(), "b".into())]));
    let labelled = api.update(labelled).expect("metadata update");
    assert_eq!(labelled.metadata.generation, Some(1));

    let mut respec = (*labelled).clone();
    respec.spec.container = Some("game".into());
    let respec = api.update(respec).expect("spec update");
    assert_eq!(respec.metadata.generation, Some(2));

    let same = api.update((*respec).clone()).expect("identical update");
    assert_eq!(same.metadata.resource_version, respec.metadata.resource_version);

    // Server-owned fields cannot be overwritten by a client.
    let mut forged = (*respec).clone();
    forged.metadata.generation = Some(99);
    forged.metadata.uid = None;
    forged.metadata.creation_timestamp = None;
    forged.status = None;
    let kept = api.update(forged).expect("update");
    assert_eq!(kept.metadata.generation, Some(2));
    assert_eq!(kept.metadata.uid, created.metadata.uid);
    assert_eq!(kept.metadata.creation_timestamp, created.metadata.creation_timestamp);
}

#[test]
fn finalizers_hold_a_deleted_object_until_removed() {
    let api = Store::new().api::<GameServer>();
    let mut gs = gameserver("gs");
    gs.metadata.finalizers = Some(vec!["agones.dev/controller".into()]);
    let created = api.create(gs).expect("create");

    let marked = match api.delete("default", "gs", None).expect("delete") {
        Deletion::Finalizing(o) => o,
        Deletion::Removed(_) => panic!("an object with finalizers must not be removed"),
    };
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(api.get("default", "gs").is_ok());

    // A second delete changes nothing; an update cannot clear deletionTimestamp.
    assert!(matches!(api.delete("default", "gs", None), Ok(Deletion::Finalizing(_))));
    let mut cleared = with_state(&marked, GameServerState::Shutdown);
    cleared.metadata.deletion_timestamp = None;
    let still = api.update(cleared).expect("update while finalizing");
    assert!(still.metadata.deletion_timestamp.is_some());

    let mut finalized = (*still).clone();
    finalized.metadata.finalizers = Some(Vec::new());
    api.update(finalized).expect("remove finalizer");
    assert!(api.get("default", "gs").is_err_and(|e| e.is_not_found()));
    assert!(created.metadata.uid.is_some());
}

#[test]
fn delete_precondition_protects_against_stale_deletes() {
    let api = Store::new().api::<GameServer>();
    let v1 = api.create(gameserver("gs")).expect("create");
    api.update(with_state(&v1, GameServerState::Allocated)).expect("update");
    let stale = v1.metadata.resource_version.as_deref();
    assert!(api.delete("default", "gs", stale).is_err_and(|e| e.is_conflict()));
    assert!(api.get("default", "gs").is_ok());
}

#[test]
fn removing_an_owner_deletes_its_dependents_transitively() {
    let store = Store::new();
    let fleet = store.api::<Fleet>().create(Fleet::new("f", Default::default())).expect("fleet");
    let fleet_uid = fleet.metadata.uid.clone().expect("uid");
    let mut set = GameServerSet::new("f-set", GameServerSetSpec::default());
    set.metadata.owner_references = Some(owned_by(&fleet_uid, "Fleet"));
    let set = store.api::<GameServerSet>().create(set).expect("set");
    let set_uid = set.metadata.uid.clone().expect("uid");

    let gameservers = store.api::<GameServer>();
    let mut plain = gameserver("plain");
    plain.metadata.owner_references = Some(owned_by(&set_uid, "GameServerSet"));
    gameservers.create(plain).expect("plain");
    let mut guarded = gameserver("guarded");
    guarded.metadata.owner_references = Some(owned_by(&set_uid, "GameServerSet"));
    guarded.metadata.finalizers = Some(vec!["agones.dev/controller".into()]);
    gameservers.create(guarded).expect("guarded");
    gameservers.create(gameserver("unrelated")).expect("unrelated");

    store.api::<Fleet>().delete("default", "f", None).expect("delete fleet");
    assert!(store.api::<GameServerSet>().is_empty());
    assert!(gameservers.try_get("default", "plain").is_none());
    let guarded = gameservers.get("default", "guarded").expect("finalizer keeps it");
    assert!(guarded.metadata.deletion_timestamp.is_some());
    assert!(gameservers.get("default", "unrelated").is_ok_and(|g| g.metadata.deletion_timestamp.is_none()));

    gameservers
        .update_with::<StoreError>("default", "guarded", |gs| {
            gs.metadata.finalizers = None;
            Ok(())
        })
        .expect("finalize");
    assert_eq!(gameservers.len(), 1);
}

#[test]
fn list_filters_by_label_selector() {
    let api = Store::new().api::<GameServer>();
    for (name, fleet) in [("a-1", "a"), ("a-2", "a"), ("b-1", "b")] {
        let mut gs = gameserver(name);
        gs.metadata.labels = Some(BTreeMap::from([("agones.dev/fleet".into(), fleet.into())]));
        api.create(gs).expect("create");
    }
    let selected = api.list(None, &Selector::from_labels([("agones.dev/fleet", "a")]));
    let names: Vec<_> = selected.iter().map(|g| g.name().to_owned()).collect();
    assert_eq!(names, ["a-1", "a-2"]);
}

#[tokio::test]
async fn watch_sees_every_change_in_order_after_a_consistent_list() {
    let api = Store::new().api::<GameServer>();
    api.create(gameserver("before")).expect("create");
    let mut watch = api.watch();
    assert_eq!(watch.initial.len(), 1);

    // A watcher that keeps up sees each change.
    let mut seen = Vec::new();
    let created = api.create(gameserver("gs")).expect("create");
    seen.push(watch.events.recv().await.expect("event"));
    let ready = api.update(with_state(&created, GameServerState::Ready)).expect("update");
    seen.push(watch.events.recv().await.expect("event"));
    api.delete("default", "gs", None).expect("delete");
    seen.push(watch.events.recv().await.expect("event"));
    assert!(matches!(&seen[0], WatchEvent::Added(o) if o.name() == "gs"));
    assert!(matches!(&seen[1], WatchEvent::Modified(o) if o.state() == Some(GameServerState::Ready)));
    assert!(matches!(&seen[2], WatchEvent::Deleted(o) if o.name() == "gs"));
    let versions: Vec<u64> = seen.iter().map(|e| version(&e.object().metadata)).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert_eq!(versions[1], version(&ready.metadata));
    assert!(watch.events.try_recv().is_err());
}

#[tokio::test]
async fn an_unread_watch_holds_only_the_latest_state_of_each_object() {
    let api = Store::new().api::<GameServer>();
    let mut unread = api.watch();
    let mut gs = api.create(gameserver("hot")).expect("create");
    for n in 0..5000 {
        let mut next = (*gs).clone();
        next.metadata.labels.get_or_insert_with(Default::default).insert("n".into(), n.to_string());
        gs = api.update(next).expect("update");
    }
    assert_eq!(unread.events.pending(), 1, "5,000 updates of one object leave one pending event");
    api.create(gameserver("other")).expect("create");
    assert_eq!(unread.events.pending(), 2);
    // The reader gets the latest state (still as the Added it has not seen), then the other.
    let first = unread.events.recv().await.expect("event");
    assert!(
        matches!(&first, WatchEvent::Added(o) if o.metadata.labels.as_ref().and_then(|l| l.get("n")).map(String::as_str) == Some("4999"))
    );
    assert_eq!(first.object().metadata.resource_version, gs.metadata.resource_version);
    assert!(matches!(unread.events.recv().await, Some(WatchEvent::Added(o)) if o.name() == "other"));
    assert!(unread.events.try_recv().is_err());

    // A burst ending in a deletion leaves just the deletion.
    let mut again = (*gs).clone();
    again.metadata.labels.get_or_insert_with(Default::default).insert("n".into(), "last".into());
    api.update(again).expect("update");
    api.delete("default", "hot", None).expect("delete");
    assert!(matches!(unread.events.recv().await, Some(WatchEvent::Deleted(o)) if o.name() == "hot"));
    assert!(unread.events.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_compare_and_swap_has_exactly_one_winner_per_version() {
    let api = Store::new().api::<GameServer>();
    api.create(gameserver("contended")).expect("create");
    let rounds = 50;
    let contenders = 16;
    for round in 0..rounds {
        let snapshot = api.get("default", "contended").expect("get");
        let barrier = Arc::new(tokio::sync::Barrier::new(contenders));
        let tasks: Vec<_> = (0..contenders)
            .map(|i| {
                let (api, snapshot, barrier) = (api.clone(), snapshot.clone(), barrier.clone());
                tokio::spawn(async move {
                    let mut mine = (*snapshot).clone();
                    // Unique per round and task, so no write is a no-op (which would succeed too).
                    let label = format!("{round}-{i}");
                    mine.metadata.labels = Some(BTreeMap::from([("winner".into(), label)]));
                    barrier.wait().await;
                    api.update(mine)
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(_) => winners += 1,
                Err(e) => assert!(e.is_conflict(), "{e}"),
            }
        }
        assert_eq!(winners, 1);
    }
}

#[test]
fn a_thousand_gameservers_are_cheap_to_hold_and_list() {
    let api = Store::new().api::<GameServer>();
    for i in 0..1000 {
        api.create(gameserver(&format!("gs-{i:04}"))).expect("create");
    }
    let started = std::time::Instant::now();
    for _ in 0..100 {
        assert_eq!(api.list(Some("default"), &Selector::everything()).len(), 1000);
    }
    // 100 full lists of 1,000 Arc'd objects are pointer copies; a deep copy would be far slower.
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
}

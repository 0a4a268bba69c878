//! The executors against the embedded store and the local recorder: what a pass writes, what it
//! reports, and what it asks its runtime to do next.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stadion_core::conditions::VALID;
use stadion_core::gameserverset::SetScalingOptions;
use stadion_core::names::SeededNames;
use stadion_core::store::{ObjectStore, StoreError, StoreResult};
use stadion_core::testing::{GameServerBuilder, game_spec};
use stadion_crds::common::{ConditionStatus, SchedulingStrategy};
use stadion_crds::fleet::{FleetSpec, FleetStatus};
use stadion_crds::fleetautoscaler::{
    BufferPolicy, FleetAutoscalerPolicy, FleetAutoscalerPolicyType, FleetAutoscalerSpec,
};
use stadion_crds::gameserverset::{GameServerSetSpec, GameServerSetStatus, GameServerTemplateSpec};
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet, GameServerState, labels};

use super::*;
use crate::local::recorder::LocalRecorder;
use crate::local::store::{Selector, Store};

fn seams<'a>(store: &'a Store, recorder: &'a LocalRecorder) -> Seams<'a> {
    Seams { gameservers: store, sets: store, fleets: store, autoscalers: store, recorder }
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn template() -> GameServerTemplateSpec {
    GameServerTemplateSpec { metadata: Default::default(), spec: game_spec() }
}

/// A defaulted set stored in `store`, as apply would store it.
fn stored_set(store: &Store, name: &str, replicas: i32, scheduling: SchedulingStrategy) -> Arc<GameServerSet> {
    let mut set = GameServerSet::new(name, GameServerSetSpec { replicas, template: template(), ..Default::default() });
    set.metadata.namespace = Some("default".into());
    set.spec.scheduling = Some(scheduling);
    set.apply_defaults();
    store.api::<GameServerSet>().create(set).expect("set stored")
}

fn fleet(name: &str, replicas: i32) -> Fleet {
    let mut fleet = Fleet::new(name, FleetSpec { replicas, template: template(), ..Default::default() });
    fleet.metadata.namespace = Some("default".into());
    fleet
}

fn stored_fleet(store: &Store, name: &str, replicas: i32) -> Arc<Fleet> {
    let mut fleet = fleet(name, replicas);
    fleet.apply_defaults();
    store.api::<Fleet>().create(fleet).expect("fleet stored")
}

fn reload<K: crate::local::store::StoreObject>(store: &Store, object: &K) -> Arc<K> {
    let meta = object.metadata();
    store
        .api::<K>()
        .get(meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or_default())
        .expect("stored")
}

/// A server of `set` (controller owner reference to its uid) in `state` on `node`.
fn member(store: &Store, set: &GameServerSet, name: &str, state: GameServerState, node: &str) -> Arc<GameServer> {
    let mut gs = stadion_core::gameserverset::new_gameserver(set, name.to_owned());
    gs.status = GameServerBuilder::new(name).state(state).node(node).build().status;
    store.api::<GameServer>().create(gs).expect("server stored")
}

fn owned(store: &Store, owner: &ObjectMeta) -> Vec<Arc<GameServer>> {
    store
        .api::<GameServer>()
        .list(None, &Selector::everything())
        .into_iter()
        .filter(|gs| stadion_core::is_controlled_by(&gs.metadata, owner))
        .collect()
}

async fn run_set(store: &Store, recorder: &LocalRecorder, set: &GameServerSet) -> Result<Outcome, ExecError> {
    let mut names = SeededNames::new(7);
    execute_set(set, seams(store, recorder), &mut names, now(), &SetScalingOptions::default()).await
}

async fn run_fleet(store: &Store, recorder: &LocalRecorder, fleet: &Fleet) -> Result<Outcome, ExecError> {
    let mut names = SeededNames::new(7);
    execute_fleet(fleet, seams(store, recorder), &mut names, now()).await
}

#[tokio::test]
async fn scale_up_creates_owned_servers_reports_them_and_writes_a_valid_status() {
    let (store, recorder) = (Store::new(), LocalRecorder::new());
    let set = stored_set(&store, "up", 3, SchedulingStrategy::Packed);
    let outcome = run_set(&store, &recorder, &set).await.expect("pass");
    assert_eq!(outcome, Outcome::RequeueAfter(SETTLE_CHECK), "work was done");

    let servers = owned(&store, &set.metadata);
    assert_eq!(servers.len(), 3);
    for gs in &servers {
        let reference = &gs.metadata.owner_references.as_ref().expect("owner reference")[0];
        assert_eq!(
            (reference.uid.as_str(), reference.controller),
            (set.metadata.uid.as_deref().unwrap_or_default(), Some(true))
        );
        assert_eq!(
            gs.metadata.labels.as_ref().and_then(|l| l.get(labels::GAMESERVERSET)).map(String::as_str),
            Some("up")
        );
    }
    let events = recorder.events_for("GameServerSet", "default", "up");
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].reason.as_str(), events[0].note.as_str()), ("SuccessfulCreate", "Created 3 GameServer(s)"));

    let stored = reload(&store, &*set);
    let status = stored.status.as_ref().expect("status written");
    assert_eq!(status.conditions[0].type_, VALID);
    assert_eq!(status.conditions[0].status, ConditionStatus::True);
    assert_eq!(recorder.reconciles(SETS).total, 1);

    // The next pass sees its servers by owner reference: nothing more to create.
    let outcome = run_set(&store, &recorder, &stored).await.expect("pass");
    assert_eq!(owned(&store, &set.metadata).len(), 3);
    assert_eq!(reload(&store, &*set).status.as_ref().map(|s| s.replicas), Some(3));
    assert!(matches!(outcome, Outcome::RequeueAfter(_)));
}

#[tokio::test]
async fn servers_that_only_carry_the_label_are_not_the_sets() {
    let (store, recorder) = (Store::new(), LocalRecorder::new());
    let set = stored_set(&store, "mine", 1, SchedulingStrategy::Packed);
    // A same-named stranger's server: the set's label, another owner's uid.
    let mut stranger = GameServerBuilder::new("mine-stranger").label(labels::GAMESERVERSET, "mine").build();
    stranger.metadata.owner_references =
        stadion_core::gameserverset::new_gameserver(&set, "x".into()).metadata.owner_references;
    if let Some(refs) = stranger.metadata.owner_references.as_mut() {
        refs[0].uid = "someone-else".into();
    }
    store.api::<GameServer>().create(stranger).expect("stored");
    run_set(&store, &recorder, &set).await.expect("pass");
    assert_eq!(owned(&store, &set.metadata).len(), 1, "the stranger does not count toward replicas");
    assert!(store.api::<GameServer>().try_get("default", "mine-stranger").is_some(), "nor is it touched");
}

#[tokio::test]
async fn scale_down_shuts_down_ready_servers_never_allocated_ones() {
    let (store, recorder) = (Store::new(), LocalRecorder::new());
    let set = stored_set(&store, "down", 1, SchedulingStrategy::Packed);
    member(&store, &set, "down-a", GameServerState::Allocated, "n1");
    member(&store, &set, "down-b", GameServerState::Ready, "n1");
    member(&store, &set, "down-c", GameServerState::Ready, "n1");
    run_set(&store, &recorder, &set).await.expect("pass");
    let state = |name: &str| store.api::<GameServer>().get("default", name).expect("stored").state();
    assert_eq!(state("down-a"), Some(GameServerState::Allocated));
    assert_eq!(state("down-b"), Some(GameServerState::Shutdown));
    assert_eq!(state("down-c"), Some(GameServerState::Shutdown));
}

/// Two Ready servers of the set on n1 (created first) and one on n2, and (in another namespace)
/// three more servers on n2: nodes are cluster-wide, so n2 holds four.
async fn two_nodes(scheduling: SchedulingStrategy) -> (Store, Arc<GameServerSet>) {
    let store = Store::new();
    let set = stored_set(&store, "spread", 2, scheduling);
    member(&store, &set, "spread-a", GameServerState::Ready, "n1");
    member(&store, &set, "spread-b", GameServerState::Ready, "n1");
    member(&store, &set, "spread-c", GameServerState::Ready, "n2");
    for i in 0..3 {
        let mut other = GameServerBuilder::new(&format!("other-{i}")).node("n2").build();
        other.metadata.namespace = Some("elsewhere".into());
        store.api::<GameServer>().create(other).expect("stored");
    }
    (store, set)
}

fn shut_down(store: &Store) -> Vec<String> {
    let mut names: Vec<String> = store
        .api::<GameServer>()
        .list(Some("default"), &Selector::everything())
        .iter()
        .filter(|gs| gs.state() == Some(GameServerState::Shutdown))
        .map(|gs| gs.name().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn packed_empties_the_least_loaded_node_counting_every_namespace() {
    let (store, set) = two_nodes(SchedulingStrategy::Packed).await;
    run_set(&store, &LocalRecorder::new(), &set).await.expect("pass");
    // n1 has 2 servers, n2 has 4 (1 of the set, 3 elsewhere): n1 goes first. Counting only
    // the set's own servers would have picked n2's single one.
    // Within the node the newest goes first.
    assert_eq!(shut_down(&store), ["spread-b"]);
}

#[tokio::test]
async fn distributed_ignores_nodes_and_takes_the_oldest() {
    let (store, set) = two_nodes(SchedulingStrategy::Distributed).await;
    run_set(&store, &LocalRecorder::new(), &set).await.expect("pass");
    assert_eq!(shut_down(&store), ["spread-a"], "the oldest server, whatever its node");
}

#[tokio::test]
async fn a_rolling_update_creates_the_new_set_and_drains_the_old_within_the_limits() {
    let (store, recorder) = (Store::new(), LocalRecorder::new());
    let fleet = stored_fleet(&store, "roll", 4);
    run_fleet(&store, &recorder, &fleet).await.expect("pass");
    let sets = store.api::<GameServerSet>().list(Some("default"), &Selector::everything());
    assert_eq!(sets.len(), 1);
    let old = sets[0].clone();
    assert_eq!(old.spec.replicas, 4);
    assert!(
        stadion_core::is_controlled_by(&old.metadata, &fleet.metadata),
        "the set is the fleet's by owner reference"
    );
    // Its four servers are Ready.
    let mut ready = (*old).clone();
    ready.status = Some(GameServerSetStatus { replicas: 4, ready_replicas: 4, ..Default::default() });
    store.replace_status(&ready).await.expect("status");

    // A new template: 25% surge and 25% unavailable of 4 is one each.
    let mut edited = (*reload(&store, &*fleet)).clone();
    edited.spec.template.spec.health.get_or_insert_default().period_seconds = Some(9);
    let edited = store.api::<Fleet>().update(edited).expect("edited");
    let outcome = run_fleet(&store, &recorder, &edited).await.expect("pass");
    assert_eq!(outcome, Outcome::RequeueAfter(SETTLE_CHECK));
    let sets = store.api::<GameServerSet>().list(Some("default"), &Selector::everything());
    assert_eq!(sets.len(), 2);
    let new = sets.iter().find(|s| s.name() != old.name()).expect("a new active set");
    assert_eq!(new.spec.replicas, 1, "maxSurge 1");
    assert_eq!(reload(&store, &*old).spec.replicas, 3, "maxUnavailable 1");
    let reasons: Vec<String> = recorder.events_for("Fleet", "default", "roll").into_iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["CreatingGameServerSet", "CreatingGameServerSet", "ScalingGameServerSet"]);
}

#[tokio::test]
async fn an_invalid_fleet_gets_valid_false_and_one_warning_and_nothing_else() {
    let (store, recorder) = (Store::new(), LocalRecorder::new());
    // Stored past apply (which would refuse it): replicas below zero.
    let fleet = stored_fleet(&store, "bad", -1);
    assert_eq!(run_fleet(&store, &recorder, &fleet).await.expect("pass"), Outcome::AwaitChange);
    let stored = reload(&store, &*fleet);
    let valid = &stored.status.as_ref().expect("status").conditions[0];
    assert_eq!((valid.type_.as_str(), valid.status), (VALID, ConditionStatus::False));
    assert!(valid.message.contains("spec.replicas"), "{}", valid.message);
    assert!(store.api::<GameServerSet>().is_empty(), "an invalid fleet gets no set");
    let events = recorder.events_for("Fleet", "default", "bad");
    assert_eq!((events.len(), events[0].type_, events[0].reason.as_str()), (1, "Warning", "ValidationFailed"));

    // Its own status write brings it back: nothing more is written or reported.
    let version = stored.metadata.resource_version.clone();
    assert_eq!(run_fleet(&store, &recorder, &stored).await.expect("pass"), Outcome::AwaitChange);
    assert_eq!(reload(&store, &*fleet).metadata.resource_version, version);
    assert_eq!(recorder.events_for("Fleet", "default", "bad").len(), 1);
}

#[tokio::test]
async fn an_undefaulted_fleet_gets_its_defaults_stored_first() {
    let (store, recorder) = (Store::new(), LocalRecorder::new());
    let raw = store.api::<Fleet>().create(fleet("raw", 1)).expect("stored");
    assert!(raw.spec.strategy.is_none());
    assert_eq!(run_fleet(&store, &recorder, &raw).await.expect("pass"), Outcome::AwaitChange);
    let stored = reload(&store, &*raw);
    assert!(stored.spec.strategy.is_some() && stored.spec.scheduling.is_some(), "{:?}", stored.spec);
    assert_eq!(stored.spec.template.spec.container.as_deref(), Some("game"));
    assert!(store.api::<GameServerSet>().is_empty(), "the pass ended at the write");
}

#[tokio::test]
async fn the_fleet_status_never_overwrites_allocations_from_a_stale_copy() {
    let (store, recorder) = (Store::new(), LocalRecorder::new());
    let stale = stored_fleet(&store, "counted", 0);
    // The allocator counts an allocation after this pass read the fleet.
    store
        .api::<Fleet>()
        .update_with::<crate::local::store::StoreError>("default", "counted", |f| {
            f.status.get_or_insert_with(FleetStatus::default).allocations = Some(7);
            Ok(())
        })
        .expect("counted");
    let outcome = run_fleet(&store, &recorder, &stale).await.expect("a lost race is no error");
    assert_eq!(outcome, Outcome::RequeueAfter(RETRY_SOON), "re-planned soon from fresh state");
    assert_eq!(reload(&store, &*stale).status.as_ref().and_then(|s| s.allocations), Some(7));

    // From the fresh copy the status is written, with the stored count.
    let fresh = reload(&store, &*stale);
    run_fleet(&store, &recorder, &fresh).await.expect("pass");
    let written = reload(&store, &*stale);
    let status = written.status.as_ref().expect("status");
    assert_eq!(status.allocations, Some(7));
    assert_eq!(status.conditions[0].status, ConditionStatus::True, "this pass wrote it");
}

/// The embedded store with GameServer writes that fail as told.
struct Faulty {
    store: Store,
    fail_creates: StoreError,
    fail_deletes: AtomicBool,
}

#[async_trait]
impl ObjectStore<GameServer> for Faulty {
    async fn get(&self, namespace: &str, name: &str) -> StoreResult<Option<Arc<GameServer>>> {
        ObjectStore::<GameServer>::get(&self.store, namespace, name).await
    }

    async fn list(&self, namespace: Option<&str>) -> StoreResult<Vec<Arc<GameServer>>> {
        ObjectStore::<GameServer>::list(&self.store, namespace).await
    }

    async fn create(&self, _object: &GameServer) -> StoreResult<Arc<GameServer>> {
        Err(self.fail_creates.clone())
    }

    async fn replace(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        self.store.replace(object).await
    }

    async fn replace_status(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        self.store.replace_status(object).await
    }

    async fn delete(&self, namespace: &str, name: &str) -> StoreResult<()> {
        if self.fail_deletes.load(Ordering::Relaxed) {
            return Err(StoreError::NotFound { kind: "GameServer", key: format!("{namespace}/{name}") });
        }
        ObjectStore::<GameServer>::delete(&self.store, namespace, name).await
    }
}

#[tokio::test]
async fn a_refused_write_aborts_the_pass_with_a_warning_and_an_error_count() {
    let (store, recorder) = (Store::new(), LocalRecorder::new());
    let set = stored_set(&store, "broken", 2, SchedulingStrategy::Packed);
    let faulty = Faulty {
        store: store.clone(),
        fail_creates: StoreError::Other("disk full".into()),
        fail_deletes: AtomicBool::new(false),
    };
    let seams = Seams { gameservers: &faulty, ..seams(&store, &recorder) };
    let mut names = SeededNames::new(1);
    let error = execute_set(&set, seams, &mut names, now(), &SetScalingOptions::default()).await.expect_err("aborts");
    assert_eq!((error.operation, error.kind), (Operation::Create, "GameServer"));
    assert_eq!(error.backoff(), ERROR_BACKOFF);
    assert!(error.to_string().contains("disk full"), "{error}");
    let events = recorder.events_for("GameServerSet", "default", "broken");
    assert_eq!((events.len(), events[0].type_, events[0].reason.as_str()), (1, "Warning", "FailedCreate"));
    assert!(events[0].note.contains("disk full"));
    assert_eq!(recorder.errors(SETS, "create_failed"), 1);
    assert!(reload(&store, &*set).status.is_none(), "the pass stopped before the status");
}

#[tokio::test]
async fn a_lost_race_retries_soon_and_a_vanished_server_is_no_error() {
    let (store, recorder) = (Store::new(), LocalRecorder::new());
    let set = stored_set(&store, "racy", 1, SchedulingStrategy::Packed);
    member(&store, &set, "racy-u", GameServerState::Unhealthy, "n1");
    let faulty = Faulty {
        store: store.clone(),
        fail_creates: StoreError::AlreadyExists { kind: "GameServer", key: "default/racy-x".into() },
        fail_deletes: AtomicBool::new(true),
    };
    let seams = Seams { gameservers: &faulty, ..seams(&store, &recorder) };
    let mut names = SeededNames::new(1);
    let outcome = execute_set(&set, seams, &mut names, now(), &SetScalingOptions::default()).await.expect("no error");
    assert_eq!(outcome, Outcome::RequeueAfter(RETRY_SOON));
    assert!(recorder.events_for("GameServerSet", "default", "racy").is_empty(), "nothing created, nothing deleted");
    assert!(reload(&store, &*set).status.is_some(), "the rest of the pass went on");
    assert_eq!(recorder.reconciles(SETS), crate::local::recorder::ReconcileCounts { total: 1, errors: 0 });
}

fn buffer_autoscaler(fleet: &str, size: i32) -> FleetAutoscaler {
    let policy = FleetAutoscalerPolicy {
        type_: FleetAutoscalerPolicyType::Buffer,
        buffer: Some(BufferPolicy { buffer_size: IntOrString::Int(size), min_replicas: 0, max_replicas: 10 }),
        ..Default::default()
    };
    let mut fas = FleetAutoscaler::new("fas", FleetAutoscalerSpec { fleet_name: fleet.into(), policy, sync: None });
    fas.metadata.namespace = Some("default".into());
    fas
}

#[tokio::test]
async fn the_autoscaler_scales_the_fleet_and_comes_back_on_its_interval() {
    let (store, recorder) = (Store::new(), LocalRecorder::new());
    let fleet = stored_fleet(&store, "f", 1);
    let mut counted = (*fleet).clone();
    counted.status = Some(FleetStatus { replicas: 1, allocated_replicas: 1, ..Default::default() });
    store.replace_status(&counted).await.expect("status");
    let raw = store.api::<FleetAutoscaler>().create(buffer_autoscaler("f", 2)).expect("stored");
    let webhooks = WebhookClient::new();

    // First its defaults are stored (sync every 30 s).
    let outcome = execute_autoscaler(&raw, seams(&store, &recorder), &webhooks, now()).await.expect("pass");
    assert_eq!(outcome, Outcome::AwaitChange);
    let fas = reload(&store, &*raw);
    assert_eq!(fas.spec.sync.as_ref().map(|s| s.fixed_interval.seconds), Some(30));

    let outcome = execute_autoscaler(&fas, seams(&store, &recorder), &webhooks, now()).await.expect("pass");
    assert_eq!(outcome, Outcome::RequeueAfter(std::time::Duration::from_secs(30)));
    assert_eq!(reload(&store, &*fleet).spec.replicas, 3, "1 allocated + a buffer of 2");
    let status = reload(&store, &*fas).status.clone().expect("status");
    assert_eq!((status.desired_replicas, status.current_replicas, status.able_to_scale), (3, 1, true));
    let events = recorder.events_for("FleetAutoscaler", "default", "fas");
    assert_eq!(events.last().map(|e| e.note.as_str()), Some("Scaling fleet f from 1 to 3"));
}

#[tokio::test]
async fn an_autoscaler_without_its_fleet_cannot_scale_and_says_so() {
    let (store, recorder) = (Store::new(), LocalRecorder::new());
    let mut fas = buffer_autoscaler("missing", 2);
    fas.apply_defaults();
    let fas = store.api::<FleetAutoscaler>().create(fas).expect("stored");
    execute_autoscaler(&fas, seams(&store, &recorder), &WebhookClient::new(), now()).await.expect("pass");
    assert!(reload(&store, &*fas).status.as_ref().is_some_and(|s| !s.able_to_scale));
    let events = recorder.events_for("FleetAutoscaler", "default", "fas");
    assert_eq!((events[0].type_, events[0].reason.as_str()), ("Warning", "AutoScalingFleetError"));
}

#[tokio::test]
async fn one_webhook_client_serves_every_call() {
    use axum::Json;
    use axum::routing::post;
    use serde_json::{Value, json};

    let app = axum::Router::new().route(
        "/scale",
        post(|Json(review): Json<Value>| async move {
            Json(json!({ "response": { "uid": review["request"]["uid"], "scale": true, "replicas": 4 } }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/scale", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let (store, recorder) = (Store::new(), LocalRecorder::new());
    stored_fleet(&store, "hooked", 1);
    let mut fas = buffer_autoscaler("hooked", 0);
    fas.spec.policy = FleetAutoscalerPolicy {
        type_: FleetAutoscalerPolicyType::Webhook,
        webhook: Some(stadion_crds::fleetautoscaler::WebhookPolicy { url: Some(url), ..Default::default() }),
        ..Default::default()
    };
    fas.apply_defaults();
    let fas = store.api::<FleetAutoscaler>().create(fas).expect("stored");
    let webhooks = WebhookClient::new();
    for _ in 0..2 {
        let fas = reload(&store, &*fas);
        execute_autoscaler(&fas, seams(&store, &recorder), &webhooks, now()).await.expect("pass");
    }
    assert_eq!(store.api::<Fleet>().get("default", "hooked").expect("fleet").spec.replicas, 4);
    assert_eq!(webhooks.clients_built(), 1, "built once, reused");
    server.abort();
}

/// The embedded store with GameServer creates that take a while, counting how many overlap.
struct Slow {
    store: Store,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl ObjectStore<GameServer> for Slow {
    async fn get(&self, namespace: &str, name: &str) -> StoreResult<Option<Arc<GameServer>>> {
        ObjectStore::<GameServer>::get(&self.store, namespace, name).await
    }

    async fn list(&self, namespace: Option<&str>) -> StoreResult<Vec<Arc<GameServer>>> {
        ObjectStore::<GameServer>::list(&self.store, namespace).await
    }

    async fn create(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.store.create(object).await
    }

    async fn replace(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        self.store.replace(object).await
    }

    async fn replace_status(&self, object: &GameServer) -> StoreResult<Arc<GameServer>> {
        self.store.replace_status(object).await
    }

    async fn delete(&self, namespace: &str, name: &str) -> StoreResult<()> {
        ObjectStore::<GameServer>::delete(&self.store, namespace, name).await
    }
}

#[tokio::test]
async fn a_scale_up_sends_its_creations_several_at_a_time_but_boundedly() {
    let (store, recorder) = (Store::new(), LocalRecorder::new());
    let set = stored_set(&store, "wide", 40, SchedulingStrategy::Packed);
    let slow = Slow { store: store.clone(), in_flight: Default::default(), most: Default::default() };
    let seams = Seams { gameservers: &slow, ..seams(&store, &recorder) };
    let mut names = SeededNames::new(3);
    execute_set(&set, seams, &mut names, now(), &SetScalingOptions::default()).await.expect("pass");
    assert_eq!(owned(&store, &set.metadata).len(), 40, "every planned server created");
    let most = slow.most.load(Ordering::SeqCst);
    assert!((2..=16).contains(&most), "{most} creations were in flight at once");
    let events = recorder.events_for("GameServerSet", "default", "wide");
    assert_eq!(events[0].note, "Created 40 GameServer(s)");
}

//! Mock-API tests: each scripts the exact requests one reconcile must make.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use stadion_crds::GameServerState;

use super::reconcile;
use crate::kube::fixtures::{ApiServer, Expect, context, gameserver, set_state};

const GS_PATH: &str = "/apis/agones.dev/v1/namespaces/default/gameservers";
const POD_PATH: &str = "/api/v1/namespaces/default/pods";

fn node(name: &str) -> Node {
    let address = |type_: &str, address: &str| NodeAddress { type_: type_.into(), address: address.into() };
    Node {
        metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
        spec: None,
        status: Some(NodeStatus {
            addresses: Some(vec![
                address("InternalIP", "10.0.0.7"),
                address("Hostname", "node-1"),
                address("ExternalIP", "203.0.113.7"),
            ]),
            ..NodeStatus::default()
        }),
    }
}

fn pod_of(gs: &stadion_crds::GameServer, node: Option<&str>, status: Option<PodStatus>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: gs.metadata.name.clone(),
            namespace: Some("default".into()),
            owner_references: Some(vec![OwnerReference {
                uid: gs.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec { node_name: node.map(str::to_owned), ..PodSpec::default() }),
        status,
    }
}

/// The GameServer written back whole (a resourceVersion-guarded PUT) in `state`, echoed by the
/// fake API server.
fn put_state(name: &str, state: &'static str) -> Expect {
    Expect::put(&format!("{GS_PATH}/{name}")).check(move |gs| assert_eq!(gs["status"]["state"], state)).respond_echo()
}

#[tokio::test]
async fn creating_gameserver_produces_its_pod_then_starting() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let gs = gameserver("gs-1");
    let script = server.run(vec![
        Expect::post(POD_PATH)
            .check(|pod| {
                assert_eq!(pod["metadata"]["name"], "gs-1");
                assert_eq!(pod["metadata"]["labels"]["agones.dev/role"], "gameserver");
                assert_eq!(pod["metadata"]["labels"]["agones.dev/gameserver"], "gs-1");
                let owner = &pod["metadata"]["ownerReferences"][0];
                assert_eq!(owner["kind"], "GameServer");
                assert_eq!(owner["apiVersion"], "agones.dev/v1");
                assert_eq!(owner["uid"], "uid-gs-1");
                assert_eq!(owner["controller"], true);
                let spec = &pod["spec"];
                assert_eq!(spec["serviceAccountName"], "stadion-sdk");
                let game = &spec["containers"][0];
                assert_eq!(game["name"], "game");
                assert_eq!(game["ports"][0]["containerPort"], 7654);
                assert_eq!(game["ports"][0]["hostPort"], 7000);
                assert_eq!(game["ports"][0]["protocol"], "UDP");
                let env = game["env"].as_array().unwrap();
                let var = |n: &str| env.iter().find(|e| e["name"] == n).map(|e| e["value"].clone());
                assert_eq!(var("AGONES_SDK_GRPC_PORT"), Some("9357".into()));
                assert_eq!(var("AGONES_SDK_HTTP_PORT"), Some("9358".into()));
                let probe = &game["livenessProbe"];
                assert_eq!(probe["httpGet"]["path"], "/gshealthz");
                assert_eq!(probe["httpGet"]["port"], 8080);
                assert_eq!(probe["periodSeconds"], 5);
                assert_eq!(probe["failureThreshold"], 3);
                assert_eq!(probe["initialDelaySeconds"], 5);
                let sidecar = &spec["containers"][1];
                assert_eq!(sidecar["name"], "stadion-sdk");
                assert_eq!(sidecar["image"], "stadion:test");
                assert_eq!(sidecar["imagePullPolicy"], "IfNotPresent", "a loaded :latest sidecar is used as is");
                assert_eq!(sidecar["args"][0], "sdk-server");
                let senv = sidecar["env"].as_array().unwrap();
                assert!(senv.iter().any(|e| e["name"] == "GAMESERVER_NAME" && e["value"] == "gs-1"));
                assert!(
                    senv.iter().any(|e| e["name"] == "POD_NAMESPACE"
                        && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace")
                );
                assert_eq!(sidecar["livenessProbe"]["httpGet"]["path"], "/healthz");
                let packed = &spec["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
                assert_eq!(packed["podAffinityTerm"]["labelSelector"]["matchLabels"]["agones.dev/role"], "gameserver");
                assert_eq!(packed["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname");
            })
            .respond_echo(),
        Expect::put(&format!("{GS_PATH}/gs-1"))
            .check(|gs| {
                assert_eq!(gs["metadata"]["resourceVersion"], "1", "write is guarded by the read version");
                assert_eq!(gs["status"]["state"], "Starting");
            })
            .respond_echo(),
        Expect::event("Starting"),
    ]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn pod_on_a_node_makes_the_server_scheduled_with_the_best_address() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let mut gs = gameserver("gs-1");
    set_state(&mut gs, GameServerState::Starting);
    caches.node(node("node-1"));
    caches.pod(pod_of(&gs, Some("node-1"), None));
    let script = server.run(vec![
        Expect::put(&format!("{GS_PATH}/gs-1"))
            .check(|gs| {
                let status = &gs["status"];
                assert_eq!(status["state"], "Scheduled");
                assert_eq!(status["address"], "203.0.113.7", "ExternalIP beats InternalIP");
                assert_eq!(status["nodeName"], "node-1");
                assert_eq!(status["addresses"].as_array().unwrap().len(), 3);
                assert_eq!(status["ports"], serde_json::json!([{"name": "default", "port": 7000}]));
            })
            .respond_echo(),
        Expect::event("Scheduled"),
    ]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn unscheduled_pod_changes_nothing() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let mut gs = gameserver("gs-1");
    set_state(&mut gs, GameServerState::Starting);
    caches.pod(pod_of(&gs, None, None));
    let script = server.run(vec![]);
    let action = reconcile(Arc::new(gs), ctx).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(2)));
    script.await.unwrap().expect_quiet(std::time::Duration::from_millis(50)).await;
}

#[tokio::test]
async fn evicted_pod_makes_the_server_unhealthy() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let mut gs = gameserver("gs-1");
    set_state(&mut gs, GameServerState::Ready);
    let failed = PodStatus { phase: Some("Failed".into()), reason: Some("Evicted".into()), ..PodStatus::default() };
    caches.pod(pod_of(&gs, Some("node-1"), Some(failed)));
    let script = server.run(vec![
        put_state("gs-1", "Unhealthy"),
        Expect::post(&crate::kube::fixtures::events_path("default"))
            .check(|e| {
                assert_eq!(e["reason"], "Unhealthy");
                assert_eq!(e["type"], "Warning");
            })
            .respond_echo(),
    ]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn deleted_pod_makes_the_server_unhealthy() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let mut gs = gameserver("gs-1");
    set_state(&mut gs, GameServerState::Allocated);
    let script = server.run(vec![
        Expect::get(&format!("{POD_PATH}/gs-1")).respond_status(404),
        put_state("gs-1", "Unhealthy"),
        Expect::event("Unhealthy"),
    ]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn game_container_dying_after_ready_makes_the_server_unhealthy() {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus};
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let mut gs = gameserver("gs-1");
    set_state(&mut gs, GameServerState::Ready);
    let restarted = ContainerStatus {
        name: "game".into(),
        restart_count: 1,
        last_state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated { exit_code: 137, ..Default::default() }),
            ..Default::default()
        }),
        ..ContainerStatus::default()
    };
    let status =
        PodStatus { phase: Some("Running".into()), container_statuses: Some(vec![restarted]), ..Default::default() };
    caches.pod(pod_of(&gs, Some("node-1"), Some(status)));
    let script = server.run(vec![put_state("gs-1", "Unhealthy"), Expect::event("Unhealthy")]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    script.await.unwrap();
}

/// The game container as the kubelet reports it after one restart: instance `running` is up,
/// instance `died` ended with exit code 1.
fn game_restarted(running: &str, died: &str) -> PodStatus {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus,
    };
    let container = ContainerStatus {
        name: "game".into(),
        container_id: Some(running.into()),
        restart_count: 1,
        state: Some(ContainerState { running: Some(ContainerStateRunning::default()), ..Default::default() }),
        last_state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 1,
                container_id: Some(died.into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..ContainerStatus::default()
    };
    PodStatus { phase: Some("Running".into()), container_statuses: Some(vec![container]), ..Default::default() }
}

/// `gs` in `state` on `node-1`, with `ready` recorded as its Ready game container.
fn on_node(state: GameServerState, ready: Option<&str>) -> stadion_crds::GameServer {
    let mut gs = gameserver("gs-1");
    set_state(&mut gs, state);
    gs.status.get_or_insert_default().node_name = "node-1".into();
    if let Some(id) = ready {
        gs.metadata.annotations.get_or_insert_default().insert(READY_CONTAINER.into(), id.into());
    }
    gs
}

const READY_CONTAINER: &str = "agones.dev/ready-container-id";

#[tokio::test]
async fn ready_records_the_game_container_that_got_there() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let gs = on_node(GameServerState::RequestReady, None);
    // It crashed once while starting; the second instance called Ready.
    caches.pod(pod_of(&gs, Some("node-1"), Some(game_restarted("containerd://second", "containerd://first"))));
    let script = server.run(vec![
        Expect::put(&format!("{GS_PATH}/gs-1"))
            .check(|gs| {
                assert_eq!(gs["status"]["state"], "Ready");
                assert_eq!(gs["metadata"]["annotations"][READY_CONTAINER], "containerd://second");
            })
            .respond_echo(),
        Expect::event("Ready"),
    ]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    // The restart before Ready is not held against it: no Unhealthy follows.
    script.await.unwrap().expect_quiet(std::time::Duration::from_millis(50)).await;
}

#[tokio::test]
async fn a_reconcile_woken_before_the_cache_shows_our_write_acts_on_that_write() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let mut gs = on_node(GameServerState::RequestReady, None);
    gs.metadata.resource_version = Some("1".into());
    caches.pod(pod_of(&gs, Some("node-1"), Some(game_restarted("containerd://second", "containerd://first"))));
    let script = server.run(vec![put_state("gs-1", "Ready"), Expect::event("Ready")]);
    reconcile(Arc::new(gs.clone()), ctx.clone()).await.unwrap();
    let server = script.await.unwrap();
    // Its Pod changes and wakes it while the watch still shows RequestReady at version 1: it
    // must see the Ready it wrote (version 2), not write Ready again on the stale version (which
    // the API server would refuse with a 409).
    let again = tokio::spawn(reconcile(Arc::new(gs), ctx));
    server.expect_quiet(std::time::Duration::from_millis(200)).await;
    again.await.unwrap().unwrap();
}

#[tokio::test]
async fn game_container_restarting_before_ready_is_not_a_crash() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let script = server.run(vec![]);
    for state in [GameServerState::Ready, GameServerState::Allocated, GameServerState::Reserved] {
        let gs = on_node(state, Some("containerd://second"));
        caches.pod(pod_of(&gs, Some("node-1"), Some(game_restarted("containerd://second", "containerd://first"))));
        reconcile(Arc::new(gs), ctx.clone()).await.unwrap();
    }
    script.await.unwrap().expect_quiet(std::time::Duration::from_millis(50)).await;
}

#[tokio::test]
async fn game_container_restarting_after_ready_is_a_crash() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    // The instance that became Ready died and the kubelet started another.
    let gs = on_node(GameServerState::Allocated, Some("containerd://first"));
    caches.pod(pod_of(&gs, Some("node-1"), Some(game_restarted("containerd://second", "containerd://first"))));
    let script = server.run(vec![put_state("gs-1", "Unhealthy"), Expect::event("Unhealthy")]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    script.await.unwrap();

    // Restarted twice since Ready: `last_state` no longer names the Ready instance, but the one
    // running is not it either.
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let gs = on_node(GameServerState::Ready, Some("containerd://first"));
    caches.pod(pod_of(&gs, Some("node-1"), Some(game_restarted("containerd://third", "containerd://second"))));
    let script = server.run(vec![put_state("gs-1", "Unhealthy"), Expect::event("Unhealthy")]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn an_expired_reservation_is_returned_to_ready_by_the_controller() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let mut gs = on_node(GameServerState::Reserved, Some("containerd://first"));
    gs.status.get_or_insert_default().reserved_until =
        Some(Time(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1)));
    let running = PodStatus { phase: Some("Running".into()), ..PodStatus::default() };
    caches.pod(pod_of(&gs, Some("node-1"), Some(running)));
    let script = server.run(vec![
        Expect::put(&format!("{GS_PATH}/gs-1"))
            .check(|gs| {
                assert_eq!(gs["metadata"]["resourceVersion"], "1", "write is guarded by the read version");
                assert_eq!(gs["status"]["state"], "Ready");
                assert!(gs["status"]["reservedUntil"].is_null(), "{}", gs["status"]);
                assert_eq!(gs["metadata"]["annotations"][READY_CONTAINER], "containerd://first", "kept");
            })
            .respond_echo(),
        Expect::event("Ready"),
    ]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    script.await.unwrap().expect_quiet(std::time::Duration::from_millis(50)).await;
}

#[tokio::test]
async fn a_pending_reservation_is_requeued_at_its_deadline() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let mut gs = on_node(GameServerState::Reserved, None);
    gs.status.get_or_insert_default().reserved_until =
        Some(Time(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30)));
    let running = PodStatus { phase: Some("Running".into()), ..PodStatus::default() };
    caches.pod(pod_of(&gs, Some("node-1"), Some(running)));
    let script = server.run(vec![]);
    let action = reconcile(Arc::new(gs), ctx).await.unwrap();
    let seconds = requeue_seconds(&action).unwrap_or_else(|| panic!("not a requeue: {action:?}"));
    assert!((29.0..=30.0).contains(&seconds), "requeued in {seconds}s, not at the deadline 30s away");
    script.await.unwrap().expect_quiet(std::time::Duration::from_millis(50)).await;
}

#[tokio::test]
async fn finalizer_is_removed_once_the_pod_is_gone() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let mut gs = gameserver("gs-1");
    set_state(&mut gs, GameServerState::Shutdown);
    gs.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
    let script = server.run(vec![
        Expect::get(&format!("{POD_PATH}/gs-1")).respond_status(404),
        Expect::put(&format!("{GS_PATH}/gs-1"))
            .check(|gs| {
                assert_eq!(gs["metadata"]["resourceVersion"], "1");
                let finalizers = gs["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
                assert!(!finalizers.iter().any(|f| f == "agones.dev/controller"), "{finalizers:?}");
            })
            .respond_echo(),
    ]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn deletion_deletes_the_pod_first_and_keeps_the_finalizer() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let mut gs = gameserver("gs-1");
    set_state(&mut gs, GameServerState::Shutdown);
    gs.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
    let pod = pod_of(&gs, Some("node-1"), None);
    let script = server.run(vec![
        Expect::get(&format!("{POD_PATH}/gs-1")).respond_json(&pod),
        Expect::delete(&format!("{POD_PATH}/gs-1")).respond_json(&pod),
    ]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn shutdown_deletes_the_gameserver() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let mut gs = gameserver("gs-1");
    set_state(&mut gs, GameServerState::Shutdown);
    let script = server.run(vec![Expect::delete(&format!("{GS_PATH}/gs-1")).respond_json(&gs)]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn new_gameserver_is_defaulted_then_gets_host_ports() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    // A node that joined after start-up: the allocator learns it from the cache.
    caches.node(node("node-1"));
    let mut gs = gameserver("gs-1");
    gs.status = None;
    gs.spec.ports[0].host_port = None;
    gs.metadata.finalizers = None;
    let script = server.run(vec![
        Expect::put(&format!("{GS_PATH}/gs-1"))
            .check(|gs| {
                assert_eq!(gs["status"]["state"], "PortAllocation");
                assert_eq!(gs["metadata"]["finalizers"][0], "agones.dev/controller");
            })
            .respond_echo(),
        Expect::event("PortAllocation"),
        Expect::put(&format!("{GS_PATH}/gs-1"))
            .check(|gs| {
                assert_eq!(gs["metadata"]["resourceVersion"], "2", "second write uses the first one's version");
                assert_eq!(gs["status"]["state"], "Creating");
                assert_eq!(gs["spec"]["ports"][0]["hostPort"], 7000);
            })
            .respond_echo(),
        Expect::event("Creating"),
    ]);
    reconcile(Arc::new(gs), ctx).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn invalid_gameserver_gets_a_warning_and_error_state_once() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let mut gs = gameserver("gs-1");
    gs.status = None;
    // Static without a hostPort is invalid.
    gs.spec.ports[0].port_policy = Some(stadion_crds::gameserver::PortPolicy::Static);
    gs.spec.ports[0].host_port = None;
    let script = server.run(vec![
        Expect::post(&crate::kube::fixtures::events_path("default"))
            .check(|e| {
                assert_eq!(e["reason"], "ValidationFailed");
                assert_eq!(e["type"], "Warning");
            })
            .respond_echo(),
        put_state("gs-1", "Error"),
        Expect::event("Error"),
    ]);
    let action = reconcile(Arc::new(gs), ctx).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    script.await.unwrap();
}

#[tokio::test]
async fn a_follower_writes_nothing() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let mut ctx = Arc::into_inner(ctx).unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    ctx.leadership = crate::kube::lease::Leadership::from_receiver(rx);
    let script = server.run(vec![]);
    reconcile(Arc::new(gameserver("gs-1")), Arc::new(ctx)).await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn no_nodes_means_waiting_with_a_warning_not_failing() {
    let (client, server) = ApiServer::start();
    let (ctx, _caches) = context(client);
    let mut gs = gameserver("gs-1");
    set_state(&mut gs, GameServerState::PortAllocation);
    gs.spec.ports[0].host_port = None;
    let script = server.run(vec![
        Expect::post(&crate::kube::fixtures::events_path("default"))
            .check(|e| {
                assert_eq!(e["reason"], "PortAllocation");
                assert_eq!(e["type"], "Warning");
            })
            .respond_echo(),
    ]);
    let action = reconcile(Arc::new(gs), ctx).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(5)));
    script.await.unwrap();
}

/// An Allocated server with a running Pod on `node-1` in the cache, last allocated `ago` before
/// now, with an allocation TTL annotation of `ttl` when given.
fn allocated(
    caches: &mut crate::kube::fixtures::Caches,
    ago: jiff::SignedDuration,
    ttl: Option<&str>,
) -> stadion_crds::GameServer {
    use stadion_crds::labels;
    let mut gs = gameserver("gs-1");
    set_state(&mut gs, GameServerState::Allocated);
    let annotations = gs.metadata.annotations.get_or_insert_default();
    annotations.insert(labels::LAST_ALLOCATED.into(), (jiff::Timestamp::now() - ago).to_string());
    if let Some(ttl) = ttl {
        annotations.insert(labels::ALLOCATION_TTL.into(), ttl.into());
    }
    let running = PodStatus { phase: Some("Running".into()), ..PodStatus::default() };
    caches.pod(pod_of(&gs, Some("node-1"), Some(running)));
    gs
}

/// `ctx` with a runtime-wide allocation TTL (`--allocation-ttl`).
fn with_default_ttl(ctx: Arc<crate::kube::context::Context>, ttl: &str) -> Arc<crate::kube::context::Context> {
    let mut ctx = Arc::into_inner(ctx).expect("the only handle");
    ctx.gameserver_defaults.allocation_ttl = ttl.parse().expect("a valid TTL");
    Arc::new(ctx)
}

/// Seconds of a requeue (`Action` only shows its delay through `Debug`: `Some(49.99s)`).
fn requeue_seconds(action: &kube::runtime::controller::Action) -> Option<f64> {
    let debug = format!("{action:?}");
    let delay = debug.split_once("Some(")?.1.split_once(')')?.0;
    match delay.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().ok().map(|ms| ms / 1000.0),
        None => delay.strip_suffix('s')?.parse().ok(),
    }
}

#[tokio::test]
async fn lapsed_allocation_is_shut_down_with_an_allocation_expired_event() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let gs = allocated(&mut caches, jiff::SignedDuration::from_mins(2), Some("1m"));
    let script = server.run(vec![
        Expect::put(&format!("{GS_PATH}/gs-1"))
            .check(|gs| {
                assert_eq!(gs["metadata"]["resourceVersion"], "1", "write is guarded by the read version");
                assert_eq!(gs["status"]["state"], "Shutdown");
            })
            .respond_echo(),
        Expect::event("Shutdown"),
        Expect::post(&crate::kube::fixtures::events_path("default"))
            .check(|e| {
                assert_eq!(e["reason"], "AllocationExpired");
                assert_eq!(e["type"], "Normal");
            })
            .respond_echo(),
    ]);
    let action = reconcile(Arc::new(gs), ctx).await.unwrap();
    // The write's watch event brings it back, Shutdown, to be deleted.
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    script.await.unwrap().expect_quiet(std::time::Duration::from_millis(50)).await;
}

#[tokio::test]
async fn allocation_not_yet_lapsed_is_left_alone_and_requeued_at_its_deadline() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    // No annotation: the runtime-wide TTL applies.
    let ctx = with_default_ttl(ctx, "1m");
    let gs = allocated(&mut caches, jiff::SignedDuration::from_secs(10), None);
    let script = server.run(vec![]);
    let action = reconcile(Arc::new(gs), ctx).await.unwrap();
    let seconds = requeue_seconds(&action).unwrap_or_else(|| panic!("not a requeue: {action:?}"));
    assert!((49.0..=50.0).contains(&seconds), "requeued in {seconds}s, not at the deadline 50s away");
    script.await.unwrap().expect_quiet(std::time::Duration::from_millis(50)).await;
}

#[tokio::test]
async fn allocation_ttl_annotation_off_wins_over_the_runtime_default() {
    let (client, server) = ApiServer::start();
    let (ctx, mut caches) = context(client);
    let ctx = with_default_ttl(ctx, "1m");
    let gs = allocated(&mut caches, jiff::SignedDuration::from_hours(24), Some("off"));
    let script = server.run(vec![]);
    let action = reconcile(Arc::new(gs), ctx).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    script.await.unwrap().expect_quiet(std::time::Duration::from_millis(50)).await;
}

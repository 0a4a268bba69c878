//! The whole Pod path on a real API server and kube-scheduler (`KUBECONFIG`):
//!
//! ```text
//! eval "$(scripts/cluster-up.sh /opt/kube/bin /tmp/kube)"
//! cargo test -p stadion-controller --test kube_pods -- --ignored --test-threads=1
//! ```
//!
//! The controller runs in-process; Pods are scheduled by the real kube-scheduler onto simulated
//! Nodes, whose stand-in kubelet (`kubelet/`) runs each container as a local process: the sidecar
//! is the real `stadion sdk-server` binary (kube backend, acting as the Pod's service account
//! with the install's RBAC), the game is `stadion simple-game-server`. A player reaches a game at
//! its GameServer's `status.address:status.ports[0].port`, through the Pod's host port.

mod kubelet;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use stadion_crds::{Fleet, GameServer, GameServerState};
use tokio::net::UdpSocket;

use kubelet::Mode;
use kubelet::cluster::{World, dynamic_udp, eventually, fleet, in_state, live, servers};

const WAIT: Duration = Duration::from_secs(60);

/// Sends `text` to the game at the GameServer's public address and port; its one-line reply.
async fn ask(gs: &GameServer, text: &str) -> String {
    let status = gs.status.clone().expect("a status");
    let target = format!("{}:{}", status.address, status.ports[0].port);
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
    let mut buf = [0u8; 2048];
    for _ in 0..20 {
        socket.send_to(text.as_bytes(), &target).await.expect("send");
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await {
            return String::from_utf8_lossy(&buf[..n]).trim_end().to_owned();
        }
    }
    panic!("no answer from the game at {target}");
}

/// Every version of Pod `name` the API server shows from now on, collected in the background.
fn record_pod(world: &World, name: &str) -> (tokio::task::JoinHandle<()>, std::sync::Arc<std::sync::Mutex<Vec<Pod>>>) {
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), &world.namespace);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let task = tokio::spawn(async move {
        let mut events = watcher(pods, config).boxed();
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event {
                sink.lock().unwrap().push(pod);
            }
        }
    });
    (task, seen)
}

/// The (restartCount, state.terminated exit code, lastState.terminated exit code) of `container`.
fn container_view(pod: &Pod, container: &str) -> Option<(i32, Option<i32>, Option<i32>)> {
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.iter().find(|c| c.name == container)?;
    let now = status.state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| t.exit_code);
    let last = status.last_state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| t.exit_code);
    Some((status.restart_count, now, last))
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn game_servers_go_ready_through_the_real_sidecar_and_crash_restart_and_exit_as_on_a_kubelet() {
    let world = World::new(2, 20, Mode::Processes).await;
    let (stop, controller) = world.start_controller();
    let fleets: Api<Fleet> = Api::namespaced(world.client.clone(), &world.namespace);
    let gameservers: Api<GameServer> = Api::namespaced(world.client.clone(), &world.namespace);
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), &world.namespace);
    fleets.create(&PostParams::default(), &fleet(&world, "game", 2, "Packed", dynamic_udp())).await.expect("fleet");

    // Ready through the real sidecar binary (its service-account token, the install's Role).
    let ready = eventually("2 Ready servers", WAIT, || async {
        let ready = in_state(&gameservers, GameServerState::Ready).await;
        (ready.len() == 2).then_some(ready)
    })
    .await;
    for gs in &ready {
        let status = gs.status.clone().unwrap();
        let node = world.nodes.iter().find(|n| n.name == status.node_name).expect("scheduled on one of our Nodes");
        assert_eq!(status.address, node.ip.to_string(), "the Node's address");
        let pod = pods.get(gs.name_any().as_str()).await.expect("its Pod");
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some(node.name.as_str()),
            "bound by the scheduler"
        );
        for container in ["game", stadion_controller::kube::pod::SIDECAR_CONTAINER] {
            assert_eq!(container_view(&pod, container), Some((0, None, None)), "{container} runs, never restarted");
            assert!(world.kubelet.pid(&gs.name_any(), container).is_some(), "{container} is a process");
        }
        // A player reaches the game at the address and port the GameServer advertises.
        assert_eq!(ask(gs, "hello").await, format!("ECHO {}: hello", gs.name_any()));
    }

    // The game allocates itself through its sidecar (SDK Allocate → a PUT as the service account).
    let (keeper, crasher) = (&ready[0], &ready[1]);
    assert_eq!(ask(keeper, "ALLOCATE").await, "ACK ALLOCATE");
    eventually("the server Allocated", WAIT, || async {
        let gs = gameservers.get(&keeper.name_any()).await.ok()?;
        (gs.state() == Some(GameServerState::Allocated)).then_some(())
    })
    .await;

    // The game process dies after Ready: the kubelet reports it (exit 137, one restart, by
    // restartPolicy Always) and the controller marks the server Unhealthy and replaces it.
    let (recorder, seen) = record_pod(&world, &crasher.name_any());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = world.kubelet.pid(&crasher.name_any(), "game").expect("the game's pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).expect("kill the game");
    eventually("the crashed server gone and replaced", WAIT, || async {
        let all = live(servers(&gameservers).await);
        let ready = all.iter().filter(|gs| gs.state() == Some(GameServerState::Ready)).count();
        let crashed_alive = all.iter().any(|gs| gs.name_any() == crasher.name_any());
        (!crashed_alive && ready == 1 && all.len() == 2).then_some(())
    })
    .await;
    let views: Vec<_> = seen.lock().unwrap().iter().filter_map(|p| container_view(p, "game")).collect();
    assert!(views.contains(&(1, None, Some(137))), "restartCount 1 with lastState.terminated.exitCode 137: {views:?}");
    recorder.abort();

    // EXIT: the game calls SDK Shutdown and exits 0; the server is Shutdown and deleted, its Pod
    // terminated (the sidecar stops once its GameServer is gone) and the fleet refills.
    let (recorder, seen) = record_pod(&world, &keeper.name_any());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ask(keeper, "EXIT").await, "ACK EXIT");
    eventually("the exited server's Pod gone and 2 Ready again", WAIT, || async {
        let gone = pods.get_opt(&keeper.name_any()).await.ok()?.is_none();
        (gone && in_state(&gameservers, GameServerState::Ready).await.len() == 2).then_some(())
    })
    .await;
    let views: Vec<_> = seen.lock().unwrap().iter().filter_map(|p| container_view(p, "game")).collect();
    assert!(views.iter().any(|v| v.1 == Some(0)), "the game's exit 0 is reported: {views:?}");
    recorder.abort();
    assert!(world.kubelet.pid(&keeper.name_any(), stadion_controller::kube::pod::SIDECAR_CONTAINER).is_none());

    // Deleting the Fleet leaves no Pods and no processes.
    fleets.delete("game", &DeleteParams::foreground()).await.expect("delete fleet");
    eventually("nothing left", WAIT, || async {
        let left = pods.list(&ListParams::default()).await.ok()?.items.len() + servers(&gameservers).await.len();
        (left == 0 && world.kubelet.processes() == 0).then_some(())
    })
    .await;
    let _ = stop.send(());
    controller.await.expect("controller task").expect("controller ran cleanly");
    world.clean_up().await;
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn the_real_scheduler_never_puts_two_pods_with_one_host_port_on_a_node() {
    let world = World::new(2, 20, Mode::Processes).await;
    let (stop, controller) = world.start_controller();
    let fleets: Api<Fleet> = Api::namespaced(world.client.clone(), &world.namespace);
    let gameservers: Api<GameServer> = Api::namespaced(world.client.clone(), &world.namespace);
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), &world.namespace);
    let port = 7000 + (rand::random::<u16>() % 1000);
    let fixed =
        json!({"name": "default", "portPolicy": "Static", "containerPort": 7654, "hostPort": port, "protocol": "UDP"});
    fleets.create(&PostParams::default(), &fleet(&world, "fixed", 3, "Packed", fixed)).await.expect("fleet");

    // Two Nodes, three Pods wanting the same host port: two run, one on each Node, both reachable
    // on that port at their Node's address; the third is left Unschedulable by the scheduler.
    let ready = eventually("2 Ready servers", WAIT, || async {
        let ready = in_state(&gameservers, GameServerState::Ready).await;
        (ready.len() == 2).then_some(ready)
    })
    .await;
    let nodes: std::collections::BTreeSet<_> = ready.iter().map(|gs| gs.status.clone().unwrap().node_name).collect();
    assert_eq!(nodes.len(), 2, "one per Node: {nodes:?}");
    for gs in &ready {
        assert_eq!(gs.status.clone().unwrap().ports[0].port, i32::from(port));
        assert_eq!(ask(gs, "hi").await, format!("ECHO {}: hi", gs.name_any()));
    }
    let pending = eventually("the third Pod Unschedulable", WAIT, || async {
        let list = pods.list(&ListParams::default()).await.ok()?.items;
        list.into_iter().find(|p| {
            let unbound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none();
            let unschedulable = p.status.iter().flat_map(|s| s.conditions.iter().flatten()).any(|c| {
                c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
            });
            unbound && unschedulable
        })
    })
    .await;
    let message =
        pending.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "PodScheduled").unwrap().message;
    assert!(message.unwrap_or_default().contains("free ports"), "the scheduler names host ports as the reason");
    // A Node frees up (the server on it exits): a pending Pod takes its place on that Node. Which
    // one is the scheduler's choice: the one left Unschedulable, or the replacement the fleet
    // creates for the leaving server, which wants the same port.
    let leaving = &ready[0];
    let freed = leaving.status.clone().unwrap().node_name;
    assert_eq!(ask(leaving, "EXIT").await, "ACK EXIT");
    eventually("a pending Pod scheduled where the port was freed", WAIT, || async {
        let list = pods.list(&ListParams::default()).await.ok()?.items;
        list.into_iter()
            .any(|p| {
                let on_freed = p.spec.as_ref().and_then(|s| s.node_name.as_ref()) == Some(&freed);
                on_freed && p.metadata.name != leaving.metadata.name && p.metadata.deletion_timestamp.is_none()
            })
            .then_some(())
    })
    .await;
    eventually("2 Ready again", WAIT, || async {
        (in_state(&gameservers, GameServerState::Ready).await.len() == 2).then_some(())
    })
    .await;
    let mut per_node: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for pod in pods.list(&ListParams::default()).await.expect("list Pods").items {
        if let Some(node) = pod.spec.and_then(|s| s.node_name).filter(|_| pod.metadata.deletion_timestamp.is_none()) {
            *per_node.entry(node).or_default() += 1;
        }
    }
    assert!(per_node.values().all(|&n| n == 1), "one Pod with the port per Node: {per_node:?}");

    fleets.delete("fixed", &DeleteParams::foreground()).await.expect("delete fleet");
    eventually("nothing left", WAIT, || async {
        (pods.list(&ListParams::default()).await.ok()?.items.is_empty() && world.kubelet.processes() == 0).then_some(())
    })
    .await;
    let _ = stop.send(());
    controller.await.expect("controller task").expect("controller ran cleanly");
    world.clean_up().await;
}

/// Nodes used by the fleet's Pods, once all `replicas` are bound.
async fn nodes_used(pods: &Api<Pod>, fleet: &str, replicas: usize) -> std::collections::BTreeMap<String, usize> {
    eventually("every Pod bound", WAIT, || async {
        let selector = format!("agones.dev/fleet={fleet}");
        let list = pods.list(&ListParams::default().labels(&selector)).await.ok()?.items;
        let bound: Vec<String> = list.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()).collect();
        if bound.len() != replicas || list.len() != replicas {
            return None;
        }
        let mut per_node = std::collections::BTreeMap::new();
        for node in bound {
            *per_node.entry(node).or_insert(0) += 1;
        }
        Some(per_node)
    })
    .await
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn packed_fleets_fill_the_fewest_nodes_and_distributed_ones_spread() {
    // Pods are scheduled, not run: the scheduler's choice is what is checked.
    let world = World::new(3, 4, Mode::Simulated).await;
    let (stop, controller) = world.start_controller();
    let fleets: Api<Fleet> = Api::namespaced(world.client.clone(), &world.namespace);
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), &world.namespace);

    fleets.create(&PostParams::default(), &fleet(&world, "packed", 6, "Packed", dynamic_udp())).await.expect("fleet");
    let packed = nodes_used(&pods, "packed", 6).await;
    let mut counts: Vec<usize> = packed.values().copied().collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![2, 4], "6 Packed Pods on 3 Nodes of 4: one full Node and one more: {packed:?}");
    fleets.delete("packed", &DeleteParams::foreground()).await.expect("delete");
    eventually("the packed Pods gone", WAIT, || async {
        pods.list(&ListParams::default()).await.ok()?.items.is_empty().then_some(())
    })
    .await;

    fleets
        .create(&PostParams::default(), &fleet(&world, "spread", 3, "Distributed", dynamic_udp()))
        .await
        .expect("fleet");
    let spread = nodes_used(&pods, "spread", 3).await;
    assert_eq!(spread.len(), 3, "3 Distributed Pods on 3 empty Nodes: one each: {spread:?}");

    // Scaling the Packed kind up later still packs: the new Pods join the busiest Node.
    fleets.delete("spread", &DeleteParams::foreground()).await.expect("delete");
    eventually("the spread Pods gone", WAIT, || async {
        pods.list(&ListParams::default()).await.ok()?.items.is_empty().then_some(())
    })
    .await;
    fleets.create(&PostParams::default(), &fleet(&world, "grow", 1, "Packed", dynamic_udp())).await.expect("fleet");
    let first = nodes_used(&pods, "grow", 1).await;
    fleets
        .patch_scale("grow", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": 3}})))
        .await
        .expect("scale");
    let grown = nodes_used(&pods, "grow", 3).await;
    assert_eq!(grown.len(), 1, "the 2 new Packed Pods join the first one's Node {first:?}: {grown:?}");

    let _ = stop.send(());
    controller.await.expect("controller task").expect("controller ran cleanly");
    world.clean_up().await;
}

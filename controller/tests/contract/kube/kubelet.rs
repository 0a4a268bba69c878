//! What would run on a Node, played by the harness: the kubelet (bind the Pods to our Node,
//! mark them Running, finish their deletion) and the game (a sidecar for each Scheduled server,
//! over the kube backend, and SDK Ready through it, as the test game does at start).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use stadion_controller::kube::sidecar::KubeBackend;
use stadion_crds::{GameServer, GameServerState, labels};
use stadion_sdk::server::{self, SdkServerHandle, ServeOptions};
use tokio::sync::Mutex;

use super::super::runtime::SdkCall;
use super::super::sdk;

/// A server's sidecar: the backend keeps its watch and writer alive.
struct Sidecar {
    _backend: KubeBackend,
    handle: SdkServerHandle,
}

/// The sidecars of the servers the harness plays the game of.
#[derive(Default)]
pub struct Games {
    sidecars: Mutex<HashMap<String, Sidecar>>,
}

impl Games {
    /// The REST address of server `name`'s sidecar.
    pub async fn sidecar(&self, name: &str) -> Option<SocketAddr> {
        self.sidecars.lock().await.get(name).map(|s| s.handle.http_addr())
    }

    /// Stops every sidecar.
    pub async fn shutdown(&self) {
        let all: Vec<Sidecar> = self.sidecars.lock().await.drain().map(|(_, s)| s).collect();
        for sidecar in all {
            sidecar.handle.shutdown().await;
        }
    }
}

/// Plays kubelet and game for the game-server Pods of `namespace`, on `node`, forever.
pub async fn play(client: Client, namespace: String, node: String, games: Arc<Games>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let gameservers: Api<GameServer> = Api::namespaced(client.clone(), &namespace);
    loop {
        run_pods(&pods, &gameservers, &node).await;
        run_games(&client, &gameservers, &namespace, &games).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The game container's command when it cannot start on this machine.
fn missing_command(pod: &Pod) -> Option<String> {
    let containers = &pod.spec.as_ref()?.containers;
    containers.iter().find_map(|c| {
        let command = c.command.as_ref()?.first()?;
        (command.starts_with('/') && !std::path::Path::new(command).exists()).then(|| command.clone())
    })
}

async fn run_pods(pods: &Api<Pod>, gameservers: &Api<GameServer>, node: &str) {
    let selector = format!("{}={}", labels::ROLE, labels::ROLE_GAMESERVER);
    let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else { return };
    for pod in list.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            let now = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
            let _ = pods.delete(&name, &now).await;
            continue;
        }
        if let Some(command) = missing_command(&pod) {
            // A real API server accepted a Pod whose game cannot run (the fake refuses it at
            // creation): the server is in Error, as locally.
            mark_error(gameservers, &name, &command).await;
            continue;
        }
        if pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none() {
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}
            });
            let bound: Result<serde_json::Value, _> =
                pods.create_subresource("binding", &name, &PostParams::default(), &binding).await;
            if let Err(error) = bound {
                eprintln!("binding Pod {name}: {error}");
            }
            continue;
        }
        if pod.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
            let status = json!({"status": {"phase": "Running", "podIP": "10.250.1.1"}});
            let _ = pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await;
        }
    }
}

async fn mark_error(gameservers: &Api<GameServer>, name: &str, command: &str) {
    for _ in 0..5 {
        let Ok(Some(mut gs)) = gameservers.get_opt(name).await else { return };
        if gs.state().is_some_and(GameServerState::is_terminal) {
            return;
        }
        gs.status.get_or_insert_with(Default::default).state = Some(GameServerState::Error);
        match gameservers.replace(name, &PostParams::default(), &gs).await {
            Ok(_) => {
                eprintln!("GameServer {name}: {command} does not exist here; marked Error");
                return;
            }
            Err(_) => continue,
        }
    }
}

async fn run_games(client: &Client, gameservers: &Api<GameServer>, namespace: &str, games: &Games) {
    let Ok(list) = gameservers.list(&ListParams::default()).await else { return };
    let present: Vec<String> = list.items.iter().map(|gs| gs.name().to_owned()).collect();
    let gone: Vec<Sidecar> = {
        let mut sidecars = games.sidecars.lock().await;
        let names: Vec<String> = sidecars.keys().filter(|n| !present.contains(n)).cloned().collect();
        names.into_iter().filter_map(|n| sidecars.remove(&n)).collect()
    };
    for sidecar in gone {
        sidecar.handle.shutdown().await;
    }
    for gs in list.items {
        let name = gs.name().to_owned();
        if gs.state() != Some(GameServerState::Scheduled)
            || gs.metadata.deletion_timestamp.is_some()
            || games.sidecars.lock().await.contains_key(&name)
        {
            continue;
        }
        let backend = match KubeBackend::connect(client.clone(), namespace, &name).await {
            Ok(backend) => backend,
            Err(error) => {
                eprintln!("sidecar of {name}: {error}");
                continue;
            }
        };
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let listeners = server::bind(loopback, loopback).await.expect("bind an SDK sidecar on loopback");
        let options = ServeOptions { health_checks: false, ..ServeOptions::default() };
        let handle = server::serve(Arc::new(backend.clone()), listeners, options).expect("serve the SDK");
        let addr = handle.http_addr();
        games.sidecars.lock().await.insert(name.clone(), Sidecar { _backend: backend, handle });
        if let Err(error) = sdk::call(addr, SdkCall::Ready).await {
            eprintln!("SDK Ready of {name}: {error}");
        }
    }
}

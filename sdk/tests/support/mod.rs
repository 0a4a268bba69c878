//! Shared fixtures: a local-mode sidecar on loopback port 0 with a call log.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stadion_crds::GameServer;
use stadion_crds::common::{CounterStatus, ListStatus};
use stadion_crds::gameserver::{Health, PlayersSpec};
use stadion_sdk::server::local::LocalBackend;
use stadion_sdk::server::{self, SdkCall, SdkServerHandle, ServeOptions};
use stadion_sdk::{Sdk, SdkConfig};

/// A running sidecar, its backend and every call it received.
pub struct Sidecar {
    pub backend: Arc<LocalBackend>,
    pub handle: SdkServerHandle,
    pub calls: Arc<Mutex<Vec<SdkCall>>>,
}

impl Sidecar {
    pub fn calls(&self) -> Vec<SdkCall> {
        self.calls.lock().expect("call log").clone()
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.handle.http_addr(), path)
    }

    pub async fn client(&self) -> Sdk {
        let config = SdkConfig {
            host: "127.0.0.1".into(),
            port: self.handle.grpc_addr().port(),
            connect_timeout: Duration::from_secs(5),
        };
        Sdk::connect_with(config).await.expect("client connects")
    }

    pub async fn game_server(&self) -> GameServer {
        use stadion_sdk::server::GameServerBackend;
        self.backend.get().await.expect("backend get")
    }
}

/// The local default GameServer plus a counter `rooms` (1/10), a list `players` (cap 3, [a]),
/// player capacity 2, and health checking off (tests that need it turn it on).
pub fn game_server() -> GameServer {
    let mut gs = GameServer::default();
    gs.spec.health = Some(Health { disabled: true, ..Health::default() });
    gs.spec.counters.insert("rooms".into(), CounterStatus { count: 1, capacity: 10 });
    gs.spec.lists.insert("players".into(), ListStatus { capacity: 3, values: vec!["a".into()] });
    gs.spec.players = Some(PlayersSpec { initial_capacity: 2 });
    server::local::localize(gs)
}

pub async fn start(gs: GameServer) -> Sidecar {
    start_with(gs, ServeOptions::default()).await
}

pub async fn start_with(gs: GameServer, mut options: ServeOptions) -> Sidecar {
    let backend = Arc::new(LocalBackend::new(gs));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&calls);
    options.observer = Some(Arc::new(move |call: &SdkCall| log.lock().expect("call log").push(call.clone())));
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let listeners = server::bind(loopback, loopback).await.expect("bind loopback");
    let handle = server::serve(backend.clone(), listeners, options).expect("serve");
    Sidecar { backend, handle, calls }
}

/// Polls `check` every 50 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

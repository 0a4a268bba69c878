//! Test support: an in-memory fleet implementing `Allocator`, and a matchmaker served on a
//! loopback port.

#![allow(dead_code)]

pub mod redis;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use stadion_core::allocator::AdmittedAllocation;
use stadion_crds::allocation::{GameServerAllocation, GameServerAllocationState, GameServerAllocationStatus};
use stadion_crds::gameserver::GameServerStatusPort;
use stadion_matchmaker::{AllocateError, AllocationOutcome, Allocator, Matchmaker, MatchmakerConfig};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// A fleet of Ready servers in memory; each allocation takes one.
pub struct FakeFleet {
    ready: Mutex<VecDeque<String>>,
    next: AtomicU32,
    capacity: watch::Sender<u64>,
    /// Every request received, in order.
    pub requests: Mutex<Vec<GameServerAllocation>>,
    /// Fail this many next allocations with a backend error.
    pub backend_failures: AtomicU32,
    /// Servers given back through `release`.
    pub released: Mutex<Vec<String>>,
    /// Delay every allocation by this long.
    pub delay: Mutex<Duration>,
    /// Allocations called so far, counted as each call begins (before its delay).
    pub calls: AtomicU32,
}

impl FakeFleet {
    /// A fleet with `ready` Ready servers.
    pub fn new(ready: usize) -> Arc<Self> {
        let fleet = Arc::new(Self {
            ready: Mutex::new(VecDeque::new()),
            next: AtomicU32::new(0),
            capacity: watch::channel(0).0,
            requests: Mutex::new(Vec::new()),
            backend_failures: AtomicU32::new(0),
            released: Mutex::new(Vec::new()),
            delay: Mutex::new(Duration::ZERO),
            calls: AtomicU32::new(0),
        });
        fleet.add_ready(ready);
        fleet
    }

    /// `n` more servers turn Ready.
    pub fn add_ready(&self, n: usize) {
        let mut ready = self.ready.lock().unwrap();
        for _ in 0..n {
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            ready.push_back(format!("gs-{i}"));
        }
        drop(ready);
        self.capacity.send_modify(|c| *c += 1);
    }

    /// Allocation requests so far.
    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

fn port_of(name: &str) -> i32 {
    7000 + name.trim_start_matches("gs-").parse::<i32>().unwrap_or(0)
}

#[async_trait]
impl Allocator for FakeFleet {
    async fn allocate(&self, request: AdmittedAllocation) -> Result<AllocationOutcome, AllocateError> {
        let request = request.into_inner();
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.requests.lock().unwrap().push(request.clone());
        if self.backend_failures.load(Ordering::SeqCst) > 0 {
            self.backend_failures.fetch_sub(1, Ordering::SeqCst);
            return Err(AllocateError::Backend("store unreachable".to_owned()));
        }
        let Some(name) = self.ready.lock().unwrap().pop_front() else { return Ok(AllocationOutcome::UnAllocated) };
        Ok(AllocationOutcome::Allocated(GameServerAllocationStatus {
            state: GameServerAllocationState::Allocated,
            ports: vec![GameServerStatusPort { name: "default".to_owned(), port: port_of(&name) }],
            address: "10.0.0.7".to_owned(),
            node_name: "node-a".to_owned(),
            source: "local".to_owned(),
            metadata: Some({
                // As the runtimes do: the answer names the allocation holding the server.
                let mut metadata = request.spec.metadata.clone().unwrap_or_default();
                metadata
                    .annotations
                    .insert(stadion_crds::labels::ALLOCATION_ID.to_owned(), format!("{name}-allocation"));
                metadata
            }),
            game_server_name: name,
            ..Default::default()
        }))
    }

    fn capacity_changes(&self) -> watch::Receiver<u64> {
        self.capacity.subscribe()
    }

    async fn release(
        &self,
        _namespace: &str,
        game_server_name: &str,
        allocation_id: &str,
    ) -> Result<(), AllocateError> {
        assert_eq!(allocation_id, format!("{game_server_name}-allocation"), "the release names its allocation");
        self.released.lock().unwrap().push(game_server_name.to_owned());
        Ok(())
    }
}

/// A matchmaker served on 127.0.0.1:0.
pub struct TestServer {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The matchmaker behind it.
    pub matchmaker: Matchmaker,
    /// Client for requests.
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), stadion_matchmaker::Error>>>,
}

/// Config with fast ticks; `queues` is the YAML list body.
pub fn config(extra: &str) -> MatchmakerConfig {
    let yaml = format!("tickInterval: 20ms\nassignedRetention: 30s\n{extra}");
    MatchmakerConfig::from_yaml_str(&yaml).unwrap()
}

/// A duel queue (2 players, skill rule) plus whatever `extra_queues` adds.
pub const DUEL: &str = "
queues:
  - name: duel
    players: {min: 2, max: 2}
    skill: {attribute: mmr, initialSpread: 100, widenPerSecond: 0, maxSpread: 100}
    ticketTimeout: 5s
  - name: lonely
    players: {min: 2, max: 2}
    ticketTimeout: 300ms
";

impl TestServer {
    /// Serves `config` over `fleet`.
    pub async fn start(config: MatchmakerConfig, fleet: Arc<FakeFleet>) -> Self {
        Self::start_with(config, fleet, stadion_sdk::http_server::HttpTimeouts::DEFAULT).await
    }

    /// Serves `config` over `fleet` with other HTTP timeouts.
    pub async fn start_with(
        config: MatchmakerConfig,
        fleet: Arc<FakeFleet>,
        timeouts: stadion_sdk::http_server::HttpTimeouts,
    ) -> Self {
        let matchmaker = Matchmaker::open(config, fleet).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(stadion_matchmaker::http::serve_listener_with(
            listener,
            matchmaker.clone(),
            timeouts,
            async {
                let _ = stopped.await;
            },
        ));
        Self { base, matchmaker, client: reqwest::Client::new(), stop: Some(stop), handle: Some(handle) }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a ticket; returns status and body.
    pub async fn post_ticket(&self, body: &Value) -> (u16, Value) {
        let response = self.client.post(self.url("/v1/tickets")).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// GETs a ticket; returns status and body.
    pub async fn get_ticket(&self, id: &str) -> (u16, Value) {
        let response = self.client.get(self.url(&format!("/v1/tickets/{id}"))).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Polls until the ticket is in `state` (panics after 5 s).
    pub async fn wait_for_state(&self, id: &str, state: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (_, ticket) = self.get_ticket(id).await;
            if ticket["state"] == state {
                return ticket;
            }
            assert!(tokio::time::Instant::now() < deadline, "ticket {id} never reached {state}: {ticket}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Triggers graceful shutdown and waits for the server to finish.
    pub async fn shutdown(mut self) -> Result<(), stadion_matchmaker::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(Duration::from_secs(5), handle).await.expect("shutdown hung").unwrap()
    }
}

/// A one-player ticket body.
pub fn solo(queue: &str, player: &str, mmr: f64) -> Value {
    serde_json::json!({"queue": queue, "players": [{"id": player, "attributes": {"mmr": mmr}}]})
}

/// Reads a whole SSE body (the server closes it after a final state) into its `data` JSONs.
pub async fn read_events(response: reqwest::Response) -> Vec<Value> {
    let text =
        tokio::time::timeout(Duration::from_secs(5), response.text()).await.expect("event stream never ended").unwrap();
    text.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| serde_json::from_str(d.trim()).unwrap()).collect()
}

/// A matchmaker started with `base()` (assigned retention cut to 700 ms) gets one ticket left
/// searching in the `lonely` queue (300 ms timeout) and one cancelled, then stays down for
/// longer than both clocks. Restarted with the same configuration, it has timed the first out
/// and forgotten the second: the clocks kept running while it was down. Returns the restarted
/// server and the cancelled ticket's id.
pub async fn restart_after_the_clocks_ran_out(base: impl Fn() -> MatchmakerConfig) -> (TestServer, String) {
    let short = || {
        let mut config = base();
        config.assigned_retention = Duration::from_millis(700);
        config
    };
    let server = TestServer::start(short(), FakeFleet::new(0)).await;
    let (_, lonely) = server.post_ticket(&solo("lonely", "l", 1.0)).await;
    let (_, gone) = server.post_ticket(&solo("duel", "g", 1.0)).await;
    let gone = gone["id"].as_str().unwrap().to_owned();
    let cancel = server.client.delete(server.url(&format!("/v1/tickets/{gone}"))).send().await.unwrap();
    assert_eq!(cancel.status().as_u16(), 200);
    server.shutdown().await.unwrap();

    // Down for longer than the lonely queue's 300 ms timeout and the 700 ms retention.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let server = TestServer::start(short(), FakeFleet::new(0)).await;
    let ticket = server.wait_for_state(lonely["id"].as_str().unwrap(), "timed_out").await;
    assert!(ticket["reason"].as_str().unwrap().contains("ticketTimeout"), "{ticket}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.get_ticket(&gone).await.0 != 404 {
        assert!(tokio::time::Instant::now() < deadline, "cancelled ticket outlived its retention");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (server, gone)
}

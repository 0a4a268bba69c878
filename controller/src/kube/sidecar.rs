//! The SDK sidecar's Kubernetes backend: its own GameServer, read through a name-scoped watch
//! and written with coalesced, resourceVersion-guarded replaces.
//!
//! SDK calls return at once: each mutation is applied to the local view (published to
//! WatchGameServer and health checks) and queued. A writer task sends the queue as one replace
//! [`WRITE_INTERVAL`] after the first queued change and never more often than that, so a game
//! that calls SetLabel, SetAnnotation and Ready together causes one write. On 409 the queued
//! mutations are re-run on a fresh copy (the backend contract allows it), so a concurrent
//! allocation or controller write is never overwritten.
//!
//! Permissions: get, watch (with a `metadata.name` field selector, no list) and update of one
//! GameServer — exactly what `deploy/20-sdk-rbac.yaml` grants.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use stadion_crds::{GameServer, GameServerState};
use stadion_sdk::server::{GameServerBackend, Mutation, SdkError};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::api_status;

pub mod health;
pub mod serve;

/// Agones' coalescing window: at most one write per server per interval.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(500);
/// Conflicts retried in a row before the batch waits for the next window.
const MAX_CONFLICT_RETRIES: usize = 8;

struct State {
    /// The newest version the API server has shown us.
    server: Arc<GameServer>,
    /// Mutations being written right now.
    in_flight: Vec<Mutation>,
    /// Mutations waiting for the next write.
    pending: Vec<Mutation>,
}

struct Shared {
    api: Api<GameServer>,
    name: String,
    state: Mutex<State>,
    view: watch::Sender<Arc<GameServer>>,
    wake: Arc<Notify>,
    interval: Duration,
    /// Count of writes that finished, for `flush`.
    written: watch::Sender<u64>,
}

/// A [`GameServerBackend`] over the Kubernetes API. Cloning shares the same server.
#[derive(Clone)]
pub struct KubeBackend(Arc<Shared>);

impl KubeBackend {
    /// Reads GameServer `name` in `namespace` and starts its watch and writer tasks (they end
    /// once the last clone is dropped and they next wake).
    pub async fn connect(client: Client, namespace: &str, name: &str) -> Result<Self, kube::Error> {
        let api: Api<GameServer> = Api::namespaced(client, namespace);
        let initial = api.get(name).await?;
        // The watch starts from the version just read rather than reading it again.
        let version = initial.metadata.resource_version.clone();
        let backend = Self::from_object(api, initial, WRITE_INTERVAL);
        backend.spawn_watch(version);
        Ok(backend)
    }

    /// A backend starting from `initial`, writing at most every `interval`, with its writer task
    /// running but no watch (tests drive it; [`connect`](Self::connect) adds the watch).
    pub fn from_object(api: Api<GameServer>, initial: GameServer, interval: Duration) -> Self {
        let name = initial.name().to_owned();
        let initial = Arc::new(initial);
        let (view, _) = watch::channel(initial.clone());
        let (written, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            api,
            name,
            state: Mutex::new(State { server: initial, in_flight: Vec::new(), pending: Vec::new() }),
            view,
            wake: Arc::new(Notify::new()),
            interval,
            written,
        });
        tokio::spawn(run_writer(Arc::downgrade(&shared), shared.wake.clone()));
        Self(shared)
    }

    fn spawn_watch(&self, from_version: Option<String>) {
        tokio::spawn(run_watch(Arc::downgrade(&self.0), from_version));
    }

    /// Waits until everything queued so far has been written (or given up on).
    pub async fn flush(&self) {
        let mut written = self.0.written.subscribe();
        while !self.0.lock().pending.is_empty() || !self.0.lock().in_flight.is_empty() {
            self.0.wake.notify_one();
            if written.changed().await.is_err() {
                return;
            }
        }
    }

    /// Resolves once the server is Shutdown or gone: the sidecar keeps serving until then, so a
    /// game that is still running can call Shutdown during the Pod's termination.
    pub async fn wait_for_shutdown(&self) {
        let mut view = self.0.view.subscribe();
        // An error means the backend itself is gone, which also ends serving.
        let _ = view
            .wait_for(|gs| gs.state() == Some(GameServerState::Shutdown) || gs.metadata.deletion_timestamp.is_some())
            .await;
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Republishes server + in-flight + pending mutations as the local view.
    fn publish(&self, state: &mut State) {
        let mut view = (*state.server).clone();
        for mutation in state.in_flight.iter_mut().chain(state.pending.iter_mut()) {
            // A mutation that worked when queued but not on a newer server copy is dropped
            // from the view here; the writer reports it when it writes.
            let mut attempt = view.clone();
            if mutation(&mut attempt).is_ok() {
                view = attempt;
            }
        }
        self.view.send_if_modified(|current| {
            if **current == view {
                false
            } else {
                *current = Arc::new(view);
                true
            }
        });
    }

    /// Takes a newer server version (from the watch or a write), ignoring older ones.
    fn observe(&self, gs: GameServer) {
        let mut state = self.lock();
        if is_older(&gs, &state.server) {
            return;
        }
        state.server = Arc::new(gs);
        self.publish(&mut state);
    }
}

/// Whether `candidate` is older than `current` by resourceVersion (numeric, as etcd issues them;
/// anything unparsable counts as newer, so we never get stuck).
fn is_older(candidate: &GameServer, current: &GameServer) -> bool {
    let rv = |gs: &GameServer| gs.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
    matches!((rv(candidate), rv(current)), (Some(a), Some(b)) if a < b)
}

#[async_trait]
impl GameServerBackend for KubeBackend {
    async fn get(&self) -> Result<GameServer, SdkError> {
        Ok((**self.0.view.borrow()).clone())
    }

    fn watch(&self) -> watch::Receiver<Arc<GameServer>> {
        self.0.view.subscribe()
    }

    async fn update(&self, mut mutate: Mutation) -> Result<GameServer, SdkError> {
        let mut state = self.0.lock();
        let mut next = (**self.0.view.borrow()).clone();
        mutate(&mut next)?;
        if next == **self.0.view.borrow() {
            return Ok(next);
        }
        state.pending.push(mutate);
        self.0.publish(&mut state);
        drop(state);
        self.0.wake.notify_one();
        Ok(next)
    }
}

/// Writes queued mutations: one replace per interval at most, 409s retried on a fresh copy.
async fn run_writer(shared: std::sync::Weak<Shared>, wake: Arc<Notify>) {
    let mut last_write: Option<Instant> = None;
    loop {
        let Some(strong) = shared.upgrade() else { return };
        let has_pending = !strong.lock().pending.is_empty();
        let interval = strong.interval;
        // Holding only the Notify while idle lets the backend drop, ending this task.
        drop(strong);
        if !has_pending {
            wake.notified().await;
        }
        // Coalesce: wait a full interval after the first change and after the last write.
        let now = Instant::now();
        let start = last_write.map_or(now + interval, |at| (at + interval).max(now + interval));
        tokio::time::sleep_until(start).await;
        let Some(strong) = shared.upgrade() else { return };
        write_batch(&strong).await;
        last_write = Some(Instant::now());
        strong.written.send_modify(|n| *n += 1);
    }
}

async fn write_batch(shared: &Shared) {
    {
        let mut state = shared.lock();
        let pending = std::mem::take(&mut state.pending);
        state.in_flight.extend(pending);
        if state.in_flight.is_empty() {
            return;
        }
    }
    for _ in 0..MAX_CONFLICT_RETRIES {
        let next = {
            let mut state = shared.lock();
            let mut next = (*state.server).clone();
            let mut errors = Vec::new();
            for mutation in &mut state.in_flight {
                let mut attempt = next.clone();
                match mutation(&mut attempt) {
                    Ok(()) => next = attempt,
                    Err(error) => errors.push(error),
                }
            }
            for error in errors {
                warn!(%error, "an SDK change no longer applies to the current GameServer; dropped");
            }
            if next == *state.server {
                state.in_flight.clear();
                shared.publish(&mut state);
                return;
            }
            next
        };
        match shared.api.replace(&shared.name, &PostParams::default(), &next).await {
            Ok(written) => {
                debug!(gameserver = %shared.name, state = ?written.state(), "SDK changes written");
                let mut state = shared.lock();
                state.in_flight.clear();
                if !is_older(&written, &state.server) {
                    state.server = Arc::new(written);
                }
                shared.publish(&mut state);
                return;
            }
            Err(e) if api_status(&e) == Some(409) => match shared.api.get(&shared.name).await {
                Ok(fresh) => shared.observe(fresh),
                Err(error) => {
                    warn!(%error, "could not re-read the GameServer after a conflict");
                    break;
                }
            },
            Err(error) => {
                warn!(%error, gameserver = %shared.name, "could not write SDK changes; retrying");
                break;
            }
        }
    }
    // Put the batch back in front of anything queued since, for the next window.
    let mut state = shared.lock();
    let mut batch = std::mem::take(&mut state.in_flight);
    batch.append(&mut state.pending);
    state.pending = batch;
    drop(state);
    shared.wake.notify_one();
}

/// Follows the GameServer with a name-scoped watch from `resource_version` (the version already
/// observed), re-reading it when the watch expires.
async fn run_watch(shared: std::sync::Weak<Shared>, mut resource_version: Option<String>) {
    loop {
        let Some(strong) = shared.upgrade() else { return };
        let api = strong.api.clone();
        let name = strong.name.clone();
        drop(strong);
        let rv = match resource_version.take() {
            Some(rv) => rv,
            None => match api.get(&name).await {
                Ok(gs) => {
                    let rv = gs.metadata.resource_version.clone().unwrap_or_default();
                    if let Some(strong) = shared.upgrade() {
                        strong.observe(gs);
                    }
                    rv
                }
                Err(error) => {
                    warn!(%error, gameserver = %name, "could not read the GameServer; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let params = WatchParams::default().fields(&format!("metadata.name={name}"));
        let mut stream = match api.watch(&params, &rv).await {
            Ok(stream) => stream.boxed(),
            Err(error) => {
                warn!(%error, gameserver = %name, "could not watch the GameServer; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut last_rv = Some(rv);
        while let Some(event) = stream.next().await {
            let Some(strong) = shared.upgrade() else { return };
            match event {
                Ok(WatchEvent::Added(gs) | WatchEvent::Modified(gs)) => {
                    last_rv = gs.metadata.resource_version.clone();
                    strong.observe(gs);
                }
                Ok(WatchEvent::Deleted(gs)) => {
                    info!(gameserver = %name, "GameServer deleted");
                    last_rv = None;
                    strong.observe(gs);
                }
                Ok(WatchEvent::Bookmark(bookmark)) => last_rv = Some(bookmark.metadata.resource_version),
                Ok(WatchEvent::Error(status)) => {
                    // 410 Gone: our version is too old to resume from; re-read.
                    debug!(code = status.code, "watch error; re-reading");
                    last_rv = None;
                    break;
                }
                Err(error) => {
                    warn!(%error, "GameServer watch failed; resuming");
                    break;
                }
            }
        }
        resource_version = last_rv;
    }
}

#[cfg(test)]
mod tests;

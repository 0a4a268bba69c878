//! The SDK's behaviour, written once for every backend: state requests and their guards, the
//! Reserve timer, labels and annotations, players, counters and lists. The gRPC service and the
//! REST gateway are thin translations onto these methods.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use stadion_crds::common::{CounterStatus, ListStatus};
use stadion_crds::gameserver::{GameServerStatus, PlayerStatus};
use stadion_crds::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stadion_crds::labels::LAST_ALLOCATED;
use stadion_crds::{GameServer, GameServerState};
use tokio::task::AbortHandle;
use tokio_stream::wrappers::WatchStream;

use super::health::HealthTracker;
use super::tracking::{self, CounterUpdate, ListMask};
use super::{GameServerBackend, Mutation, SdkCall, SdkError, metadata};

/// Called with every SDK call the sidecar serves (before it is carried out).
pub type CallObserver = Arc<dyn Fn(&SdkCall) + Send + Sync>;

/// The SDK behaviour over one backend. Cheap to clone; every clone shares the Reserve timer and the
/// health tracker.
#[derive(Clone)]
pub struct Sidecar {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn GameServerBackend>,
    observer: Option<CallObserver>,
    /// Bumped whenever a pending Reserve is cancelled, so a timer that already woke up cannot
    /// undo the state call that cancelled it.
    reserve_generation: AtomicU64,
    reserve_timer: Mutex<Option<AbortHandle>>,
    health: HealthTracker,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(timer) = self.reserve_timer.get_mut().ok().and_then(Option::take) {
            timer.abort();
        }
    }
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar").finish_non_exhaustive()
    }
}

impl Sidecar {
    /// A sidecar over `backend`; `observer` sees every call.
    pub fn new(backend: Arc<dyn GameServerBackend>, observer: Option<CallObserver>) -> Self {
        let inner = Inner {
            backend,
            observer,
            reserve_generation: AtomicU64::new(0),
            reserve_timer: Mutex::new(None),
            health: HealthTracker::default(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// The backend this sidecar serves.
    pub fn backend(&self) -> &Arc<dyn GameServerBackend> {
        &self.inner.backend
    }

    pub(crate) fn health_tracker(&self) -> &HealthTracker {
        &self.inner.health
    }

    fn record(&self, call: SdkCall) {
        tracing::debug!(rpc = call.rpc(), call = ?call, "sdk call");
        if let Some(observer) = &self.inner.observer {
            observer(&call);
        }
    }

    async fn update(&self, mutate: Mutation) -> Result<GameServer, SdkError> {
        self.inner.backend.update(mutate).await
    }

    /// Resumes a Reserve timer for a server that is already Reserved with a deadline (the sidecar
    /// restarted, or the backend came up with that state).
    pub async fn resume(&self) -> Result<(), SdkError> {
        let gs = self.inner.backend.get().await?;
        let status = gs.status.unwrap_or_default();
        if status.state == Some(GameServerState::Reserved)
            && let Some(until) = status.reserved_until
        {
            let left = until.0.duration_since(jiff::Timestamp::now());
            let generation = self.inner.reserve_generation.load(Ordering::SeqCst);
            self.start_reserve_timer(Duration::try_from(left).unwrap_or(Duration::ZERO), generation);
        }
        Ok(())
    }

    /// SDK Ready: the backend's ready state (RequestReady, or Ready without a controller).
    pub async fn ready(&self) -> Result<(), SdkError> {
        self.record(SdkCall::Ready);
        self.cancel_reserve();
        self.request_state(self.inner.backend.ready_state(), None).await.map(drop)
    }

    /// SDK Allocate: Allocated, stamped with `agones.dev/last-allocated`.
    pub async fn allocate(&self) -> Result<(), SdkError> {
        self.record(SdkCall::Allocate);
        self.cancel_reserve();
        self.request_state(GameServerState::Allocated, None).await.map(drop)
    }

    /// SDK Shutdown.
    pub async fn shutdown(&self) -> Result<(), SdkError> {
        self.record(SdkCall::Shutdown);
        self.cancel_reserve();
        self.request_state(GameServerState::Shutdown, None).await.map(drop)
    }

    /// SDK Reserve: Reserved for `seconds`, then back to the ready state; 0 (or less, as in
    /// Agones) keeps it Reserved until the next state call.
    pub async fn reserve(&self, seconds: i64) -> Result<(), SdkError> {
        self.record(SdkCall::Reserve { seconds });
        let generation = self.cancel_reserve();
        let timeout = if seconds > 0 {
            let span = jiff::SignedDuration::from_secs(seconds);
            let until = jiff::Timestamp::now()
                .checked_add(span)
                .map_err(|_| SdkError::InvalidArgument(format!("reserve: {seconds} seconds is too far ahead")))?;
            Some((Duration::from_secs(seconds.unsigned_abs()), until))
        } else {
            None
        };
        let gs = self.request_state(GameServerState::Reserved, timeout.map(|(_, until)| until)).await?;
        if let Some((duration, _)) = timeout
            && gs.state() == Some(GameServerState::Reserved)
        {
            self.start_reserve_timer(duration, generation);
        }
        Ok(())
    }

    /// Cancels any pending Reserve timer; returns the new generation, which a timer started for
    /// the caller's own reservation must carry.
    fn cancel_reserve(&self) -> u64 {
        let generation = self.inner.reserve_generation.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut timer) = self.inner.reserve_timer.lock()
            && let Some(timer) = timer.take()
        {
            timer.abort();
        }
        generation
    }

    /// Returns the server to the ready state after `after`, unless a state call has cancelled
    /// reservation `generation` by then (checked inside the backend's atomic update).
    fn start_reserve_timer(&self, after: Duration, generation: u64) {
        // A weak handle: a sidecar that is dropped must not be kept alive by its own timer.
        let weak = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(inner) = weak.upgrade() else { return };
            let sidecar = Sidecar { inner };
            let ready = sidecar.inner.backend.ready_state();
            let current = Arc::clone(&sidecar.inner);
            let result = sidecar
                .update(Box::new(move |gs| {
                    let still_ours = current.reserve_generation.load(Ordering::SeqCst) == generation;
                    if still_ours && gs.state() == Some(GameServerState::Reserved) {
                        let status = gs.status.get_or_insert_with(GameServerStatus::default);
                        status.state = Some(ready);
                        status.reserved_until = None;
                    }
                    Ok(())
                }))
                .await;
            match result {
                Ok(gs) => {
                    tracing::info!(gameserver = gs.metadata.name.as_deref().unwrap_or(""), state = ?gs.state(), "reserve expired")
                }
                Err(error) => tracing::warn!(%error, "could not end a reservation"),
            }
        });
        if let Ok(mut timer) = self.inner.reserve_timer.lock() {
            if let Some(previous) = timer.replace(task.abort_handle()) {
                previous.abort();
            }
        } else {
            task.abort();
        }
    }

    /// Moves to `target` unless the server is in a terminal state (Unhealthy, Shutdown, Error):
    /// like Agones, such a request succeeds and changes nothing.
    async fn request_state(
        &self,
        target: GameServerState,
        reserved_until: Option<jiff::Timestamp>,
    ) -> Result<GameServer, SdkError> {
        let gs = self
            .update(Box::new(move |gs| {
                if gs.state().is_some_and(GameServerState::is_terminal) {
                    return Ok(());
                }
                let status = gs.status.get_or_insert_with(GameServerStatus::default);
                status.state = Some(target);
                status.reserved_until = reserved_until.map(Time);
                if target == GameServerState::Allocated {
                    gs.metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(LAST_ALLOCATED.to_owned(), jiff::Timestamp::now().to_string());
                }
                Ok(())
            }))
            .await?;
        if gs.state() != Some(target) {
            tracing::info!(requested = %target, state = ?gs.state(), "state request ignored: no way out of a terminal state");
        }
        Ok(gs)
    }

    /// Marks the server Unhealthy (the health checker's verdict), unless it is already terminal.
    pub async fn mark_unhealthy(&self) -> Result<GameServer, SdkError> {
        self.cancel_reserve();
        self.update(Box::new(|gs| {
            if !gs.state().is_some_and(GameServerState::is_terminal) {
                let status = gs.status.get_or_insert_with(GameServerStatus::default);
                status.state = Some(GameServerState::Unhealthy);
                status.reserved_until = None;
            }
            Ok(())
        }))
        .await
    }

    /// One health ping.
    pub fn health_ping(&self) {
        self.record(SdkCall::Health);
        self.inner.health.ping();
    }

    /// SDK SetLabel: stores `agones.dev/sdk-<key>`; INVALID_ARGUMENT for a bad key or value.
    pub async fn set_label(&self, key: String, value: String) -> Result<(), SdkError> {
        self.record(SdkCall::SetLabel { key: key.clone(), value: value.clone() });
        let full = metadata::label(&key, &value)?;
        self.update(Box::new(move |gs| {
            gs.metadata.labels.get_or_insert_with(Default::default).insert(full.clone(), value.clone());
            Ok(())
        }))
        .await
        .map(drop)
    }

    /// SDK SetAnnotation: stores `agones.dev/sdk-<key>`; INVALID_ARGUMENT for a bad key.
    pub async fn set_annotation(&self, key: String, value: String) -> Result<(), SdkError> {
        self.record(SdkCall::SetAnnotation { key: key.clone(), value: value.clone() });
        let full = metadata::annotation(&key, &value)?;
        self.update(Box::new(move |gs| {
            gs.metadata.annotations.get_or_insert_with(Default::default).insert(full.clone(), value.clone());
            Ok(())
        }))
        .await
        .map(drop)
    }

    /// SDK GetGameServer.
    pub async fn get_game_server(&self) -> Result<GameServer, SdkError> {
        self.record(SdkCall::GetGameServer);
        self.inner.backend.get().await
    }

    /// SDK WatchGameServer: the current object at once, then every change.
    pub fn watch_game_server(&self) -> impl Stream<Item = Arc<GameServer>> + Send + 'static {
        self.record(SdkCall::WatchGameServer);
        WatchStream::new(self.inner.backend.watch())
    }

    /// alpha PlayerConnect.
    pub async fn player_connect(&self, id: String) -> Result<bool, SdkError> {
        self.record(SdkCall::PlayerConnect { id: id.clone() });
        let added = Arc::new(Mutex::new(false));
        let flag = Arc::clone(&added);
        self.update(Box::new(move |gs| {
            let result = tracking::player_connect(gs, &id)?;
            if let Ok(mut flag) = flag.lock() {
                *flag = result;
            }
            Ok(())
        }))
        .await?;
        Ok(added.lock().map(|a| *a).unwrap_or(false))
    }

    /// alpha PlayerDisconnect.
    pub async fn player_disconnect(&self, id: String) -> Result<bool, SdkError> {
        self.record(SdkCall::PlayerDisconnect { id: id.clone() });
        let removed = Arc::new(Mutex::new(false));
        let flag = Arc::clone(&removed);
        self.update(Box::new(move |gs| {
            let result = tracking::player_disconnect(gs, &id);
            if let Ok(mut flag) = flag.lock() {
                *flag = result;
            }
            Ok(())
        }))
        .await?;
        Ok(removed.lock().map(|r| *r).unwrap_or(false))
    }

    /// alpha SetPlayerCapacity.
    pub async fn set_player_capacity(&self, capacity: i64) -> Result<(), SdkError> {
        self.record(SdkCall::SetPlayerCapacity { capacity });
        self.update(Box::new(move |gs| tracking::set_player_capacity(gs, capacity))).await.map(drop)
    }

    async fn players(&self) -> Result<PlayerStatus, SdkError> {
        Ok(tracking::player_status(&self.inner.backend.get().await?))
    }

    /// alpha GetPlayerCapacity.
    pub async fn get_player_capacity(&self) -> Result<i64, SdkError> {
        self.record(SdkCall::GetPlayerCapacity);
        Ok(self.players().await?.capacity)
    }

    /// alpha GetPlayerCount.
    pub async fn get_player_count(&self) -> Result<i64, SdkError> {
        self.record(SdkCall::GetPlayerCount);
        Ok(self.players().await?.ids.len() as i64)
    }

    /// alpha IsPlayerConnected.
    pub async fn is_player_connected(&self, id: String) -> Result<bool, SdkError> {
        self.record(SdkCall::IsPlayerConnected { id: id.clone() });
        Ok(self.players().await?.ids.contains(&id))
    }

    /// alpha GetConnectedPlayers.
    pub async fn get_connected_players(&self) -> Result<Vec<String>, SdkError> {
        self.record(SdkCall::GetConnectedPlayers);
        Ok(self.players().await?.ids)
    }

    /// beta GetCounter.
    pub async fn get_counter(&self, name: String) -> Result<CounterStatus, SdkError> {
        self.record(SdkCall::GetCounter { name: name.clone() });
        tracking::counter(&self.inner.backend.get().await?, &name)
    }

    /// beta UpdateCounter.
    pub async fn update_counter(&self, name: String, update: CounterUpdate) -> Result<CounterStatus, SdkError> {
        self.record(SdkCall::UpdateCounter {
            name: name.clone(),
            count: update.count,
            capacity: update.capacity,
            diff: update.diff,
        });
        let key = name.clone();
        let gs = self.update(Box::new(move |gs| tracking::update_counter(gs, &key, &update).map(drop))).await?;
        tracking::counter(&gs, &name)
    }

    /// beta GetList.
    pub async fn get_list(&self, name: String) -> Result<ListStatus, SdkError> {
        self.record(SdkCall::GetList { name: name.clone() });
        tracking::list(&self.inner.backend.get().await?, &name)
    }

    /// beta UpdateList: replaces the fields named by `paths`.
    pub async fn update_list(
        &self,
        name: String,
        paths: Vec<String>,
        list: ListStatus,
    ) -> Result<ListStatus, SdkError> {
        self.record(SdkCall::UpdateList {
            name: name.clone(),
            paths: paths.clone(),
            capacity: list.capacity,
            values: list.values.clone(),
        });
        let mask = ListMask::from_paths(&paths)?;
        let key = name.clone();
        let gs = self.update(Box::new(move |gs| tracking::update_list(gs, &key, mask, &list).map(drop))).await?;
        tracking::list(&gs, &name)
    }

    /// beta AddListValue.
    pub async fn add_list_value(&self, name: String, value: String) -> Result<ListStatus, SdkError> {
        self.record(SdkCall::AddListValue { name: name.clone(), value: value.clone() });
        let key = name.clone();
        let gs = self.update(Box::new(move |gs| tracking::add_list_value(gs, &key, &value).map(drop))).await?;
        tracking::list(&gs, &name)
    }

    /// beta RemoveListValue.
    pub async fn remove_list_value(&self, name: String, value: String) -> Result<ListStatus, SdkError> {
        self.record(SdkCall::RemoveListValue { name: name.clone(), value: value.clone() });
        let key = name.clone();
        let gs = self.update(Box::new(move |gs| tracking::remove_list_value(gs, &key, &value).map(drop))).await?;
        tracking::list(&gs, &name)
    }
}

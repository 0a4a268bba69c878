//! The SDK's behaviour, written once for every backend: each SDK call that changes the
//! GameServer becomes a core [`GameServerEvent`] applied with
//! [`apply_event`](stadion_core::gameserver::apply_event) inside the backend's atomic update, so
//! the sidecar and the controllers share one state machine. The sidecar itself only translates
//! calls, validates their input, and tracks health pings; players, counters and lists are
//! [`tracking`]'s. The gRPC service and the REST gateway are thin translations onto these methods.
//!
//! Reservations: the sidecar writes `reservedUntil` and nothing else. Ending one is the core
//! `reconcile`'s job, run by the runtime's GameServer controller, because a timer here would die
//! with the sidecar (a crashed or evicted sidecar would leave its server Reserved forever) and
//! would race the controller as a second writer. The standalone local backend, which has no
//! controller, runs that same `reconcile` itself (see [`super::local`]).

use std::sync::{Arc, Mutex};

use futures::Stream;
use jiff::Timestamp;
use stadion_core::gameserver::{GameServerEvent, Transition, apply_event, reservation_end};
use stadion_crds::GameServer;
use stadion_crds::common::{CounterStatus, ListStatus};
use stadion_crds::gameserver::PlayerStatus;
use tokio_stream::wrappers::WatchStream;

use super::health::HealthTracker;
use super::tracking::{self, CounterUpdate, ListMask};
use super::{GameServerBackend, Mutation, SdkCall, SdkError, metadata};

/// Called with every SDK call the sidecar serves (before it is carried out).
pub type CallObserver = Arc<dyn Fn(&SdkCall) + Send + Sync>;

/// The SDK behaviour over one backend. Cheap to clone; every clone shares the health tracker.
#[derive(Clone)]
pub struct Sidecar {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn GameServerBackend>,
    observer: Option<CallObserver>,
    health: HealthTracker,
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar").finish_non_exhaustive()
    }
}

impl Sidecar {
    /// A sidecar over `backend`; `observer` sees every call.
    pub fn new(backend: Arc<dyn GameServerBackend>, observer: Option<CallObserver>) -> Self {
        let inner = Inner { backend, observer, health: HealthTracker::default() };
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

    /// Applies `event` through the core state machine to the latest GameServer, atomically (the
    /// backend re-runs it on a fresh copy after a conflict, so it always judges the object it
    /// writes). `now` is fixed by the caller: a re-run stamps the same times. A call the core
    /// ignores (e.g. Ready after Shutdown) succeeds and changes nothing, as in Agones.
    async fn transition(&self, event: GameServerEvent, now: Timestamp) -> Result<GameServer, SdkError> {
        self.guarded_transition(event, now, |_| Ok(())).await
    }

    /// [`transition`](Self::transition), refused when `guard` refuses the object it would be
    /// applied to: for rules about the whole object, such as the annotations' total size.
    async fn guarded_transition(
        &self,
        event: GameServerEvent,
        now: Timestamp,
        guard: impl Fn(&GameServer) -> Result<(), SdkError> + Send + 'static,
    ) -> Result<GameServer, SdkError> {
        let ignored: Arc<Mutex<Option<&'static str>>> = Arc::default();
        let verdict = Arc::clone(&ignored);
        let applied = event.clone();
        let gs = self
            .update(Box::new(move |gs| {
                guard(gs)?;
                let outcome = apply_event(gs, &applied, now);
                // Only the last run counts: that is the one the backend keeps.
                if let Ok(mut verdict) = verdict.lock() {
                    *verdict = match &outcome {
                        Transition::Ignored(why) => Some(why),
                        Transition::Changed(_) | Transition::Unchanged => None,
                    };
                }
                if let Some(next) = outcome.into_changed() {
                    *gs = next;
                }
                Ok(())
            }))
            .await?;
        if let Some(why) = ignored.lock().ok().and_then(|why| *why) {
            tracing::info!(?event, state = ?gs.state(), why, "SDK call changes nothing");
        }
        Ok(gs)
    }

    /// SDK Ready: RequestReady (the controller moves it on to Ready); also returns an Allocated
    /// or Reserved server to the pool.
    pub async fn ready(&self) -> Result<(), SdkError> {
        self.record(SdkCall::Ready);
        self.transition(GameServerEvent::SdkReady, Timestamp::now()).await.map(drop)
    }

    /// SDK Allocate: Allocated, stamped with `agones.dev/last-allocated`.
    pub async fn allocate(&self) -> Result<(), SdkError> {
        self.record(SdkCall::Allocate);
        self.transition(GameServerEvent::SdkAllocate, Timestamp::now()).await.map(drop)
    }

    /// SDK Shutdown.
    pub async fn shutdown(&self) -> Result<(), SdkError> {
        self.record(SdkCall::Shutdown);
        self.transition(GameServerEvent::SdkShutdown, Timestamp::now()).await.map(drop)
    }

    /// SDK Reserve: Reserved until now + `seconds`; 0 (or less, as in Agones) keeps it Reserved
    /// until the next state call. INVALID_ARGUMENT when the end is past any representable time.
    pub async fn reserve(&self, seconds: i64) -> Result<(), SdkError> {
        self.record(SdkCall::Reserve { seconds });
        let now = Timestamp::now();
        // The core would ignore such a Reserve; the game deserves to hear why instead.
        reservation_end(seconds, now)
            .map_err(|why| SdkError::InvalidArgument(format!("reserve: {seconds} seconds: {why}")))?;
        self.transition(GameServerEvent::SdkReserve { seconds }, now).await.map(drop)
    }

    /// Marks the server Unhealthy (the health checker's verdict), unless it is already terminal.
    pub async fn mark_unhealthy(&self) -> Result<GameServer, SdkError> {
        self.transition(GameServerEvent::HealthCheckFailed, Timestamp::now()).await
    }

    /// One health ping.
    pub fn health_ping(&self) {
        self.record(SdkCall::Health);
        self.inner.health.ping();
    }

    /// SDK SetLabel: stores `agones.dev/sdk-<key>`; INVALID_ARGUMENT for a bad key or value.
    pub async fn set_label(&self, key: String, value: String) -> Result<(), SdkError> {
        self.record(SdkCall::SetLabel { key: key.clone(), value: value.clone() });
        // Checked here so a bad key is the game's INVALID_ARGUMENT; the core adds the prefix.
        metadata::label(&key, &value)?;
        self.transition(GameServerEvent::SdkSetLabel { key, value }, Timestamp::now()).await.map(drop)
    }

    /// SDK SetAnnotation: stores `agones.dev/sdk-<key>`; INVALID_ARGUMENT for a bad key.
    pub async fn set_annotation(&self, key: String, value: String) -> Result<(), SdkError> {
        self.record(SdkCall::SetAnnotation { key: key.clone(), value: value.clone() });
        let full = metadata::annotation(&key, &value)?;
        let size = value.len();
        let guard = move |gs: &GameServer| metadata::annotations_fit(gs, &full, size);
        self.guarded_transition(GameServerEvent::SdkSetAnnotation { key, value }, Timestamp::now(), guard)
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

//! The standalone local backend behind `stadion sdk-server --local`: one in-memory GameServer
//! (optionally loaded from a manifest and reloaded when the file changes) for a game developer to
//! test an SDK integration against, with no cluster and no controller.
//!
//! With no controller behind it, the backend stands in for one in the simplest honest way: after
//! every change it applies what the core's GameServer `reconcile` would write (RequestReady →
//! Ready, an expired reservation → Ready), and wakes itself at the plan's requeue time to do it
//! again. So the rules are the controllers' own, not a sidecar copy of them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use jiff::Timestamp;
use stadion_core::gameserver::{GameServerDefaults, reconcile};
use stadion_crds::common::{CounterStatus, ListStatus};
use stadion_crds::gameserver::{GameServerStatus, GameServerStatusPort, PlayerStatus};
use stadion_crds::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stadion_crds::manifest::{ManifestError, parse_gameserver};
use stadion_crds::{GameServer, GameServerState};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use super::{GameServerBackend, Mutation, SdkError};

/// Name of the local GameServer when the manifest gives none.
pub const LOCAL_NAME: &str = "local";
/// Namespace of the local GameServer when the manifest gives none.
pub const LOCAL_NAMESPACE: &str = "default";
/// Address of the local GameServer.
pub const LOCAL_ADDRESS: &str = "127.0.0.1";
/// Node of the local GameServer when the manifest gives none (the local runtime's node name).
pub const LOCAL_NODE: &str = "local";
/// Port (named `default`) of the local GameServer when the manifest gives none.
pub const LOCAL_PORT: i32 = 7777;

/// Why the local backend could not load its manifest.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a GameServer manifest.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// The GameServer, shared with the reconcile wake-up (which holds it weakly).
type Current = Arc<watch::Sender<Arc<GameServer>>>;

/// An in-memory GameServer. Every update is applied under the watch channel's lock and published
/// to watchers at once; unchanged updates publish nothing.
#[derive(Debug)]
pub struct LocalBackend {
    current: Current,
    /// Whether this backend runs the core reconcile itself (no controller behind it).
    standalone: bool,
    /// The pending reconcile wake-up (a reservation or an allocation TTL running out).
    wake_up: Mutex<Option<AbortHandle>>,
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        if let Some(task) = self.wake_up.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

impl LocalBackend {
    /// A backend holding `gs` as given, standing in for the controller: SDK Ready ends in Ready
    /// and reservations expire. Inside a Tokio runtime a reservation `gs` already carries is
    /// timed from here; outside one, from the first update.
    pub fn new(gs: GameServer) -> Self {
        let (current, _) = watch::channel(Arc::new(gs));
        let backend = Self { current: Arc::new(current), standalone: true, wake_up: Mutex::new(None) };
        backend.settle_now();
        backend
    }

    /// A backend with a controller behind it: it stores SDK calls only, so SDK Ready stays
    /// RequestReady and reservations are left for the controller to end.
    pub fn with_controller(mut self) -> Self {
        self.standalone = false;
        self.arm(None);
        self
    }

    /// The default local GameServer, as Agones' local SDK server has it: `local` in `default`,
    /// Ready, 127.0.0.1, port `default` 7777, counter `rooms` {count 1, capacity 10} and list
    /// `players` {test0, test1, test2; capacity 100} (what the official conformance clients
    /// expect to find).
    pub fn default_game_server() -> GameServer {
        let mut gs = GameServer::default();
        gs.spec.counters.insert("rooms".to_owned(), CounterStatus { count: 1, capacity: 10 });
        let players = ["test0", "test1", "test2"].map(str::to_owned).to_vec();
        gs.spec.lists.insert("players".to_owned(), ListStatus { capacity: 100, values: players });
        localize(gs)
    }

    /// Reads a GameServer manifest (YAML or JSON) and prepares it the way [`localize`] does.
    pub fn load(path: &Path) -> Result<GameServer, LocalError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| LocalError::Read { path: path.to_owned(), source })?;
        Ok(localize(parse_gameserver(&text, &path.display().to_string())?))
    }

    /// Replaces the whole object (a reloaded manifest), keeping its identity (uid, creation time)
    /// and moving the resource version on, and notifies watchers.
    pub fn replace(&self, mut gs: GameServer) {
        self.current.send_modify(|current| {
            gs.metadata.uid.clone_from(&current.metadata.uid);
            gs.metadata.creation_timestamp.clone_from(&current.metadata.creation_timestamp);
            gs.metadata.resource_version = Some(next_version(current));
            *current = Arc::new(gs);
        });
        self.settle_now();
    }

    /// Applies the core reconcile to the current object now (standalone only) and re-arms the
    /// wake-up for its next requeue time.
    fn settle_now(&self) {
        if self.standalone {
            let next = settle_current(&self.current, Timestamp::now());
            self.arm(next);
        }
    }

    /// Replaces the pending wake-up with one at `at` (none: no wake-up). Needs a Tokio runtime;
    /// without one the next update arms it.
    fn arm(&self, at: Option<Timestamp>) {
        let Ok(mut slot) = self.wake_up.lock() else { return };
        if let Some(previous) = slot.take() {
            previous.abort();
        }
        if let (Some(at), Ok(runtime)) = (at, tokio::runtime::Handle::try_current()) {
            *slot = Some(runtime.spawn(wake_up(Arc::downgrade(&self.current), at)).abort_handle());
        }
    }

    /// Polls `path` every `every` and [`replace`](Self::replace)s the object when the file's
    /// modification time changes. A file that fails to parse is logged and skipped.
    pub fn watch_file(self: &Arc<Self>, path: PathBuf, every: Duration) -> JoinHandle<()> {
        let backend = Arc::clone(self);
        tokio::spawn(async move {
            let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let mut seen: Option<SystemTime> = mtime(&path);
            loop {
                tokio::time::sleep(every).await;
                let now = mtime(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                match Self::load(&path) {
                    Ok(gs) => {
                        tracing::info!(file = %path.display(), "GameServer manifest changed: reloaded");
                        backend.replace(gs);
                    }
                    Err(error) => {
                        tracing::warn!(file = %path.display(), %error, "GameServer manifest changed but cannot be used")
                    }
                }
            }
        })
    }
}

/// Sleeps until `at`, then applies the core reconcile, as long as it keeps asking to be woken
/// again. Each wake-up judges the object as it is then, so a reservation that a later call
/// cancelled or extended is simply not due: no bookkeeping of which reservation this was.
async fn wake_up(current: Weak<watch::Sender<Arc<GameServer>>>, mut at: Timestamp) {
    loop {
        let delay = at.duration_since(Timestamp::now());
        tokio::time::sleep(Duration::try_from(delay).unwrap_or(Duration::ZERO)).await;
        let Some(current) = current.upgrade() else { return };
        match settle_current(&current, Timestamp::now()) {
            Some(next) => at = next,
            None => return,
        }
    }
}

/// Applies [`settle`] to the object in `current` atomically, publishing it if it changed.
/// Returns the next time to look again.
fn settle_current(current: &watch::Sender<Arc<GameServer>>, now: Timestamp) -> Option<Timestamp> {
    let mut requeue_at = None;
    current.send_if_modified(|gs| {
        let mut next = GameServer::clone(gs);
        requeue_at = settle(&mut next, now);
        if next == **gs {
            return false;
        }
        next.metadata.resource_version = Some(next_version(gs));
        *gs = Arc::new(next);
        true
    });
    requeue_at
}

/// What a GameServer controller would write for `gs` at `now` (the core reconcile's update; its
/// actions — ports, processes, deletion — have no meaning without a runtime). Returns the plan's
/// requeue time.
fn settle(gs: &mut GameServer, now: Timestamp) -> Option<Timestamp> {
    let defaults = GameServerDefaults::default();
    let plan = reconcile(gs, now, defaults);
    match plan.update {
        // The written object is what the controller would reconcile next; its plan says when.
        Some(update) => {
            *gs = update;
            reconcile(gs, now, defaults).requeue_at
        }
        None => plan.requeue_at,
    }
}

fn next_version(gs: &GameServer) -> String {
    let version: u64 = gs.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    (version + 1).to_string()
}

/// Fills in what a cluster would: name `local`, namespace `default`, a uid, a creation time,
/// Agones' spec defaults, and a status that is Ready at 127.0.0.1 on node `local` with its ports
/// (each spec port's host port, else its container port, else 7777), counters, lists and player
/// capacity. The node is what lets the core move SDK Ready on from RequestReady to Ready.
pub fn localize(mut gs: GameServer) -> GameServer {
    let meta = &mut gs.metadata;
    meta.name.get_or_insert_with(|| LOCAL_NAME.to_owned());
    meta.namespace.get_or_insert_with(|| LOCAL_NAMESPACE.to_owned());
    meta.uid.get_or_insert_with(|| uuid::Uuid::new_v4().to_string());
    meta.creation_timestamp.get_or_insert_with(|| Time(jiff::Timestamp::now()));
    meta.resource_version.get_or_insert_with(|| "1".to_owned());
    gs.spec.apply_defaults();
    let spec = gs.spec.clone();
    let status = gs.status.get_or_insert_with(GameServerStatus::default);
    status.state.get_or_insert(GameServerState::Ready);
    if status.address.is_empty() {
        LOCAL_ADDRESS.clone_into(&mut status.address);
    }
    if status.node_name.is_empty() {
        LOCAL_NODE.clone_into(&mut status.node_name);
    }
    if status.ports.is_empty() {
        status.ports = if spec.ports.is_empty() {
            vec![GameServerStatusPort { name: "default".to_owned(), port: LOCAL_PORT }]
        } else {
            spec.ports
                .iter()
                .map(|p| GameServerStatusPort {
                    name: p.name.clone(),
                    port: p.host_port.or(p.container_port).unwrap_or(LOCAL_PORT),
                })
                .collect()
        };
    }
    if status.counters.is_empty() {
        status.counters = spec.counters;
    }
    if status.lists.is_empty() {
        status.lists = spec.lists;
    }
    if status.players.is_none()
        && let Some(players) = spec.players
    {
        status.players = Some(PlayerStatus { count: 0, capacity: players.initial_capacity, ids: Vec::new() });
    }
    gs
}

#[async_trait]
impl GameServerBackend for LocalBackend {
    async fn get(&self) -> Result<GameServer, SdkError> {
        Ok(GameServer::clone(&self.current.borrow()))
    }

    fn watch(&self) -> watch::Receiver<Arc<GameServer>> {
        self.current.subscribe()
    }

    async fn update(&self, mut mutate: Mutation) -> Result<GameServer, SdkError> {
        let mut outcome = Ok(());
        let mut result = None;
        let mut requeue_at = None;
        let now = Timestamp::now();
        self.current.send_if_modified(|current| {
            let mut next = GameServer::clone(current);
            if let Err(error) = mutate(&mut next) {
                outcome = Err(error);
                return false;
            }
            // In the same atomic step, so the game never sees a RequestReady nobody moves on.
            if self.standalone {
                requeue_at = settle(&mut next, now);
            }
            if next == **current {
                result = Some(next);
                return false;
            }
            next.metadata.resource_version = Some(next_version(current));
            *current = Arc::new(next.clone());
            result = Some(next);
            true
        });
        outcome?;
        if self.standalone {
            self.arm(requeue_at);
        }
        result.ok_or_else(|| SdkError::Internal("local update produced no object".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_local_server_matches_agones_local_mode() {
        let gs = LocalBackend::default_game_server();
        assert_eq!(gs.metadata.name.as_deref(), Some("local"));
        assert_eq!(gs.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(gs.state(), Some(GameServerState::Ready));
        let status = gs.status.expect("status");
        assert_eq!(status.address, "127.0.0.1");
        assert_eq!(status.node_name, "local", "so the core can move RequestReady on");
        assert_eq!(status.ports, vec![GameServerStatusPort { name: "default".into(), port: 7777 }]);
        // What Agones' local SDK server starts with, and its conformance clients expect.
        assert_eq!(status.counters["rooms"], CounterStatus { count: 1, capacity: 10 });
        assert_eq!(status.lists["players"].capacity, 100);
        assert_eq!(status.lists["players"].values, ["test0", "test1", "test2"]);
    }

    fn set_state(state: GameServerState, reserved_until: Option<Timestamp>) -> Mutation {
        Box::new(move |gs| {
            let status = gs.status.get_or_insert_with(GameServerStatus::default);
            status.state = Some(state);
            status.reserved_until = reserved_until.map(Time);
            Ok(())
        })
    }

    #[tokio::test]
    async fn standalone_it_moves_ready_on_and_ends_reservations_itself() {
        let backend = LocalBackend::new(LocalBackend::default_game_server());
        let ready = backend.update(set_state(GameServerState::RequestReady, None)).await.expect("update");
        assert_eq!(ready.state(), Some(GameServerState::Ready), "RequestReady -> Ready in the same step");

        let mut watch = backend.watch();
        let until = Timestamp::now() + jiff::SignedDuration::from_millis(300);
        let reserved = backend.update(set_state(GameServerState::Reserved, Some(until))).await.expect("update");
        assert_eq!(reserved.state(), Some(GameServerState::Reserved));
        let expired = tokio::time::timeout(
            Duration::from_secs(3),
            watch.wait_for(|gs| gs.state() == Some(GameServerState::Ready)),
        )
        .await;
        assert!(expired.is_ok(), "the reservation ended at its deadline");
        let gs = backend.get().await.expect("get");
        assert!(gs.status.and_then(|s| s.reserved_until).is_none());
    }

    #[tokio::test]
    async fn a_cancelled_reservation_is_not_ended_later() {
        let backend = LocalBackend::new(LocalBackend::default_game_server());
        let until = Timestamp::now() + jiff::SignedDuration::from_millis(200);
        backend.update(set_state(GameServerState::Reserved, Some(until))).await.expect("reserve");
        backend.update(set_state(GameServerState::Allocated, None)).await.expect("allocate");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(backend.get().await.expect("get").state(), Some(GameServerState::Allocated));
    }

    #[tokio::test]
    async fn a_reservation_that_ended_before_start_is_ended_on_start() {
        let mut gs = LocalBackend::default_game_server();
        let status = gs.status.get_or_insert_with(GameServerStatus::default);
        status.state = Some(GameServerState::Reserved);
        status.reserved_until = Some(Time(Timestamp::now() - jiff::SignedDuration::from_secs(5)));
        let backend = LocalBackend::new(gs);
        assert_eq!(backend.get().await.expect("get").state(), Some(GameServerState::Ready));
    }

    #[tokio::test]
    async fn with_a_controller_it_only_stores_what_it_is_given() {
        let backend = LocalBackend::new(LocalBackend::default_game_server()).with_controller();
        let asked = backend.update(set_state(GameServerState::RequestReady, None)).await.expect("update");
        assert_eq!(asked.state(), Some(GameServerState::RequestReady), "the controller moves it on");
        let past = Timestamp::now() - jiff::SignedDuration::from_secs(1);
        backend.update(set_state(GameServerState::Reserved, Some(past))).await.expect("update");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            backend.get().await.expect("get").state(),
            Some(GameServerState::Reserved),
            "the controller ends it"
        );
    }

    #[tokio::test]
    async fn failed_mutations_change_nothing_and_notify_no_one() {
        let backend = LocalBackend::new(LocalBackend::default_game_server());
        let mut watch = backend.watch();
        watch.borrow_and_update();
        let err = backend
            .update(Box::new(|gs| {
                gs.metadata.name = Some("changed".into());
                Err(SdkError::InvalidArgument("no".into()))
            }))
            .await;
        assert!(err.is_err());
        assert!(!watch.has_changed().unwrap_or(true));
        assert_eq!(backend.get().await.ok().and_then(|g| g.metadata.name), Some("local".into()));
        let updated = backend
            .update(Box::new(|gs| {
                gs.metadata.name = Some("changed".into());
                Ok(())
            }))
            .await
            .expect("update");
        assert_eq!(updated.metadata.resource_version.as_deref(), Some("2"));
        assert!(watch.has_changed().unwrap_or(false));
    }
}

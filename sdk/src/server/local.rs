//! The standalone local backend behind `stadion sdk-server --local`: one in-memory GameServer
//! (optionally loaded from a manifest and reloaded when the file changes) for a game developer to
//! test an SDK integration against, with no cluster and no controller.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use stadion_crds::gameserver::{GameServerStatus, GameServerStatusPort, PlayerStatus};
use stadion_crds::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stadion_crds::manifest::{ManifestError, parse_gameserver};
use stadion_crds::{GameServer, GameServerState};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{GameServerBackend, Mutation, SdkError};

/// Name of the local GameServer when the manifest gives none.
pub const LOCAL_NAME: &str = "local";
/// Namespace of the local GameServer when the manifest gives none.
pub const LOCAL_NAMESPACE: &str = "default";
/// Address of the local GameServer.
pub const LOCAL_ADDRESS: &str = "127.0.0.1";
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

/// An in-memory GameServer. Every update is applied under the watch channel's lock and published
/// to watchers at once; unchanged updates publish nothing.
#[derive(Debug)]
pub struct LocalBackend {
    current: watch::Sender<Arc<GameServer>>,
    ready_state: GameServerState,
}

impl LocalBackend {
    /// A backend holding `gs` as given. SDK Ready moves it straight to Ready (no controller).
    pub fn new(gs: GameServer) -> Self {
        let (current, _) = watch::channel(Arc::new(gs));
        Self { current, ready_state: GameServerState::Ready }
    }

    /// Makes SDK Ready request `state` instead (e.g. RequestReady when a controller moves it on).
    pub fn with_ready_state(mut self, state: GameServerState) -> Self {
        self.ready_state = state;
        self
    }

    /// The default local GameServer: `local` in `default`, Ready, 127.0.0.1, port `default` 7777.
    pub fn default_game_server() -> GameServer {
        localize(GameServer::default())
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

fn next_version(gs: &GameServer) -> String {
    let version: u64 = gs.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    (version + 1).to_string()
}

/// Fills in what a cluster would: name `local`, namespace `default`, a uid, a creation time,
/// Agones' spec defaults, and a status that is Ready at 127.0.0.1 with its ports (each spec port's
/// host port, else its container port, else 7777), counters, lists and player capacity.
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
        self.current.send_if_modified(|current| {
            let mut next = GameServer::clone(current);
            if let Err(error) = mutate(&mut next) {
                outcome = Err(error);
                return false;
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
        result.ok_or_else(|| SdkError::Internal("local update produced no object".into()))
    }

    fn ready_state(&self) -> GameServerState {
        self.ready_state
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
        assert_eq!(status.ports, vec![GameServerStatusPort { name: "default".into(), port: 7777 }]);
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

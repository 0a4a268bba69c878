//! Errors of the local runtime (the store keeps its own [`StoreError`], which this wraps).

use std::path::PathBuf;

use super::store::StoreError;

/// What went wrong in the local runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The GameServer names no game container the runtime can find.
    #[error("GameServer {gameserver}: {message}")]
    GameContainer {
        /// `namespace/name` of the GameServer.
        gameserver: String,
        /// Which container problem it is.
        message: String,
    },
    /// The game container asks for something a local process cannot have.
    #[error("GameServer {gameserver}: {path}: {message}")]
    Unsupported {
        /// `namespace/name` of the GameServer.
        gameserver: String,
        /// Field path in the GameServer, e.g. `spec.template.spec.containers[0].env[1].valueFrom`.
        path: String,
        /// Why it is unsupported and what to do instead.
        message: String,
    },
    /// The game process could not be started.
    #[error("GameServer {gameserver}: cannot start {program}: {source}")]
    Spawn {
        /// `namespace/name` of the GameServer.
        gameserver: String,
        /// The program that failed to start.
        program: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A process is already running under this key.
    #[error("GameServer {gameserver}: a process is already running for it")]
    AlreadyRunning {
        /// `namespace/name` of the GameServer.
        gameserver: String,
    },
    /// A GameServer's SDK sidecar could not start.
    #[error("GameServer {gameserver}: SDK sidecar: {source}")]
    Sidecar {
        /// `namespace/name` of the GameServer.
        gameserver: String,
        /// Why it could not start.
        source: stadion_sdk::server::ServeError,
    },
    /// The game's network sandbox could not be set up.
    #[error("GameServer {gameserver}: network sandbox: {source}")]
    Sandbox {
        /// `namespace/name` of the GameServer.
        gameserver: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A network listener (the admin endpoint) could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address asked for.
        address: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

impl Error {
    /// Short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Store(e) => e.kind(),
            Self::GameContainer { .. } => "game_container",
            Self::Unsupported { .. } => "unsupported",
            Self::Spawn { .. } => "spawn",
            Self::AlreadyRunning { .. } => "already_running",
            Self::Sidecar { .. } => "sidecar",
            Self::Sandbox { .. } => "sandbox",
            Self::Listen { .. } => "listen",
        }
    }
}

/// `Result` of the local runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

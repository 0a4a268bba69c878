//! The object-store seam: what an executor needs from wherever objects live. The local runtime's
//! embedded store and the kube runtime's client (with its watch caches) both implement
//! [`ObjectStore`], so the set, fleet and autoscaler executors and the allocation
//! compare-and-swap are written once.
//!
//! The semantics are Kubernetes': a replace carries the `metadata.resourceVersion` it was read
//! at and fails with [`StoreError::Conflict`] when the object moved on; a create of a taken name
//! fails with [`StoreError::AlreadyExists`]; a missing object is [`StoreError::NotFound`].

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};

/// A kind the stores hold: the four Agones kinds.
pub trait StoredObject: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static {
    /// The kind's name (`GameServer`, …), for errors, Events and logs.
    const KIND: &'static str;

    /// Its object metadata.
    fn object_meta(&self) -> &ObjectMeta;

    /// Its object metadata, to change.
    fn object_meta_mut(&mut self) -> &mut ObjectMeta;

    /// Its namespace, `default` when unset.
    fn namespace_or_default(&self) -> &str {
        self.object_meta().namespace.as_deref().filter(|ns| !ns.is_empty()).unwrap_or("default")
    }

    /// Its name (empty before one is generated).
    fn name_or_empty(&self) -> &str {
        self.object_meta().name.as_deref().unwrap_or_default()
    }
}

macro_rules! stored_object {
    ($($ty:ty => $kind:literal),* $(,)?) => {$(
        impl StoredObject for $ty {
            const KIND: &'static str = $kind;

            fn object_meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn object_meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    )*};
}

stored_object!(
    GameServer => "GameServer",
    GameServerSet => "GameServerSet",
    Fleet => "Fleet",
    FleetAutoscaler => "FleetAutoscaler",
);

/// Why a store operation failed, typed so every executor handles each case the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The object changed since it was read (a stale resourceVersion): read again and re-decide.
    #[error("{kind} {key} was modified since it was read")]
    Conflict {
        /// The kind.
        kind: &'static str,
        /// `namespace/name`.
        key: String,
    },
    /// The object does not exist (any more).
    #[error("{kind} {key} not found")]
    NotFound {
        /// The kind.
        kind: &'static str,
        /// `namespace/name`.
        key: String,
    },
    /// A create named an object that exists.
    #[error("{kind} {key} already exists")]
    AlreadyExists {
        /// The kind.
        kind: &'static str,
        /// `namespace/name`.
        key: String,
    },
    /// Anything else: the API server refused or could not be reached, the object is invalid.
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// A short stable label for metrics (`conflict`, `not_found`, `already_exists`, `other`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "conflict",
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Other(_) => "other",
        }
    }

    /// Whether a concurrent writer got there first: re-read and decide again, soon.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// Whether the object is gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Results of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Where objects of kind `K` live, as an executor sees them.
///
/// Reads may come from a cache (the kube runtime's watch caches), but an implementation must
/// include its own acknowledged writes in [`list_owned`](Self::list_owned) and
/// [`list`](Self::list) until the cache shows them, so a pass never acts twice on one plan.
#[async_trait]
pub trait ObjectStore<K: StoredObject>: Send + Sync {
    /// The object `namespace/name`, if it exists.
    async fn get(&self, namespace: &str, name: &str) -> StoreResult<Option<Arc<K>>>;

    /// Every object of the kind in `namespace` (all namespaces when `None`).
    async fn list(&self, namespace: Option<&str>) -> StoreResult<Vec<Arc<K>>>;

    /// The objects `owner` controls: same namespace, and a controller owner reference to the
    /// owner's uid (never a same-named stranger's children).
    async fn list_owned(&self, owner: &ObjectMeta) -> StoreResult<Vec<Arc<K>>> {
        let namespace = owner.namespace.as_deref().unwrap_or("default");
        let all = self.list(Some(namespace)).await?;
        Ok(all.into_iter().filter(|child| crate::is_controlled_by(child.object_meta(), owner)).collect())
    }

    /// Creates `object` (with `metadata.generateName`, the store picks the name).
    async fn create(&self, object: &K) -> StoreResult<Arc<K>>;

    /// Replaces the object, guarded by the `metadata.resourceVersion` it carries.
    async fn replace(&self, object: &K) -> StoreResult<Arc<K>>;

    /// Writes the object's status (the status subresource), guarded by its resourceVersion
    /// when it carries one; spec and metadata are left as stored.
    async fn replace_status(&self, object: &K) -> StoreResult<Arc<K>>;

    /// Deletes `namespace/name` (owned objects follow by cascade).
    async fn delete(&self, namespace: &str, name: &str) -> StoreResult<()>;
}

/// Event reasons. Agones' own (a GameServer's reasons are its state names), so `kubectl describe`
/// reads as on Agones, plus Kubernetes' `Failed*` reasons for a write the API refused.
pub mod reason {
    /// GameServer: host ports were picked.
    pub const PORT_ALLOCATION: &str = "PortAllocation";
    /// GameServer: its Pod is being created.
    pub const CREATING: &str = "Creating";
    /// GameServer: its Pod was scheduled onto a node.
    pub const SCHEDULED: &str = "Scheduled";
    /// GameServer: the game called Ready.
    pub const REQUEST_READY: &str = "RequestReady";
    /// GameServer: now allocatable.
    pub const READY: &str = "Ready";
    /// GameServer: allocated to a session.
    pub const ALLOCATED: &str = "Allocated";
    /// GameServer: being shut down.
    pub const SHUTDOWN: &str = "Shutdown";
    /// GameServer: its allocation TTL lapsed with no players connected, so it is shut down (a
    /// Stadion extension; Agones has no TTL).
    pub const ALLOCATION_EXPIRED: &str = "AllocationExpired";
    /// GameServer: its Pod failed or health checks were missed.
    pub const UNHEALTHY: &str = "Unhealthy";
    /// GameServer: its Pod could not be created.
    pub const ERROR: &str = "Error";
    /// GameServerSet: a GameServer was created.
    pub const SUCCESSFUL_CREATE: &str = "SuccessfulCreate";
    /// GameServerSet: a GameServer was deleted.
    pub const SUCCESSFUL_DELETE: &str = "SuccessfulDelete";
    /// Fleet: a GameServerSet was created.
    pub const CREATING_GAME_SERVER_SET: &str = "CreatingGameServerSet";
    /// Fleet: a GameServerSet was resized.
    pub const SCALING_GAME_SERVER_SET: &str = "ScalingGameServerSet";
    /// Fleet: an old GameServerSet was deleted.
    pub const DELETING_GAME_SERVER_SET: &str = "DeletingGameServerSet";
    /// FleetAutoscaler: the fleet was resized.
    pub const AUTO_SCALING_FLEET: &str = "AutoScalingFleet";
    /// FleetAutoscaler: the fleet could not be resized.
    pub const AUTO_SCALING_FLEET_ERROR: &str = "AutoScalingFleetError";
    /// Any kind: the object breaks the schema rules (no admission webhook caught it).
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    /// A create was refused (Kubernetes' reason for it).
    pub const FAILED_CREATE: &str = "FailedCreate";
    /// An update of an object or its status was refused.
    pub const FAILED_UPDATE: &str = "FailedUpdate";
    /// A delete was refused.
    pub const FAILED_DELETE: &str = "FailedDelete";
    /// The objects a pass needs could not be read.
    pub const FAILED_READ: &str = "FailedRead";
}

/// Whether an Event is routine or worth a person's attention (Kubernetes' Event types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Routine: created, scaled, deleted.
    Normal,
    /// Something is wrong: invalid spec, failed write.
    Warning,
}

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSubject {
    /// Its kind.
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid, when known.
    pub uid: Option<String>,
}

impl EventSubject {
    /// The subject for `object`.
    pub fn of<K: StoredObject>(object: &K) -> Self {
        Self {
            kind: K::KIND,
            namespace: object.namespace_or_default().to_owned(),
            name: object.name_or_empty().to_owned(),
            uid: object.object_meta().uid.clone(),
        }
    }
}

/// Where executors report what they did: Events (kube: the Events API; local: the log and the
/// admin API) and metrics.
#[async_trait]
pub trait Recorder: Send + Sync {
    /// Records an Event with Agones' `reason` about `subject`.
    async fn event(&self, subject: &EventSubject, event_type: EventType, reason: &str, note: String);

    /// Records one pass of `controller` and how it ended (`None`: it succeeded; else the error's
    /// kind label).
    fn reconciled(&self, controller: &'static str, elapsed: std::time::Duration, error_kind: Option<&'static str>);
}

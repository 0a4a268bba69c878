//! The embedded object store behind `stadion up`: Kubernetes API semantics without a cluster.
//!
//! Every kind lives in its own [`Collection`]; all of them share one resourceVersion counter, so a
//! version is unique store-wide exactly like etcd's revision. Objects are kept as `Arc`s: reads
//! and watch events hand out pointers, never deep copies. Writes take one short lock per kind.
//!
//! What is modelled, because the runtime's correctness depends on it:
//! - `metadata.uid`, `creationTimestamp`, `generation` (bumped only when the spec changes) and a
//!   monotonic `resourceVersion`;
//! - compare-and-swap: an update carrying a stale `resourceVersion` is a [`StoreError::Conflict`]
//!   (allocation depends on this: two matches can never win the same GameServer);
//! - finalizers: delete only sets `deletionTimestamp` until the last finalizer is removed;
//! - owner references: removing an object deletes its dependents (background propagation);
//! - watches: every change is delivered to every watcher in resourceVersion order.

mod collection;
mod object_store;
mod watchers;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};

pub use collection::{Collection, Deletion, Watch, WatchEvent};
/// List filters are the core's compiled label selectors.
pub use stadion_core::labelselector::Selector;
pub use watchers::{TryRecvError, WatchEvents};

/// Namespace used when an object names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No object with that namespace and name.
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// Kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Create of a name that is taken.
    #[error("{kind} {namespace}/{name} already exists")]
    AlreadyExists {
        /// Kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A precondition (resourceVersion or uid) no longer holds: someone else wrote first.
    #[error("{kind} {namespace}/{name}: conflict: {message}")]
    Conflict {
        /// Kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Which precondition failed.
        message: String,
    },
    /// The request itself is malformed (bad name, resourceVersion on create, bad selector…).
    #[error("invalid: {message}")]
    Invalid {
        /// What is wrong.
        message: String,
    },
}

impl StoreError {
    /// Short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Conflict { .. } => "conflict",
            Self::Invalid { .. } => "invalid",
        }
    }

    /// Whether this is a compare-and-swap conflict (retry with a fresh read).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// Whether the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// `Result` of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A kind the store can hold: one of Stadion's resources.
pub trait StoreObject:
    k8s_openapi::Metadata<Ty = ObjectMeta> + k8s_openapi::Resource + Clone + PartialEq + fmt::Debug + Send + Sync + 'static
{
    /// Whether `self` and `other` have the same spec (a difference bumps `generation`).
    fn same_spec(&self, other: &Self) -> bool;

    /// The collection holding this kind in `store`.
    fn collection(store: &Store) -> &Collection<Self>;

    /// Takes `other`'s status (what a write to the status subresource changes).
    fn copy_status_from(&mut self, other: &Self);
}

macro_rules! store_object {
    ($ty:ty, $field:ident) => {
        impl StoreObject for $ty {
            fn same_spec(&self, other: &Self) -> bool {
                self.spec == other.spec
            }

            fn collection(store: &Store) -> &Collection<Self> {
                &store.inner.$field
            }

            fn copy_status_from(&mut self, other: &Self) {
                self.status = other.status.clone();
            }
        }
    };
}

store_object!(GameServer, gameservers);
store_object!(GameServerSet, gameserversets);
store_object!(Fleet, fleets);
store_object!(FleetAutoscaler, fleetautoscalers);

/// The store: a cheap, cloneable handle to every collection.
#[derive(Clone, Default)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    gameservers: Collection<GameServer>,
    gameserversets: Collection<GameServerSet>,
    fleets: Collection<Fleet>,
    fleetautoscalers: Collection<FleetAutoscaler>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("gameservers", &self.inner.gameservers.len())
            .field("gameserversets", &self.inner.gameserversets.len())
            .field("fleets", &self.inner.fleets.len())
            .field("fleetautoscalers", &self.inner.fleetautoscalers.len())
            .finish()
    }
}

/// The one resourceVersion counter of the process. Global rather than per store so that versions
/// never repeat even across stores (tests build many); uniqueness is all callers may rely on.
static VERSIONS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn next_resource_version() -> u64 {
    VERSIONS.fetch_add(1, Ordering::Relaxed) + 1
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Typed access to one kind.
    pub fn api<K: StoreObject>(&self) -> Api<K> {
        Api { store: self.clone(), kind: PhantomData }
    }

    /// Deletes, transitively, every object owned by one of `uids` (background propagation).
    /// Dependents holding finalizers only get a `deletionTimestamp`; they are collected again
    /// when their own finalizers are removed.
    fn collect_garbage(&self, mut uids: Vec<String>) {
        while let Some(owner) = uids.pop() {
            uids.extend(self.inner.gameservers.delete_dependents(&owner));
            uids.extend(self.inner.gameserversets.delete_dependents(&owner));
            uids.extend(self.inner.fleets.delete_dependents(&owner));
            uids.extend(self.inner.fleetautoscalers.delete_dependents(&owner));
        }
    }
}

/// Typed operations on one kind of a [`Store`], mirroring a Kubernetes client's `Api<K>`.
pub struct Api<K> {
    store: Store,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Self { store: self.store.clone(), kind: PhantomData }
    }
}

impl<K: StoreObject> fmt::Debug for Api<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Api<{}>({} objects)", K::KIND, self.collection().len())
    }
}

impl<K: StoreObject> Api<K> {
    fn collection(&self) -> &Collection<K> {
        K::collection(&self.store)
    }

    /// Creates `object`: assigns uid, resourceVersion, generation 1 and creationTimestamp, and a
    /// name from `generateName` when it has none. `AlreadyExists` when the name is taken.
    pub fn create(&self, object: K) -> Result<Arc<K>> {
        self.collection().create(object)
    }

    /// The object named `name` in `namespace`.
    pub fn get(&self, namespace: &str, name: &str) -> Result<Arc<K>> {
        self.collection().get(namespace, name)
    }

    /// The object named `name` in `namespace`, if there is one.
    pub fn try_get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.collection().try_get(namespace, name)
    }

    /// Objects in `namespace` (every namespace when `None`) whose labels match `selector`,
    /// ordered by namespace and name.
    pub fn list(&self, namespace: Option<&str>, selector: &Selector) -> Vec<Arc<K>> {
        self.collection().list(namespace, selector)
    }

    /// Number of objects of this kind.
    pub fn len(&self) -> usize {
        self.collection().len()
    }

    /// Whether there are no objects of this kind.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the object. With `metadata.resourceVersion` set this is a compare-and-swap
    /// (`Conflict` when stale); without it, unconditional. Removing the last finalizer of an
    /// object being deleted removes it (and collects its dependents).
    pub fn update(&self, object: K) -> Result<Arc<K>> {
        let (object, removed) = self.collection().update(object)?;
        self.after_write(&object, removed);
        Ok(object)
    }

    /// Reads, changes with `change` and writes back atomically (under the kind's lock, so it can
    /// never conflict). `change` may refuse with an error, which is returned unchanged.
    pub fn update_with<E: From<StoreError>>(
        &self,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut K) -> Result<(), E>,
    ) -> Result<Arc<K>, E> {
        let (object, removed) = self.collection().update_with(namespace, name, change)?;
        self.after_write(&object, removed);
        Ok(object)
    }

    /// Deletes the object (only if its resourceVersion is still `precondition`, when given).
    /// With finalizers it is marked with a `deletionTimestamp` and stays until they are gone.
    pub fn delete(&self, namespace: &str, name: &str, precondition: Option<&str>) -> Result<Deletion<K>> {
        let deletion = self.collection().delete(namespace, name, precondition)?;
        if let Deletion::Removed(object) = &deletion {
            self.after_write(object, true);
        }
        Ok(deletion)
    }

    /// A watch of every later change, starting from a consistent list of what exists now.
    pub fn watch(&self) -> Watch<K> {
        self.collection().watch()
    }

    fn after_write(&self, object: &K, removed: bool) {
        if removed && let Some(uid) = &object.metadata().uid {
            self.store.collect_garbage(vec![uid.clone()]);
        }
    }
}

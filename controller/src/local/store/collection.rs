//! One kind's objects, its write path (where every metadata rule is enforced) and its watchers.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::watchers::{self, WatchEvents, WatchSender};
use super::{DEFAULT_NAMESPACE, Result, Selector, StoreError, StoreObject, next_resource_version};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use rand::Rng;

/// One change seen by a watcher.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent<K> {
    /// The object was created.
    Added(Arc<K>),
    /// The object changed (including being marked for deletion).
    Modified(Arc<K>),
    /// The object is gone; this is its last state.
    Deleted(Arc<K>),
}

impl<K> WatchEvent<K> {
    /// The object the event carries.
    pub fn object(&self) -> &Arc<K> {
        match self {
            Self::Added(o) | Self::Modified(o) | Self::Deleted(o) => o,
        }
    }
}

/// A consistent "list then watch": `initial` is the state right before the first event.
#[derive(Debug)]
pub struct Watch<K> {
    /// Every object at the moment the watch started.
    pub initial: Vec<Arc<K>>,
    /// Every change after that, in resourceVersion order per object, coalesced per object: a
    /// watcher that falls behind gets each object's latest state, never a backlog of every
    /// change (so an unread watch costs at most one or two events per object).
    pub events: WatchEvents<K>,
}

/// What a delete did.
#[derive(Clone, Debug, PartialEq)]
pub enum Deletion<K> {
    /// The object is gone (this was its last state).
    Removed(Arc<K>),
    /// The object has finalizers: it is marked with a `deletionTimestamp` and stays until they
    /// are removed.
    Finalizing(Arc<K>),
}

/// Every object of one kind. Reached through [`super::Api`].
pub struct Collection<K> {
    state: RwLock<State<K>>,
}

struct State<K> {
    objects: BTreeMap<(String, String), Arc<K>>,
    watchers: Vec<WatchSender<K>>,
}

impl<K> Default for Collection<K> {
    fn default() -> Self {
        Self { state: RwLock::new(State { objects: BTreeMap::new(), watchers: Vec::new() }) }
    }
}

impl<K: StoreObject> State<K> {
    fn notify(&mut self, event: WatchEvent<K>) {
        let meta = event.object().metadata();
        let key = (namespace_of(meta), meta.name.clone().unwrap_or_default());
        // A closed receiver means the watcher went away; forget it on the way.
        self.watchers.retain(|w| w.send(key.clone(), event.clone()));
    }
}

fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// Characters Kubernetes uses for generated name suffixes (no vowels, so no accidental words).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generated_name(prefix: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String =
        (0..5).map(|_| char::from(SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())])).collect();
    format!("{prefix}{suffix}")
}

/// A DNS-1123 subdomain, as Kubernetes requires of object names.
fn check_name(kind: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            message: format!(
                "{kind} name {name:?}: must be lowercase letters, digits, '-' or '.', start and end \
                 alphanumeric, at most 253 characters"
            ),
        })
    }
}

impl<K: StoreObject> Collection<K> {
    fn read(&self) -> RwLockReadGuard<'_, State<K>> {
        // A panic while holding the lock cannot leave the map half-written (every write is a
        // single insert/remove), so a poisoned lock is still consistent.
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State<K>> {
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn not_found(namespace: &str, name: &str) -> StoreError {
        StoreError::NotFound { kind: K::KIND, namespace: namespace.to_owned(), name: name.to_owned() }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// Whether the collection is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn create(&self, mut object: K) -> Result<Arc<K>> {
        let meta = object.metadata_mut();
        if meta.resource_version.is_some() {
            return Err(StoreError::Invalid {
                message: format!("{}: resourceVersion must not be set on create", K::KIND),
            });
        }
        let namespace = namespace_of(meta);
        let mut state = self.write();
        let name = match (meta.name.as_deref().filter(|n| !n.is_empty()), meta.generate_name.as_deref()) {
            (Some(name), _) => name.to_owned(),
            (None, Some(prefix)) if !prefix.is_empty() => {
                // The suffix space (27^5) is large enough that a few retries always find a free one.
                let mut candidate = generated_name(prefix);
                while state.objects.contains_key(&(namespace.clone(), candidate.clone())) {
                    candidate = generated_name(prefix);
                }
                candidate
            }
            _ => {
                return Err(StoreError::Invalid {
                    message: format!("{}: metadata.name or metadata.generateName is required", K::KIND),
                });
            }
        };
        check_name(K::KIND, &name)?;
        let key = (namespace.clone(), name.clone());
        if state.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists { kind: K::KIND, namespace, name });
        }
        meta.name = Some(name);
        meta.namespace = Some(namespace);
        meta.uid = Some(uuid::Uuid::new_v4().to_string());
        meta.generation = Some(1);
        meta.creation_timestamp = Some(Time(jiff::Timestamp::now()));
        meta.deletion_timestamp = None;
        meta.resource_version = Some(next_resource_version().to_string());
        let object = Arc::new(object);
        state.objects.insert(key, object.clone());
        state.notify(WatchEvent::Added(object.clone()));
        Ok(object)
    }

    pub(super) fn get(&self, namespace: &str, name: &str) -> Result<Arc<K>> {
        self.try_get(namespace, name).ok_or_else(|| Self::not_found(namespace, name))
    }

    pub(super) fn try_get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.read().objects.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    pub(super) fn list(&self, namespace: Option<&str>, selector: &Selector) -> Vec<Arc<K>> {
        let state = self.read();
        let selected = |object: &&Arc<K>| selector.matches(object.metadata().labels.as_ref());
        match namespace {
            Some(ns) => state
                .objects
                .range((ns.to_owned(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, o)| o)
                .filter(selected)
                .cloned()
                .collect(),
            None => state.objects.values().filter(selected).cloned().collect(),
        }
    }

    /// Returns the stored object and whether the write removed it (last finalizer gone).
    pub(super) fn update(&self, object: K) -> Result<(Arc<K>, bool)> {
        let namespace = namespace_of(object.metadata());
        let name = object.metadata().name.clone().unwrap_or_default();
        let mut state = self.write();
        let current = state.objects.get(&(namespace.clone(), name.clone())).cloned();
        let current = current.ok_or_else(|| Self::not_found(&namespace, &name))?;
        let conflict = |message: String| StoreError::Conflict {
            kind: K::KIND,
            namespace: namespace.clone(),
            name: name.clone(),
            message,
        };
        let (theirs, ours) = (object.metadata(), current.metadata());
        if let Some(version) = &theirs.resource_version
            && Some(version) != ours.resource_version.as_ref()
        {
            return Err(conflict(format!(
                "resourceVersion {version} is stale (current {})",
                ours.resource_version.as_deref().unwrap_or_default()
            )));
        }
        if let Some(uid) = &theirs.uid
            && Some(uid) != ours.uid.as_ref()
        {
            return Err(conflict(format!("uid {uid} names an object that no longer exists")));
        }
        Ok(commit(&mut state, &current, object))
    }

    pub(super) fn update_with<E: From<StoreError>>(
        &self,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut K) -> Result<(), E>,
    ) -> Result<(Arc<K>, bool), E> {
        let mut state = self.write();
        let current = state.objects.get(&(namespace.to_owned(), name.to_owned())).cloned();
        let current = current.ok_or_else(|| Self::not_found(namespace, name))?;
        let mut object = K::clone(&current);
        change(&mut object)?;
        // The caller may not rename or move the object from inside `change`.
        object.metadata_mut().name = Some(name.to_owned());
        object.metadata_mut().namespace = Some(namespace.to_owned());
        Ok(commit(&mut state, &current, object))
    }

    pub(super) fn delete(&self, namespace: &str, name: &str, precondition: Option<&str>) -> Result<Deletion<K>> {
        let mut state = self.write();
        let key = (namespace.to_owned(), name.to_owned());
        let current = state.objects.get(&key).cloned().ok_or_else(|| Self::not_found(namespace, name))?;
        if let Some(version) = precondition
            && Some(version) != current.metadata().resource_version.as_deref()
        {
            return Err(StoreError::Conflict {
                kind: K::KIND,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                message: format!("delete precondition: resourceVersion {version} is stale"),
            });
        }
        Ok(delete_locked(&mut state, key, current))
    }

    /// Deletes every object with an owner reference to `owner_uid`; returns the uids of those
    /// removed outright (their own dependents must be collected next).
    pub(super) fn delete_dependents(&self, owner_uid: &str) -> Vec<String> {
        let mut state = self.write();
        let owned: Vec<_> = state
            .objects
            .iter()
            .filter(|(_, o)| o.metadata().owner_references.iter().flatten().any(|r| r.uid == owner_uid))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        let mut removed = Vec::new();
        for (key, object) in owned {
            if let Deletion::Removed(gone) = delete_locked(&mut state, key, object) {
                removed.extend(gone.metadata().uid.clone());
            }
        }
        removed
    }

    pub(super) fn watch(&self) -> Watch<K> {
        let (sender, events) = watchers::channel();
        let mut state = self.write();
        state.watchers.push(sender);
        Watch { initial: state.objects.values().cloned().collect(), events }
    }
}

fn has_finalizers(meta: &ObjectMeta) -> bool {
    meta.finalizers.as_ref().is_some_and(|f| !f.is_empty())
}

/// Writes `object` over `current` (whose lock is held): keeps the server-owned metadata, bumps
/// generation on a spec change, and removes the object if it was being deleted and just lost its
/// last finalizer. An update that changes nothing is not a write (no new version, no event).
fn commit<K: StoreObject>(state: &mut State<K>, current: &Arc<K>, mut object: K) -> (Arc<K>, bool) {
    let ours = current.metadata();
    let spec_changed = !object.same_spec(current);
    let meta = object.metadata_mut();
    meta.uid.clone_from(&ours.uid);
    meta.creation_timestamp.clone_from(&ours.creation_timestamp);
    // Once set, only the store clears deletionTimestamp (by removing the object).
    meta.deletion_timestamp.clone_from(&ours.deletion_timestamp);
    meta.generate_name.clone_from(&ours.generate_name);
    meta.generation = Some(ours.generation.unwrap_or(1) + i64::from(spec_changed));
    meta.resource_version.clone_from(&ours.resource_version);
    let key = (namespace_of(meta), meta.name.clone().unwrap_or_default());
    let removing = ours.deletion_timestamp.is_some() && !has_finalizers(meta);
    if !removing && object == **current {
        return (current.clone(), false);
    }
    object.metadata_mut().resource_version = Some(next_resource_version().to_string());
    let object = Arc::new(object);
    if removing {
        state.objects.remove(&key);
        state.notify(WatchEvent::Deleted(object.clone()));
    } else {
        state.objects.insert(key, object.clone());
        state.notify(WatchEvent::Modified(object.clone()));
    }
    (object, removing)
}

fn delete_locked<K: StoreObject>(state: &mut State<K>, key: (String, String), current: Arc<K>) -> Deletion<K> {
    if has_finalizers(current.metadata()) {
        if current.metadata().deletion_timestamp.is_some() {
            return Deletion::Finalizing(current);
        }
        let mut marked = K::clone(&current);
        marked.metadata_mut().deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        marked.metadata_mut().resource_version = Some(next_resource_version().to_string());
        let marked = Arc::new(marked);
        state.objects.insert(key, marked.clone());
        state.notify(WatchEvent::Modified(marked.clone()));
        return Deletion::Finalizing(marked);
    }
    state.objects.remove(&key);
    // The Deleted event carries a fresh version, as Kubernetes' does, so watchers can order it.
    let mut gone = K::clone(&current);
    gone.metadata_mut().resource_version = Some(next_resource_version().to_string());
    let gone = Arc::new(gone);
    state.notify(WatchEvent::Deleted(gone.clone()));
    Deletion::Removed(gone)
}

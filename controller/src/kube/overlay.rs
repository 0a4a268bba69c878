//! Our own recent writes (GameServers of a set, sets of a fleet), laid over a watch cache that
//! may not show them yet.
//!
//! A set reconciled right after it created servers would otherwise count from a cache that
//! lacks them and create them again. Each write is remembered until the cache catches up (holds
//! the same or a newer resourceVersion, or no longer holds a deleted object).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Resource;

use stadion_core::object_key;

/// How long a write is trusted over the cache: long enough for any watch lag, short enough that
/// a write the cache will never show (the object was deleted by someone else) is forgotten.
const TTL: Duration = Duration::from_secs(60);

/// Recent writes and deletions of one kind, by `namespace/name`.
#[derive(Debug)]
pub struct WriteOverlay<K> {
    written: HashMap<String, (Instant, Arc<K>)>,
    deleted: HashMap<String, Instant>,
}

impl<K> Default for WriteOverlay<K> {
    fn default() -> Self {
        Self { written: HashMap::new(), deleted: HashMap::new() }
    }
}

fn version<K: Resource>(obj: &K) -> Option<u64> {
    obj.meta().resource_version.as_deref().and_then(|v| v.parse().ok())
}

/// `namespace/name` of any namespaced object (`default` when unset).
pub fn key_of<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    object_key(meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or_default())
}

impl<K: Resource> WriteOverlay<K> {
    /// Remembers a created or updated server (as the API server returned it).
    pub fn wrote(&mut self, gs: Arc<K>) {
        let key = key_of(&*gs);
        self.deleted.remove(&key);
        self.written.insert(key, (Instant::now(), gs));
    }

    /// Remembers a deleted server.
    pub fn deleted(&mut self, key: String) {
        self.written.remove(&key);
        self.deleted.insert(key, Instant::now());
    }

    /// Our own write of `cached`'s object when the cache still shows an older version of it (a
    /// reconcile woken by another object's change can run before its own write is cached);
    /// an entry the cache has caught up with is forgotten.
    pub fn newer(&mut self, cached: &K) -> Option<Arc<K>> {
        let key = key_of(cached);
        let (at, ours) = self.written.get(&key)?;
        if at.elapsed() < TTL && version(&**ours) > version(cached) {
            return Some(Arc::clone(ours));
        }
        self.written.remove(&key);
        None
    }

    /// `cached` with our newer writes swapped in, our creations added and our deletions removed;
    /// entries the cache has caught up with are forgotten. Objects are shared, never copied.
    pub fn view(&mut self, cached: Vec<Arc<K>>, belongs: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        let now = Instant::now();
        self.written.retain(|_, (at, _)| now.duration_since(*at) < TTL);
        self.deleted.retain(|_, at| now.duration_since(*at) < TTL);
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(cached.len());
        for gs in cached {
            let key = key_of(&*gs);
            seen.insert(key.clone());
            if self.deleted.contains_key(&key) {
                continue;
            }
            match self.written.get(&key) {
                Some((_, ours)) if version(&**ours) > version(&*gs) => out.push(Arc::clone(ours)),
                Some(_) => {
                    self.written.remove(&key);
                    out.push(gs);
                }
                None => out.push(gs),
            }
        }
        // Deletions the cache no longer shows are done.
        self.deleted.retain(|key, _| seen.contains(key));
        out.extend(
            self.written
                .iter()
                .filter(|(key, _)| !seen.contains(*key))
                .map(|(_, (_, gs))| Arc::clone(gs))
                .filter(|gs| belongs(gs)),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::fixtures::gameserver;
    use stadion_crds::GameServer;

    fn at(name: &str, rv: &str) -> Arc<GameServer> {
        let mut gs = gameserver(name);
        gs.metadata.resource_version = Some(rv.into());
        Arc::new(gs)
    }

    #[test]
    fn creations_show_until_cached_and_deletions_hide() {
        let mut overlay = WriteOverlay::<GameServer>::default();
        overlay.wrote(at("new", "10"));
        overlay.deleted("default/gone".into());
        let view = overlay.view(vec![at("gone", "3"), at("old", "4")], |_| true);
        let names: Vec<_> = view.iter().map(|gs| gs.name()).collect();
        assert_eq!(names, ["old", "new"]);
        // The cache catches up: the write is forgotten, the cached copy used.
        let view = overlay.view(vec![at("new", "11")], |_| true);
        assert_eq!(view[0].metadata.resource_version.as_deref(), Some("11"));
        assert!(overlay.written.is_empty() && overlay.deleted.is_empty());
    }

    #[test]
    fn one_object_reads_our_newer_write_until_the_cache_catches_up() {
        let mut overlay = WriteOverlay::<GameServer>::default();
        assert!(overlay.newer(&at("a", "5")).is_none(), "nothing written");
        overlay.wrote(at("a", "9"));
        let newer = overlay.newer(&at("a", "5")).expect("the cache trails our write");
        assert_eq!(newer.metadata.resource_version.as_deref(), Some("9"));
        assert!(overlay.newer(&at("b", "5")).is_none(), "another object");
        // Someone else wrote after us and the cache shows it: theirs, and ours is forgotten.
        assert!(overlay.newer(&at("a", "12")).is_none());
        assert!(overlay.written.is_empty());
    }

    #[test]
    fn newer_write_wins_over_stale_cache() {
        let mut overlay = WriteOverlay::<GameServer>::default();
        let mut ours = Arc::unwrap_or_clone(at("a", "9"));
        ours.metadata.labels = Some([("x".to_owned(), "y".to_owned())].into());
        overlay.wrote(Arc::new(ours));
        let view = overlay.view(vec![at("a", "5")], |_| true);
        assert_eq!(view[0].metadata.resource_version.as_deref(), Some("9"));
    }
}

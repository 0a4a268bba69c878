//! In-process claims: which servers this process's allocations are writing right now, and which
//! versions of servers they have already written.
//!
//! With Packed order every concurrent request of one process ranks the same server first. Left
//! alone they all write it, one wins and the rest spend a write each on a conflict, then race
//! again for the second server (measured on a real API server: 2,337 conflicts for 215
//! allocations at 16 clients). A claim makes the second request skip a server the first is
//! writing, so concurrent requests spread over different servers with no write wasted.
//!
//! A claim lives only for one compare-and-swap. What outlives it is the version it wrote: a
//! request that read its snapshot before the write landed (or a watch cache that has not shown
//! it yet) still sees that version as Ready, and would write it only to get a conflict. So each
//! version written is remembered (taken when the write won, stale when it conflicted) until the
//! views show a newer one, or for at most [`SPENT_TTL`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use stadion_crds::GameServer;
use tokio::sync::watch;

/// Longest a written version is remembered: past any ordinary watch lag. A cache later than
/// that costs one conflicting write, never a wrong answer (the write is still guarded), while a
/// longer memory would grow with the allocation rate.
pub const SPENT_TTL: Duration = Duration::from_secs(10);

/// A written version is forgotten early once a snapshot shows a newer one, but not before this
/// age: a request may still be working from a snapshot taken before the write.
pub const SPENT_MIN_AGE: Duration = Duration::from_secs(2);

/// What [`ClaimSet::claim`] found.
#[derive(Debug)]
pub enum Claim<'a> {
    /// The server is ours to write until the guard drops.
    Won(ClaimGuard<'a>),
    /// Another allocation of this process is writing it now: try it later.
    Busy,
    /// This process allocated this version: it is taken, skip it.
    Taken,
    /// A write of this version by this process conflicted: it is stale, but the server may
    /// still be free at a newer version (re-read it rather than write it).
    Stale,
}

/// How a claimed write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spent {
    /// Not written (another failure): the version stays as good as it was.
    No,
    /// Written: this version is taken.
    Won,
    /// Refused as stale.
    Stale,
}

#[derive(Debug)]
struct SpentVersion {
    version: String,
    won: bool,
    at: Instant,
}

#[derive(Debug, Default)]
struct Claims {
    /// `namespace/name` of servers being written.
    in_flight: HashSet<String>,
    /// namespace → name → (resourceVersion written, whether the write won, when).
    spent: HashMap<String, HashMap<String, SpentVersion>>,
    /// The same entries in the order they were spent, to expire the oldest.
    order: VecDeque<(Instant, String, String)>,
}

impl Claims {
    fn expire(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.order.front() {
            if now.duration_since(*at) < SPENT_TTL {
                break;
            }
            let Some((at, namespace, name)) = self.order.pop_front() else { break };
            self.remove_spent_if(&namespace, &name, |spent| spent.at == at);
        }
    }

    fn remove_spent_if(&mut self, namespace: &str, name: &str, test: impl Fn(&SpentVersion) -> bool) {
        let Some(names) = self.spent.get_mut(namespace) else { return };
        if names.get(name).is_some_and(test) {
            names.remove(name);
        }
        if names.is_empty() {
            self.spent.remove(namespace);
        }
    }

    fn spent_version(&self, namespace: &str, name: &str) -> Option<&SpentVersion> {
        self.spent.get(namespace)?.get(name)
    }
}

/// The claims of one process (one allocator). Cheap to share: one mutex held for a few map
/// operations.
#[derive(Debug)]
pub struct ClaimSet {
    claims: Mutex<Claims>,
    released: watch::Sender<u64>,
}

impl Default for ClaimSet {
    fn default() -> Self {
        Self { claims: Mutex::default(), released: watch::channel(0).0 }
    }
}

/// A server claimed for one compare-and-swap; dropping it releases the claim.
#[derive(Debug)]
pub struct ClaimGuard<'a> {
    set: &'a ClaimSet,
    namespace: String,
    name: String,
    version: String,
    spent: Spent,
}

impl ClaimGuard<'_> {
    /// Records that the claimed version was written: the server is taken.
    pub fn won(&mut self) {
        self.spent = Spent::Won;
    }

    /// Records that the write was refused as stale (a conflict, or the server is gone), so
    /// nobody in this process writes that version again.
    pub fn stale(&mut self) {
        self.spent = Spent::Stale;
    }
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        let mut claims = self.set.lock();
        claims.in_flight.remove(&stadion_core::object_key(&self.namespace, &self.name));
        if self.spent != Spent::No {
            let now = Instant::now();
            claims.expire(now);
            let spent =
                SpentVersion { version: std::mem::take(&mut self.version), won: self.spent == Spent::Won, at: now };
            claims.spent.entry(self.namespace.clone()).or_default().insert(self.name.clone(), spent);
            claims.order.push_back((now, std::mem::take(&mut self.namespace), std::mem::take(&mut self.name)));
        }
        drop(claims);
        self.set.released.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl ClaimSet {
    fn lock(&self) -> MutexGuard<'_, Claims> {
        // Every critical section is a few map operations that cannot leave the maps half
        // changed, so a panic elsewhere leaves them usable.
        self.claims.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `gs` (at the version it carries) for one write, unless another allocation of
    /// this process is writing it or already wrote this version.
    pub fn claim(&self, gs: &GameServer) -> Claim<'_> {
        let (namespace, name) = (gs.namespace(), gs.name());
        let version = gs.metadata.resource_version.as_deref().unwrap_or_default();
        let mut claims = self.lock();
        if let Some(spent) = claims.spent_version(namespace, name).filter(|spent| spent.version == version) {
            return if spent.won { Claim::Taken } else { Claim::Stale };
        }
        if !claims.in_flight.insert(stadion_core::object_key(namespace, name)) {
            return Claim::Busy;
        }
        Claim::Won(ClaimGuard {
            set: self,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            version: version.to_owned(),
            spent: Spent::No,
        })
    }

    /// Forgets written versions that `servers` (a fresh snapshot of `namespace`) has moved past,
    /// so the memory stays as small as the views' lag.
    pub fn forget_caught_up(&self, namespace: &str, servers: &[Arc<GameServer>]) {
        let mut claims = self.lock();
        let now = Instant::now();
        claims.expire(now);
        if !claims.spent.contains_key(namespace) {
            return;
        }
        for gs in servers {
            let version = gs.metadata.resource_version.as_deref().unwrap_or_default();
            claims.remove_spent_if(namespace, gs.name(), |spent| {
                spent.version != version && now.duration_since(spent.at) >= SPENT_MIN_AGE
            });
        }
    }

    /// A receiver that changes whenever a claim is released: a request that skipped busy
    /// servers waits on it before looking at them again.
    pub fn releases(&self) -> watch::Receiver<u64> {
        self.released.subscribe()
    }

    /// How many written versions are remembered (for tests and debugging).
    pub fn spent_len(&self) -> usize {
        self.lock().spent.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use stadion_core::testing::GameServerBuilder;

    use super::*;

    fn at_version(name: &str, version: &str) -> GameServer {
        let mut gs = GameServerBuilder::new(name).build();
        gs.metadata.resource_version = Some(version.to_owned());
        gs
    }

    #[test]
    fn a_server_being_written_is_busy_and_a_written_version_is_spent() {
        let set = ClaimSet::default();
        let gs = at_version("gs-1", "4");
        let Claim::Won(mut guard) = set.claim(&gs) else { panic!("free server not claimed") };
        assert!(matches!(set.claim(&gs), Claim::Busy));
        assert!(matches!(set.claim(&at_version("gs-2", "4")), Claim::Won(_)), "other servers stay free");
        guard.won();
        drop(guard);
        assert!(matches!(set.claim(&gs), Claim::Taken), "the written version is never written again");
        let Claim::Won(mut guard) = set.claim(&at_version("gs-1", "5")) else { panic!("a newer version is fair game") };
        guard.stale();
        drop(guard);
        assert!(matches!(set.claim(&at_version("gs-1", "5")), Claim::Stale), "a conflicting version is known stale");
    }

    #[test]
    fn a_claim_released_unwritten_frees_the_server_and_wakes_waiters() {
        let set = ClaimSet::default();
        let mut releases = set.releases();
        let gs = at_version("gs-1", "4");
        let Claim::Won(guard) = set.claim(&gs) else { panic!("not claimed") };
        assert!(!releases.has_changed().unwrap());
        drop(guard);
        assert!(releases.has_changed().unwrap(), "a release wakes requests waiting on busy servers");
        releases.borrow_and_update();
        assert!(matches!(set.claim(&gs), Claim::Won(_)), "a failed write does not mark the version spent");
        assert_eq!(set.spent_len(), 0);
    }

    #[test]
    fn written_versions_are_forgotten_only_once_old_and_caught_up() {
        let set = ClaimSet::default();
        let Claim::Won(mut guard) = set.claim(&at_version("gs-1", "4")) else { panic!("not claimed") };
        guard.won();
        drop(guard);
        let caught_up = vec![Arc::new(at_version("gs-1", "5"))];
        set.forget_caught_up("default", &caught_up);
        assert_eq!(set.spent_len(), 1, "too young: an older snapshot may still show version 4");
        // Age the entry past the minimum.
        for spent in set.lock().spent.get_mut("default").unwrap().values_mut() {
            spent.at = spent.at.checked_sub(SPENT_MIN_AGE).expect("an instant two seconds ago");
        }
        set.forget_caught_up("default", &[Arc::new(at_version("gs-1", "4"))]);
        assert_eq!(set.spent_len(), 1, "the view still shows the written version");
        set.forget_caught_up("default", &caught_up);
        assert_eq!(set.spent_len(), 0);
    }
}

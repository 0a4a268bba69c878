//! When each GameServer entered its current state: turns a stream of observed objects into
//! state changes with the time spent in the state left.

use std::collections::HashMap;
use std::time::SystemTime;

use stadion_crds::{GameServer, GameServerState};

/// One observed state change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateChange {
    /// The state left.
    pub from: GameServerState,
    /// The state entered.
    pub to: GameServerState,
    /// Seconds spent in `from`.
    pub seconds: f64,
}

/// namespace/name → (current state, when it was first seen in it).
#[derive(Debug, Default)]
pub struct StateClock {
    seen: HashMap<(String, String), (GameServerState, SystemTime)>,
}

impl StateClock {
    /// Notes `gs` as seen at `now`; a change of state from the one seen last is returned.
    /// The first sight of a server is no change (as in Agones, which counts updates, not adds).
    pub fn observe(&mut self, gs: &GameServer, now: SystemTime) -> Option<StateChange> {
        let state = gs.state()?;
        let key = (gs.namespace().to_owned(), gs.name().to_owned());
        let change = match self.seen.get(&key) {
            Some((from, _)) if *from == state => return None,
            Some((from, since)) => Some(StateChange {
                from: *from,
                to: state,
                seconds: now.duration_since(*since).map(|d| d.as_secs_f64()).unwrap_or(0.0),
            }),
            None => None,
        };
        // Nothing follows Shutdown: the entry would only wait for the delete.
        if state == GameServerState::Shutdown {
            self.seen.remove(&key);
        } else {
            self.seen.insert(key, (state, now));
        }
        change
    }

    /// Forgets a deleted server.
    pub fn forget(&mut self, namespace: &str, name: &str) {
        self.seen.remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Forgets every server `exists` says is gone (deletes a watch may have missed).
    pub fn retain(&mut self, mut exists: impl FnMut(&str, &str) -> bool) {
        self.seen.retain(|(namespace, name), _| exists(namespace, name));
    }

    /// Servers tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no server is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

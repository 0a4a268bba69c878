//! The dashboard's view of `stadion up`: the store's objects, the recorder's Events and the
//! supervisor's output tails.

use async_trait::async_trait;
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};

use super::recorder::LocalRecorder;
use super::store::{Selector, Store};
use super::supervisor::OutputTails;
use crate::dashboard::{DashboardSource, EventLine, Objects, ServerDetails};

/// [`DashboardSource`] over a local runtime's parts.
#[derive(Clone, Debug)]
pub struct LocalDashboardSource {
    /// The objects.
    pub store: Store,
    /// Recent Events per object.
    pub recorder: LocalRecorder,
    /// Recent output per game process.
    pub tails: OutputTails,
}

#[async_trait]
impl DashboardSource for LocalDashboardSource {
    fn objects(&self) -> Objects {
        let everything = Selector::everything();
        Objects {
            gameservers: self.store.api::<GameServer>().list(None, &everything),
            sets: self.store.api::<GameServerSet>().list(None, &everything),
            fleets: self.store.api::<Fleet>().list(None, &everything),
            autoscalers: self.store.api::<FleetAutoscaler>().list(None, &everything),
        }
    }

    async fn details(&self, namespace: &str, name: &str) -> ServerDetails {
        let events = self
            .recorder
            .events_for("GameServer", namespace, name)
            .into_iter()
            .map(|e| EventLine { type_: e.type_.to_owned(), reason: e.reason, note: e.note, time: e.time })
            .collect();
        ServerDetails { events, output: Some(self.tails.tail(&stadion_core::object_key(namespace, name))) }
    }
}

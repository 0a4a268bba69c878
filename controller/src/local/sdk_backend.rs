//! The SDK sidecar's view of one GameServer in the embedded store, so an in-process sidecar
//! behaves exactly like the cluster one: reads and watches the object, and applies each SDK call
//! as one atomic write.

use std::sync::Arc;

use async_trait::async_trait;
use stadion_core::gameserver::{GameServerDefaults, reconcile};
use stadion_crds::{GameServer, GameServerState};
use stadion_sdk::server::{GameServerBackend, Mutation, SdkError};
use tokio::sync::watch;

use super::store::{Api, StoreError};

/// A [`GameServerBackend`] over one GameServer of the store.
///
/// The watch is fed by the runtime's GameServer controller, which already watches every
/// GameServer: one store watch fans out to a thousand sidecars instead of a thousand watches
/// each filtering every event.
#[derive(Debug)]
pub struct StoreBackend {
    api: Api<GameServer>,
    namespace: String,
    name: String,
    changes: watch::Receiver<Arc<GameServer>>,
}

impl StoreBackend {
    /// A backend for `gs`, and the sender the runtime publishes every new version of it on.
    pub fn new(api: Api<GameServer>, gs: Arc<GameServer>) -> (Self, watch::Sender<Arc<GameServer>>) {
        let namespace = gs.namespace().to_owned();
        let name = gs.name().to_owned();
        let (publish, changes) = watch::channel(gs);
        (Self { api, namespace, name, changes }, publish)
    }
}

/// Carries a sidecar's refusal through the store's atomic update unchanged.
enum Refusal {
    Sdk(SdkError),
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

fn unavailable(error: StoreError) -> SdkError {
    SdkError::Unavailable(error.to_string())
}

/// Carries out, in the same write, the controller's answer to an SDK Ready: the core's own
/// `reconcile` moves RequestReady on to Ready. In a cluster that answer is a second write by the
/// controller; in one process there is no reason to make a thousand servers wait a queue round
/// for it, and the rule applied is the same function, so the runtimes cannot disagree on it.
fn settle_request_ready(gs: &mut GameServer) {
    if gs.state() != Some(GameServerState::RequestReady) {
        return;
    }
    let plan = reconcile(gs, jiff::Timestamp::now(), GameServerDefaults::default());
    if let Some(next) = plan.update.filter(|next| next.state() == Some(GameServerState::Ready)) {
        *gs = next;
    }
}

#[async_trait]
impl GameServerBackend for StoreBackend {
    async fn get(&self) -> Result<GameServer, SdkError> {
        self.api.get(&self.namespace, &self.name).map(|gs| (*gs).clone()).map_err(unavailable)
    }

    fn watch(&self) -> watch::Receiver<Arc<GameServer>> {
        self.changes.clone()
    }

    async fn update(&self, mut mutate: Mutation) -> Result<GameServer, SdkError> {
        // Under the store's lock the mutation sees the latest object and cannot conflict, which is
        // what compare-and-swap with retries would converge to, without the retries.
        let written = self
            .api
            .update_with(&self.namespace, &self.name, |gs| {
                mutate(gs).map_err(Refusal::Sdk)?;
                settle_request_ready(gs);
                Ok(())
            })
            .map_err(|refusal| match refusal {
                Refusal::Sdk(error) => error,
                Refusal::Store(error) => unavailable(error),
            })?;
        Ok((*written).clone())
    }
}

//! The local runtime under contract: `LocalRuntime` with the real test game, applied to as
//! `stadion up` applies manifests, and driven through each server's real sidecar.

use std::net::SocketAddr;
use std::sync::Arc;

use stadion_controller::local::LocalRuntime;
use stadion_controller::local::store::{Selector, StoreObject};
use stadion_core::allocator::Allocator;
use stadion_crds::manifest::Resource;
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};

use super::runtime::{ObjectKind, Runtime, SdkCall};
use super::sdk;
use crate::local_runtime;

/// Every local object lives here (the local runtime's default namespace).
const NAMESPACE: &str = "default";

/// A local runtime started for one scenario.
pub struct LocalContract {
    runtime: LocalRuntime,
}

impl LocalContract {
    /// Starts a runtime with the test settings (quiet games, short grace period).
    pub fn start() -> Self {
        Self { runtime: local_runtime::runtime() }
    }

    /// What `stadion up`'s admin endpoint serves of this runtime.
    pub fn admin_state(&self) -> stadion_controller::local::admin::AdminState {
        stadion_controller::local::admin::AdminState::of(&self.runtime)
    }

    /// Shuts the runtime down and checks no game process outlived it.
    pub async fn finish(self) {
        let pids: Vec<u32> = self
            .runtime
            .store()
            .api::<GameServer>()
            .list(None, &Selector::everything())
            .iter()
            .filter_map(|gs| self.runtime.process_id(gs.namespace(), gs.name()))
            .collect();
        self.runtime.shutdown().await;
        for pid in pids {
            assert!(!local_runtime::alive(pid), "game process {pid} outlived the local runtime");
        }
    }

    fn list<K: StoreObject>(&self) -> Vec<K> {
        self.runtime
            .store()
            .api::<K>()
            .list(Some(NAMESPACE), &Selector::everything())
            .iter()
            .map(|o| (**o).clone())
            .collect()
    }

    /// The REST address of the sidecar of server `name`, as its game process was told it
    /// (`AGONES_SDK_HTTP_PORT` in its environment). The runtime has no public accessor for
    /// it; reading the environment keeps the call on the game's own path.
    fn sidecar(&self, name: &str) -> Result<SocketAddr, String> {
        let pid = self
            .runtime
            .process_id(NAMESPACE, name)
            .ok_or_else(|| format!("GameServer {name} has no running game process (so no sidecar)"))?;
        let environ =
            std::fs::read(format!("/proc/{pid}/environ")).map_err(|e| format!("environment of {pid}: {e}"))?;
        let port = environ
            .split(|b| *b == 0)
            .filter_map(|entry| std::str::from_utf8(entry).ok())
            .find_map(|entry| entry.strip_prefix("AGONES_SDK_HTTP_PORT="))
            .ok_or_else(|| format!("game process {pid} of {name} was given no AGONES_SDK_HTTP_PORT"))?;
        let port: u16 = port.parse().map_err(|e| format!("AGONES_SDK_HTTP_PORT {port:?}: {e}"))?;
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

impl Runtime for LocalContract {
    fn name(&self) -> &'static str {
        "local"
    }

    fn namespace(&self) -> &str {
        NAMESPACE
    }

    async fn apply(&self, yaml: &str) -> Result<(), String> {
        self.runtime.apply(&local_runtime::manifests(yaml), false).map(drop).map_err(|e| e.to_string())
    }

    async fn store_unchecked(&self, yaml: &str) -> Result<(), String> {
        let store = self.runtime.store();
        for manifest in local_runtime::manifests(yaml) {
            let created = match manifest.resource {
                Resource::Fleet(mut fleet) => {
                    fleet.metadata.namespace = Some(NAMESPACE.to_owned());
                    store.api::<Fleet>().create(*fleet).map(drop)
                }
                Resource::GameServerSet(mut set) => {
                    set.metadata.namespace = Some(NAMESPACE.to_owned());
                    store.api::<GameServerSet>().create(*set).map(drop)
                }
                other => return Err(format!("store_unchecked takes Fleets and GameServerSets, not {}", other.kind())),
            };
            created.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn gameservers(&self) -> Vec<GameServer> {
        self.list()
    }

    async fn gameserversets(&self) -> Vec<GameServerSet> {
        self.list()
    }

    async fn fleet(&self, name: &str) -> Option<Fleet> {
        self.runtime.store().api::<Fleet>().try_get(NAMESPACE, name).map(|f| (*f).clone())
    }

    async fn autoscaler(&self, name: &str) -> Option<FleetAutoscaler> {
        self.runtime.store().api::<FleetAutoscaler>().try_get(NAMESPACE, name).map(|f| (*f).clone())
    }

    async fn sdk(&self, gameserver: &str, call: SdkCall) -> Result<(), String> {
        sdk::call(self.sidecar(gameserver)?, call).await
    }

    fn allocator(&self) -> Arc<dyn Allocator> {
        Arc::new(self.runtime.allocator())
    }

    async fn delete(&self, kind: ObjectKind, name: &str) -> Result<(), String> {
        let store = self.runtime.store();
        let deleted = match kind {
            ObjectKind::GameServer => store.api::<GameServer>().delete(NAMESPACE, name, None).map(drop),
            ObjectKind::GameServerSet => store.api::<GameServerSet>().delete(NAMESPACE, name, None).map(drop),
            ObjectKind::Fleet => store.api::<Fleet>().delete(NAMESPACE, name, None).map(drop),
        };
        deleted.map_err(|e| e.to_string())
    }
}

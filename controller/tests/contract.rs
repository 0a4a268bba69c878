//! The runtime contract: one set of scenarios, written once against [`Runtime`], run against
//! every runtime, so the laptop and the cluster cannot drift apart. Each scenario asserts what a
//! user relies on, as Agones behaves; a runtime that answers differently fails it.
//!
//! - `local::<scenario>`: the local runtime, with real game processes (`stadion-test-game`) and
//!   their in-process sidecars.
//! - `kube::<scenario>`: the kube runtime's controllers, allocator and sidecar backend in this
//!   process, over a stateful fake API server on loopback (`contract/fake_api.rs`); the harness
//!   plays kubelet and the game.
//! - `cluster::<scenario>`: the same kube harness over a real API server. Ignored unless asked
//!   for, because it installs CRDs and creates a Node in whatever cluster `KUBECONFIG` names:
//!
//! ```text
//! KUBECONFIG=~/.kube/config cargo test -p stadion-controller --test contract cluster:: -- --ignored
//! ```

#[path = "local_runtime/mod.rs"]
mod local_runtime;

mod contract {
    pub mod fake_api;
    pub mod kube;
    pub mod local;
    pub mod manifests;
    pub mod observe;
    pub mod parity;
    pub mod runtime;
    pub mod scenarios;
    pub mod sdk;
}

use std::panic::AssertUnwindSafe;

use futures::FutureExt;

pub use contract::runtime::Runtime;

/// Runs `scenario` against `runtime`, then tears the runtime down whether it passed or not (a
/// cluster keeps no namespace, a laptop no game process), then reports the scenario's panic.
async fn run_scenario<R, F>(runtime: R, finish: impl AsyncFnOnce(R), scenario: F)
where
    F: AsyncFnOnce(&R),
{
    let outcome = AssertUnwindSafe(scenario(&runtime)).catch_unwind().await;
    finish(runtime).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Stamps out one test per runtime for each scenario in [`contract::scenarios`].
macro_rules! contract_tests {
    ($($scenario:ident),+ $(,)?) => {
        mod local {
            use crate::contract::local::LocalContract;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let runtime = LocalContract::start();
                    crate::run_scenario(runtime, LocalContract::finish, async |rt: &LocalContract| {
                        crate::contract::scenarios::$scenario(rt).await
                    })
                    .await;
                }
            )+
        }

        mod kube {
            use crate::contract::kube::KubeContract;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let runtime = KubeContract::over_fake_api().await;
                    crate::run_scenario(runtime, KubeContract::finish, async |rt: &KubeContract| {
                        crate::contract::scenarios::$scenario(rt).await
                    })
                    .await;
                }
            )+
        }

        mod cluster {
            use crate::contract::kube::KubeContract;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs cluster"]
                async fn $scenario() {
                    let Some(runtime) = KubeContract::over_cluster().await else {
                        eprintln!("skipped: KUBECONFIG is not set, so there is no cluster to run against");
                        return;
                    };
                    crate::run_scenario(runtime, KubeContract::finish, async |rt: &KubeContract| {
                        crate::contract::scenarios::$scenario(rt).await
                    })
                    .await;
                }
            )+
        }
    };
}

contract_tests!(
    scale_packed,
    scale_distributed,
    rolling_update_keeps_allocated,
    error_server_held_then_replaced,
    allocation_under_contention,
    defaults_stored,
    invalid_fleet_reported,
    autoscaler_follows_allocation,
    owner_references_and_orphans,
    reserve_allocated_and_reserve_expiry,
);

//! Wires the kube runtime together: CRD check, metrics server, leader election, watch caches,
//! the port allocator rebuilt from the cluster, and one kube-runtime `Controller` per kind.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt, future};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::runtime::reflector::Store;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use stadion_crds::allocation_ttl::AllocationTtl;
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet, labels};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::allocation_api::{self, AllocationApiConfig};
use super::allocator::KubeAllocator;
use super::caches::{trim_node, trim_object, watched};
use super::context::{Context, KubeStores};
use super::dashboard::{DashboardConfig, KubeDashboardSource};
use super::events::EventPublisher;
use super::lease::{LeaderElection, Leadership};
use super::metrics::{self, Metrics, Readiness};
use super::pod::PodConfig;
use super::recorder::KubeRecorder;
use super::store::KubeStore;
use super::watched_pod::{self, WatchedPod};
use super::{Result, discovery, fleet, fleetautoscaler, gameserver, gameserverset, overlay, throttle};
use stadion_core::gameserver::GameServerDefaults;
use stadion_core::ports::{PortAllocator, PortRanges};

use crate::executor::WebhookClient;

/// Everything `stadion controller` can be told.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Image of the injected SDK sidecar.
    pub sidecar_image: String,
    /// ServiceAccount game-server Pods run as when their template names none.
    pub sdk_service_account: String,
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub metrics_addr: SocketAddr,
    /// Compete for the Lease (several replicas) instead of always writing (one replica).
    pub leader_election: bool,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// This replica's name in the Lease (the Pod name).
    pub identity: String,
    /// Only watch this namespace (all namespaces when unset).
    pub namespace: Option<String>,
    /// Host-port ranges (`default` is 7000–8000 unless overridden).
    pub port_ranges: PortRanges,
    /// Allocation TTL of servers without a `stadion.dev/allocation-ttl` annotation (default off).
    pub allocation_ttl: AllocationTtl,
    /// The `allocation.agones.dev/v1` aggregated API (served on every replica), or none.
    pub allocation_api: Option<AllocationApiConfig>,
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Rebuilds host-port book-keeping from every GameServer and Node, so a restarted controller
/// never hands out a port a running server holds.
async fn rebuild_ports(client: &Client, config: &ControllerConfig) -> Result<PortAllocator> {
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await?;
    let servers = scoped::<GameServer>(client, config.namespace.as_deref()).list(&ListParams::default()).await?;
    let node_names = nodes.items.iter().filter_map(|n| n.metadata.name.clone());
    let (allocator, problems) = PortAllocator::rebuild(config.port_ranges.clone(), node_names, &servers.items);
    for (gameserver, error) in problems {
        warn!(%gameserver, %error, "existing GameServer's host ports collide; left as is");
    }
    info!(gameservers = servers.items.len(), nodes = nodes.items.len(), "host-port allocator rebuilt");
    Ok(allocator)
}

/// How many reconciles of one controller run at once. Unbounded, a fleet of 1,000 starting up
/// had hundreds in flight, each holding its own connection to the API server (TLS state and
/// buffers, about 100 KiB apiece, kept in the pool afterwards): most of the controller's memory,
/// for no gain, since the API server's write rate, not the number of requests waiting on it,
/// bounds how fast servers get written. The rest wait in the controller's queue (one entry per
/// object, however many times it was triggered).
const RECONCILES_IN_FLIGHT: u16 = 32;

/// The GameServer and autoscaler controllers read other kinds from caches fed by separate
/// watches, which may trail the event that triggered them by a few milliseconds; a short
/// debounce lets them catch up (and folds bursts of events on one object into one reconcile).
/// Nothing changes such an object nonstop, so the debounce never starves it.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// A set is woken by each of its servers and a fleet by each of its sets, nonstop while they
/// start; a trailing debounce would hold them back until a quiet gap. Their triggers are
/// throttled instead ([`throttle`]), so they run no debounce of their own.
const NO_DEBOUNCE: Duration = Duration::ZERO;

fn controller_config(debounce: Duration) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().debounce(debounce).concurrency(RECONCILES_IN_FLIGHT)
}

/// `objects` throttled per object ([`throttle::PERIOD`]).
fn throttled_own<K: Resource + Send + Sync + 'static>(
    objects: impl futures::Stream<Item = Arc<K>> + Send + 'static,
) -> impl futures::Stream<Item = Arc<K>> + Send + 'static {
    throttle::throttle(objects, throttle::PERIOD, |obj: &Arc<K>| Some(overlay::key_of(&**obj)))
}

/// `children` throttled per controlling owner ([`throttle::PERIOD`]): however many of a set's
/// servers change, the set is woken at most once per period.
fn throttled_by_owner<K: Resource + Send + Sync + 'static>(
    children: impl futures::Stream<Item = Arc<K>> + Send + 'static,
) -> impl futures::Stream<Item = Arc<K>> + Send + 'static {
    throttle::throttle(children, throttle::PERIOD, |child: &Arc<K>| {
        let meta = child.meta();
        let owner = meta.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true))?;
        Some(stadion_core::object_key(meta.namespace.as_deref().unwrap_or("default"), &owner.name))
    })
}

/// Runs one kube-runtime controller (its config set by the caller) the way all four run: every object reconciled
/// again when this replica becomes the leader, stopping when `stopped` resolves.
///
/// kube-runtime holds a controller's reconciles until its cache has been filled once, and a
/// graceful shutdown waits for them; stopped before the cache was ever filled (say, right after
/// start, or with the API server unreachable), it would wait forever. Nothing has been
/// reconciled then, so there is nothing to finish: it stops at once.
fn drive<K, E, Fut, Stop>(
    controller: Controller<K>,
    reconcile: impl FnMut(Arc<K>, Arc<Context>) -> Fut,
    error_policy: impl Fn(Arc<K>, &E, Arc<Context>) -> kube::runtime::controller::Action,
    ctx: &Arc<Context>,
    leadership: &Leadership,
    stopped: impl Fn() -> Stop,
) -> impl Future<Output = ()>
where
    K: Clone + Resource<DynamicType = ()> + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    E: std::error::Error + Send + 'static,
    Fut: futures::TryFuture<Ok = kube::runtime::controller::Action, Error = E> + Send + 'static,
    Stop: Future<Output = ()> + Send + Sync + 'static,
{
    let cache = controller.store();
    let stopped_unfilled = stopped().then(move |()| async move {
        if let Some(Ok(())) = cache.wait_until_ready().now_or_never() {
            // Filled: the graceful shutdown below lets the reconciles under way finish.
            future::pending::<()>().await;
        }
    });
    controller
        .reconcile_all_on(on_leadership(leadership))
        .graceful_shutdown_on(stopped())
        .run(reconcile, error_policy, ctx.clone())
        .take_until(stopped_unfilled)
        .for_each(|_| future::ready(()))
}

/// A stream that yields whenever this replica becomes the leader, so every object is
/// reconciled by the new leader (a follower's reconciles wrote nothing).
fn on_leadership(leadership: &Leadership) -> impl futures::Stream<Item = ()> + Send + 'static {
    tokio_stream::wrappers::WatchStream::new(leadership.subscribe())
        .filter_map(|leading| future::ready(leading.then_some(())))
}

/// Connects with the ambient configuration (KUBECONFIG, or the in-cluster ServiceAccount) and
/// runs the controller (and the dashboard, when configured) until `shutdown` resolves.
pub async fn run_with_default_client(
    config: ControllerConfig,
    dashboard: Option<DashboardConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let client = super::connect::client(None).await?;
    run_with_dashboard(client, config, dashboard, shutdown).await
}

/// Runs the controller until `shutdown` resolves. Fails fast when the CRDs are missing.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_with_dashboard(client, config, None, shutdown).await
}

/// [`run`], also serving the read-only web dashboard when `dashboard` is given.
pub async fn run_with_dashboard(
    client: Client,
    config: ControllerConfig,
    dashboard: Option<DashboardConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    discovery::ensure_crds_installed(&client).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    tokio::spawn(shutdown.map(move |()| {
        info!("shutting down");
        let _ = stop_tx.send(true);
    }));

    let metrics = Arc::new(Metrics::controller());
    let readiness = Readiness::default();
    let listener = metrics::bind(config.metrics_addr).await?;
    info!(addr = %config.metrics_addr, "metrics and health listening");
    let http = tokio::spawn(metrics::serve_on(listener, metrics.clone(), readiness.clone(), stopped()));

    let leadership = if config.leader_election {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &config.lease_namespace);
        let (election, leadership) = LeaderElection::new(leases, config.identity.clone());
        tokio::spawn(election.run(stopped()));
        leadership
    } else {
        Leadership::always()
    };
    let gauge = metrics.clone();
    let mut leading = leadership.subscribe();
    tokio::spawn(async move {
        loop {
            gauge.leader.set(i64::from(*leading.borrow_and_update()));
            if leading.changed().await.is_err() {
                return;
            }
        }
    });

    let ns = config.namespace.as_deref();
    let pod_selector = format!("{}={}", labels::ROLE, labels::ROLE_GAMESERVER);
    let all = watcher::Config::default;
    // One watch per kind; the controllers a kind triggers share its cache's change stream.
    let (nodes, [], nodes_task) = watched(Api::<Node>::all(client.clone()), all(), trim_node, stopped());
    let (pods, [pods_changed], pods_task) =
        watched(scoped::<WatchedPod>(&client, ns), all().labels(&pod_selector), watched_pod::trim, stopped());
    tokio::spawn(nodes_task);
    tokio::spawn(pods_task);

    let ports = rebuild_ports(&client, &config).await?;
    let (gs_store, [gs_changed, gs_owned], gs_task) = watched(scoped(&client, ns), all(), trim_object, stopped());
    let (set_store, [sets_changed, sets_owned], sets_task) =
        watched(scoped(&client, ns), all(), trim_object, stopped());
    let (fleet_store, [fleets_changed], fleets_task) = watched(scoped(&client, ns), all(), trim_object, stopped());
    let (autoscaler_store, [autoscalers_changed], autoscalers_task) =
        watched(scoped(&client, ns), all(), trim_object, stopped());
    for task in [gs_task.boxed(), sets_task.boxed(), fleets_task.boxed(), autoscalers_task.boxed()] {
        tokio::spawn(task);
    }
    let gs_controller = Controller::<GameServer>::for_shared_stream(gs_changed, gs_store.clone())
        .owns_shared_stream(pods_changed)
        .with_config(controller_config(DEBOUNCE));
    let set_controller = Controller::<GameServerSet>::for_shared_stream(throttled_own(sets_changed), set_store.clone())
        .owns_shared_stream(throttled_by_owner(gs_owned))
        .with_config(controller_config(NO_DEBOUNCE));
    let fleet_controller = Controller::<Fleet>::for_shared_stream(throttled_own(fleets_changed), fleet_store.clone())
        .owns_shared_stream(throttled_by_owner(sets_owned))
        .with_config(controller_config(NO_DEBOUNCE));
    let autoscaler_controller =
        Controller::<FleetAutoscaler>::for_shared_stream(autoscalers_changed, autoscaler_store.clone())
            .with_config(controller_config(DEBOUNCE));
    if let Some(dashboard) = dashboard {
        let listener = super::dashboard::bind(dashboard.address).await.map_err(|source| super::Error::Io {
            what: format!("binding the dashboard to {}", dashboard.address),
            source,
        })?;
        info!(addr = %dashboard.address, "dashboard listening");
        let source = KubeDashboardSource {
            client: client.clone(),
            gameservers: gs_store.clone(),
            sets: set_store.clone(),
            fleets: fleet_store.clone(),
            autoscalers: autoscaler_store.clone(),
        };
        tokio::spawn(super::dashboard::serve(listener, source, dashboard.tokens, stopped()));
    }
    let events = EventPublisher::new(client.clone(), Some(config.identity.clone()));
    let stores = KubeStores {
        gameservers: KubeStore::new(client.clone(), gs_store.clone()),
        sets: KubeStore::new(client.clone(), set_store.clone()),
        fleets: KubeStore::new(client.clone(), fleet_store.clone()),
        autoscalers: KubeStore::new(client.clone(), autoscaler_store.clone()),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: KubeRecorder::new(events.clone(), metrics.clone()),
        events,
        metrics: metrics.clone(),
        leadership: leadership.clone(),
        pod_config: PodConfig {
            sidecar_image: config.sidecar_image.clone(),
            service_account: config.sdk_service_account.clone(),
        },
        ports: Mutex::new(ports),
        nodes: nodes.clone(),
        pods: pods.clone(),
        gameservers: gs_store.clone(),
        stores,
        webhooks: WebhookClient::new(),
        gameserver_defaults: GameServerDefaults { allocation_ttl: config.allocation_ttl },
    });

    // Not leader-gated: every allocation is a guarded write, so any replica may answer.
    if let Some(api) = &config.allocation_api {
        let (capacity, _) = watch::channel(0);
        let allocator = KubeAllocator::new(client.clone(), ctx.gameservers.clone(), capacity)
            .with_metrics(metrics.clone())
            .with_recorder(Arc::new(ctx.recorder.clone()));
        // An add-on must not take the fleets down with it: if it cannot start (no front-proxy
        // CA readable, port taken), the controller runs without it and says why, loudly.
        match allocation_api::start(api, &client, allocator, stopped()).await {
            Ok(serving) => {
                tokio::spawn(serving);
            }
            Err(error) => tracing::error!(
                %error,
                "the GameServerAllocation API (allocation.agones.dev/v1) is not served; the controller runs without it"
            ),
        }
    }

    let gameservers =
        drive(gs_controller, gameserver::reconcile, gameserver::error_policy, &ctx, &leadership, &stopped);
    let sets =
        drive(set_controller, gameserverset::reconcile, gameserverset::error_policy, &ctx, &leadership, &stopped);
    let fleets = drive(fleet_controller, fleet::reconcile, fleet::error_policy, &ctx, &leadership, &stopped);
    let autoscalers = drive(
        autoscaler_controller,
        fleetautoscaler::reconcile,
        fleetautoscaler::error_policy,
        &ctx,
        &leadership,
        &stopped,
    );

    // Ready once the caches reconciles read from are filled.
    let ready_flag = readiness.clone();
    let (gs_store, pods_ready, nodes_ready) = (ctx.gameservers.clone(), pods.clone(), nodes.clone());
    tokio::spawn(async move {
        let synced = futures::try_join!(
            gs_store.wait_until_ready(),
            pods_ready.wait_until_ready(),
            nodes_ready.wait_until_ready()
        );
        if synced.is_ok() {
            info!("caches synced; ready");
            ready_flag.set(true);
        }
    });
    let caches = GaugeCaches { fleets: fleet_store, sets: set_store, autoscalers: autoscaler_store };
    tokio::spawn(observe_gauges(ctx.clone(), caches, stopped()));

    info!(leader_election = config.leader_election, namespace = ?config.namespace, "controllers starting");
    futures::join!(gameservers, sets, fleets, autoscalers);
    readiness.set(false);
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => error!(error = %e, "metrics server failed"),
        Err(e) => error!(error = %e, "metrics server task failed"),
    }
    info!("controllers stopped");
    Ok(())
}

/// The caches the gauges are computed from, beside the context's.
struct GaugeCaches {
    fleets: Store<Fleet>,
    sets: Store<GameServerSet>,
    autoscalers: Store<FleetAutoscaler>,
}

/// Whether `node` is one Agones leaves out of its node metrics: a system node, tainted
/// `agones.dev/…`, where no game server runs.
fn is_system_node(node: &Node) -> bool {
    node.spec.iter().flat_map(|s| s.taints.iter().flatten()).any(|t| t.key.starts_with("agones.dev/"))
}

/// Recomputes the fleet-describing gauges from the caches every few seconds.
async fn observe_gauges(ctx: Arc<Context>, caches: GaugeCaches, stopped: impl Future<Output = ()>) {
    tokio::pin!(stopped);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = &mut stopped => return,
            _ = tick.tick() => {
                let servers = ctx.gameservers.state();
                ctx.metrics.observe_gameservers(servers.iter().map(AsRef::as_ref));
                let sets = caches.sets.state();
                ctx.metrics.observe_fleets(caches.fleets.state().iter().map(AsRef::as_ref), sets.iter().map(AsRef::as_ref));
                ctx.metrics.observe_autoscalers(caches.autoscalers.state().iter().map(AsRef::as_ref));
                let nodes = ctx.nodes.state();
                let names = nodes.iter().filter(|n| !is_system_node(n)).filter_map(|n| n.metadata.name.as_deref());
                ctx.metrics.observe_nodes(names, servers.iter().map(AsRef::as_ref), true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::Error;
    use crate::kube::fixtures::{ApiServer, Expect};

    #[tokio::test]
    async fn refuses_to_start_without_the_crds() {
        let (client, server) = ApiServer::start();
        let script = server.run(vec![
            Expect::get("/apis/agones.dev/v1").respond_status(404),
            Expect::get("/apis/autoscaling.agones.dev/v1").respond_status(404),
        ]);
        let config = ControllerConfig {
            sidecar_image: "stadion:test".into(),
            sdk_service_account: "stadion-sdk".into(),
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            leader_election: true,
            lease_namespace: "stadion-system".into(),
            identity: "test".into(),
            namespace: None,
            port_ranges: PortRanges::default(),
            allocation_ttl: AllocationTtl::OFF,
            allocation_api: None,
        };
        let error = run(client, config, future::pending()).await.unwrap_err();
        assert!(matches!(error, Error::CrdsMissing { ref missing } if missing.len() == 4), "{error}");
        // Nothing else was attempted: no Lease, no watches.
        script.await.unwrap().expect_quiet(Duration::from_millis(100)).await;
    }
}

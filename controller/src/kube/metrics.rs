//! Prometheus metrics (Agones names where Agones has the metric) and the `/metrics`,
//! `/healthz`, `/readyz` HTTP server every replica runs, leader or not.
//!
//! Gauges that describe the fleet (`agones_gameservers_count`, `agones_fleets_replicas_count`,
//! …) are recomputed from the watch caches by [`Metrics::observe_gameservers`] and friends, so
//! they are right on every replica and cannot drift through missed increments.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use stadion_crds::labels;
use stadion_crds::{Fleet, FleetAutoscaler, GameServer};
use stadion_sdk::http_server::HttpServer;

use super::{Error, Result};

/// Labels of the per-state GameServer metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GameServerLabels {
    /// The state (Agones calls the label `type`).
    pub r#type: String,
    /// The owning fleet, empty for a lone server.
    pub fleet_name: String,
    /// The namespace.
    pub namespace: String,
}

/// Labels of the per-fleet replica gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FleetLabels {
    /// Fleet name.
    pub name: String,
    /// total, allocated, ready, desired or reserved.
    pub r#type: String,
    /// The namespace.
    pub namespace: String,
}

/// Labels of the autoscaler gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AutoscalerLabels {
    /// Autoscaler name.
    pub name: String,
    /// The fleet it scales.
    pub fleet_name: String,
    /// The namespace.
    pub namespace: String,
}

/// Labels of the allocation histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AllocationLabels {
    /// Fleet of the allocated server (empty when none was).
    pub fleet_name: String,
    /// Allocated, UnAllocated, Contention or Error.
    pub status: String,
}

/// Labels of the reconcile metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// Which controller: gameserver, gameserverset, fleet, fleetautoscaler.
    pub controller: String,
}

/// Labels of the reconcile error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileErrorLabels {
    /// Which controller.
    pub controller: String,
    /// The error's [`Error::kind`].
    pub error: String,
}

fn allocation_histogram() -> Histogram {
    // 1 ms .. ~16 s: an allocation is one cache read and one write.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// Every metric the kube runtime exports.
pub struct Metrics {
    registry: Registry,
    /// `agones_gameservers_count`: servers by state, fleet and namespace.
    pub gameservers_count: Family<GameServerLabels, Gauge>,
    /// `agones_gameservers_total`: state changes the controller has written.
    pub gameservers_total: Family<GameServerLabels, Counter>,
    /// `agones_fleets_replicas_count`: fleet replicas by type.
    pub fleets_replicas_count: Family<FleetLabels, Gauge>,
    /// `agones_fleet_autoscalers_desired_replicas_count`.
    pub autoscaler_desired: Family<AutoscalerLabels, Gauge>,
    /// `agones_fleet_autoscalers_current_replicas_count`.
    pub autoscaler_current: Family<AutoscalerLabels, Gauge>,
    /// `agones_fleet_autoscalers_able_to_scale` (0/1).
    pub autoscaler_able_to_scale: Family<AutoscalerLabels, Gauge>,
    /// `agones_fleet_autoscalers_limited` (0/1).
    pub autoscaler_limited: Family<AutoscalerLabels, Gauge>,
    /// `agones_gameserver_allocations_duration_seconds`.
    pub allocations_duration: Family<AllocationLabels, Histogram, fn() -> Histogram>,
    /// `stadion_reconcile_total`.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// `stadion_reconcile_errors_total`.
    pub reconcile_errors: Family<ReconcileErrorLabels, Counter>,
    /// `stadion_reconcile_duration_seconds`.
    pub reconcile_duration: Family<ReconcileLabels, Histogram, fn() -> Histogram>,
    /// `stadion_leader`: 1 on the replica holding the Lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            gameservers_count: Family::default(),
            gameservers_total: Family::default(),
            fleets_replicas_count: Family::default(),
            autoscaler_desired: Family::default(),
            autoscaler_current: Family::default(),
            autoscaler_able_to_scale: Family::default(),
            autoscaler_limited: Family::default(),
            allocations_duration: Family::new_with_constructor(allocation_histogram),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram),
            leader: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("agones_gameservers_count", "GameServers by state", m.gameservers_count.clone());
        // prometheus-client appends `_total` to counters.
        registry.register("agones_gameservers", "GameServer state changes", m.gameservers_total.clone());
        registry.register("agones_fleets_replicas_count", "Fleet replicas by type", m.fleets_replicas_count.clone());
        registry.register(
            "agones_fleet_autoscalers_desired_replicas_count",
            "Replicas the autoscaler wants",
            m.autoscaler_desired.clone(),
        );
        registry.register(
            "agones_fleet_autoscalers_current_replicas_count",
            "Replicas the fleet had at the autoscaler's last run",
            m.autoscaler_current.clone(),
        );
        registry.register(
            "agones_fleet_autoscalers_able_to_scale",
            "Whether the autoscaler can scale its fleet",
            m.autoscaler_able_to_scale.clone(),
        );
        registry.register(
            "agones_fleet_autoscalers_limited",
            "Whether the desired replicas were clamped by min/max",
            m.autoscaler_limited.clone(),
        );
        registry.register(
            "agones_gameserver_allocations_duration_seconds",
            "Time to allocate a GameServer",
            m.allocations_duration.clone(),
        );
        registry.register("stadion_reconcile", "Reconciles run", m.reconciles.clone());
        registry.register("stadion_reconcile_errors", "Reconciles that failed", m.reconcile_errors.clone());
        registry.register("stadion_reconcile_duration_seconds", "Reconcile time", m.reconcile_duration.clone());
        registry.register("stadion_leader", "1 on the replica holding the controller Lease", m.leader.clone());
        Self { registry, ..m }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Recomputes `agones_gameservers_count` from every GameServer in the cache.
    pub fn observe_gameservers<'a>(&self, servers: impl IntoIterator<Item = &'a GameServer>) {
        self.gameservers_count.clear();
        for gs in servers {
            let Some(state) = gs.state() else { continue };
            self.gameservers_count.get_or_create(&gameserver_labels(gs, state.as_str())).inc();
        }
    }

    /// Counts one state change written for `gs` (to `state`).
    pub fn count_transition(&self, gs: &GameServer, state: stadion_crds::GameServerState) {
        self.gameservers_total.get_or_create(&gameserver_labels(gs, state.as_str())).inc();
    }

    /// Recomputes `agones_fleets_replicas_count` from every Fleet in the cache.
    pub fn observe_fleets<'a>(&self, fleets: impl IntoIterator<Item = &'a Fleet>) {
        self.fleets_replicas_count.clear();
        for fleet in fleets {
            let status = fleet.status.clone().unwrap_or_default();
            for (kind, value) in [
                ("total", status.replicas),
                ("allocated", status.allocated_replicas),
                ("ready", status.ready_replicas),
                ("reserved", status.reserved_replicas),
                ("desired", fleet.spec.replicas),
            ] {
                let labels = FleetLabels {
                    name: fleet.name().to_owned(),
                    r#type: kind.to_owned(),
                    namespace: fleet.namespace().to_owned(),
                };
                self.fleets_replicas_count.get_or_create(&labels).set(i64::from(value));
            }
        }
    }

    /// Recomputes the autoscaler gauges from every FleetAutoscaler in the cache.
    pub fn observe_autoscalers<'a>(&self, autoscalers: impl IntoIterator<Item = &'a FleetAutoscaler>) {
        for family in [
            &self.autoscaler_desired,
            &self.autoscaler_current,
            &self.autoscaler_able_to_scale,
            &self.autoscaler_limited,
        ] {
            family.clear();
        }
        for fas in autoscalers {
            let labels = AutoscalerLabels {
                name: fas.name().to_owned(),
                fleet_name: fas.spec.fleet_name.clone(),
                namespace: fas.namespace().to_owned(),
            };
            let status = fas.status.clone().unwrap_or_default();
            self.autoscaler_desired.get_or_create(&labels).set(i64::from(status.desired_replicas));
            self.autoscaler_current.get_or_create(&labels).set(i64::from(status.current_replicas));
            self.autoscaler_able_to_scale.get_or_create(&labels).set(i64::from(status.able_to_scale));
            self.autoscaler_limited.get_or_create(&labels).set(i64::from(status.scaling_limited));
        }
    }

    /// Records one allocation attempt that took `elapsed`.
    pub fn observe_allocation(&self, fleet_name: &str, status: &str, elapsed: Duration) {
        let labels = AllocationLabels { fleet_name: fleet_name.to_owned(), status: status.to_owned() };
        self.allocations_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// Records one reconcile of `controller` that took `elapsed` and ended with `error`.
    pub fn observe_reconcile(&self, controller: &str, elapsed: Duration, error: Option<&Error>) {
        let labels = ReconcileLabels { controller: controller.to_owned() };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
        if let Some(error) = error {
            let labels = ReconcileErrorLabels { controller: controller.to_owned(), error: error.kind().to_owned() };
            self.reconcile_errors.get_or_create(&labels).inc();
        }
    }
}

fn gameserver_labels(gs: &GameServer, state: &str) -> GameServerLabels {
    let fleet = gs.metadata.labels.as_ref().and_then(|l| l.get(labels::FLEET)).cloned().unwrap_or_default();
    GameServerLabels { r#type: state.to_owned(), fleet_name: fleet, namespace: gs.namespace().to_owned() }
}

/// Whether this process is ready to serve: set once the caches have synced.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the process ready (or not).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

/// The `/metrics`, `/healthz` and `/readyz` routes.
pub fn router(metrics: Arc<Metrics>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        // Liveness: the process answers, so its runtime is not wedged.
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(serve_readyz))
        .with_state(HttpState { metrics, readiness })
}

async fn serve_metrics(State(state): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}

async fn serve_readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet")
    }
}

/// Binds `addr` and serves [`router`] until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = bind(addr).await?;
    serve_on(listener, metrics, readiness, shutdown).await
}

/// Binds the metrics listener (split from [`serve_on`] so callers learn the port of `:0`).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Io { what: format!("binding the metrics server to {addr}"), source })
}

/// Serves [`router`] on `listener` until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    HttpServer::new("metrics", crate::http_refusal).serve(listener, router(metrics, readiness), shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stadion_crds::fleet::{FleetSpec, FleetStatus};
    use stadion_crds::gameserver::{GameServerSpec, GameServerStatus};
    use stadion_crds::{GameServerState, labels};

    fn server(name: &str, fleet: Option<&str>, state: GameServerState) -> GameServer {
        let mut gs = GameServer::new(name, GameServerSpec::default());
        if let Some(fleet) = fleet {
            gs.metadata.labels = Some([(labels::FLEET.to_owned(), fleet.to_owned())].into());
        }
        gs.status = Some(GameServerStatus { state: Some(state), ..GameServerStatus::default() });
        gs
    }

    #[test]
    fn gameserver_counts_use_agones_names_and_recompute() {
        let metrics = Metrics::new();
        let servers = [
            server("a", Some("f"), GameServerState::Ready),
            server("b", Some("f"), GameServerState::Ready),
            server("c", None, GameServerState::Allocated),
        ];
        metrics.observe_gameservers(&servers);
        let text = metrics.encode();
        assert!(
            text.contains(r#"agones_gameservers_count{type="Ready",fleet_name="f",namespace="default"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"agones_gameservers_count{type="Allocated",fleet_name="",namespace="default"} 1"#));
        metrics.observe_gameservers(&servers[..1]);
        let text = metrics.encode();
        assert!(text.contains(r#"type="Ready",fleet_name="f",namespace="default"} 1"#), "{text}");
        assert!(!text.contains(r#"type="Allocated""#), "stale series are dropped: {text}");
    }

    #[test]
    fn fleet_replicas_by_type() {
        let metrics = Metrics::new();
        let mut fleet = Fleet::new("f", FleetSpec { replicas: 3, ..FleetSpec::default() });
        fleet.status =
            Some(FleetStatus { replicas: 3, ready_replicas: 2, allocated_replicas: 1, ..Default::default() });
        metrics.observe_fleets([&fleet]);
        let text = metrics.encode();
        assert!(text.contains(r#"agones_fleets_replicas_count{name="f",type="desired",namespace="default"} 3"#));
        assert!(text.contains(r#"agones_fleets_replicas_count{name="f",type="allocated",namespace="default"} 1"#));
    }

    #[tokio::test]
    async fn http_endpoints() {
        let metrics = Arc::new(Metrics::new());
        metrics.observe_allocation("f", "Allocated", Duration::from_millis(3));
        let readiness = Readiness::default();
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(listener, metrics, readiness.clone(), async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::new();
        assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
        assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 503);
        readiness.set(true);
        assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
        let body = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(
            body.contains(
                "agones_gameserver_allocations_duration_seconds_count{fleet_name=\"f\",status=\"Allocated\"} 1"
            )
        );
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}

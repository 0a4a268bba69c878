//! Agones' metrics in `stadion up`: `GET /metrics` on the admin address, with the same families
//! and labels as the kube controller ([`crate::metrics`]).
//!
//! The gauges are recomputed from the store at every scrape (the store hands out shared handles,
//! so this copies nothing). State changes come from a watch of the GameServers, as Agones'
//! informer handler sees them; allocations are timed by the [`super::LocalAllocator`]; the node
//! gauge is recomputed every second and the node histogram sampled every
//! [`NODE_SAMPLE_PERIOD`], as Agones' collector does.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};
use tokio::sync::watch;

use super::store::{Selector, Store, WatchEvent};
use crate::metrics::{CONTENT_TYPE, Metrics};

/// How often `agones_gameservers_node_count` gets one sample per node (Agones' resync period).
pub const NODE_SAMPLE_PERIOD: Duration = Duration::from_secs(15);

/// How often `agones_nodes_count` is recomputed (the node is not in the store, so it is not
/// recomputed at scrape time).
const NODE_COUNT_PERIOD: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct MetricsState {
    store: Store,
    metrics: Arc<Metrics>,
}

/// The `GET /metrics` route over `store`, exporting into `metrics`.
pub fn router(store: Store, metrics: Arc<Metrics>) -> Router {
    Router::new().route("/metrics", get(serve)).with_state(MetricsState { store, metrics })
}

async fn serve(State(state): State<MetricsState>) -> impl IntoResponse {
    refresh(&state.store, &state.metrics);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], state.metrics.encode())
}

/// Recomputes every gauge from what `store` holds now.
pub fn refresh(store: &Store, metrics: &Metrics) {
    let everything = Selector::everything();
    let servers = store.api::<GameServer>().list(None, &everything);
    metrics.observe_gameservers(servers.iter().map(AsRef::as_ref));
    let fleets = store.api::<Fleet>().list(None, &everything);
    let sets = store.api::<GameServerSet>().list(None, &everything);
    metrics.observe_fleets(fleets.iter().map(AsRef::as_ref), sets.iter().map(AsRef::as_ref));
    metrics.observe_autoscalers(store.api::<FleetAutoscaler>().list(None, &everything).iter().map(AsRef::as_ref));
}

/// Feeds `metrics` until `stop` turns true: every GameServer state change, and a node sample
/// of the local `node` every [`NODE_SAMPLE_PERIOD`].
pub async fn run(store: Store, metrics: Arc<Metrics>, node: String, mut stop: watch::Receiver<bool>) {
    let mut watch = store.api::<GameServer>().watch();
    for gs in &watch.initial {
        metrics.observe_state(gs);
    }
    let mut count = tokio::time::interval(NODE_COUNT_PERIOD);
    let mut sampled = None::<tokio::time::Instant>;
    loop {
        tokio::select! {
            changed = stop.wait_for(|stop| *stop) => {
                let _ = changed;
                return;
            }
            event = watch.events.recv() => match event {
                Some(WatchEvent::Added(gs) | WatchEvent::Modified(gs)) => {
                    metrics.observe_state(&gs);
                }
                Some(WatchEvent::Deleted(gs)) => metrics.forget_gameserver(gs.namespace(), gs.name()),
                None => return,
            },
            now = count.tick() => {
                let sample = sampled.is_none_or(|at| now.duration_since(at) >= NODE_SAMPLE_PERIOD);
                if sample {
                    sampled = Some(now);
                }
                let servers = store.api::<GameServer>().list(None, &Selector::everything());
                metrics.observe_nodes([node.as_str()], servers.iter().map(AsRef::as_ref), sample);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stadion_crds::gameserver::{GameServerSpec, GameServerStatus};
    use stadion_crds::{GameServerState, labels};

    fn server(name: &str, state: GameServerState) -> GameServer {
        let mut gs = GameServer::new(name, GameServerSpec::default());
        gs.metadata.labels = Some([(labels::FLEET.to_owned(), "f".to_owned())].into());
        gs.status = Some(GameServerStatus { state: Some(state), node_name: "local".into(), ..Default::default() });
        gs
    }

    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        for _ in 0..200 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn the_watch_counts_state_changes_and_samples_the_node() {
        let store = Store::new();
        let metrics = Arc::new(Metrics::new());
        store.api::<GameServer>().create(server("gs-1", GameServerState::Scheduled)).unwrap();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(store.clone(), metrics.clone(), "local".into(), stopped));
        until("the node sample", || metrics.encode().contains("agones_nodes_count{empty=\"false\"} 1")).await;
        let mut gs = (*store.api::<GameServer>().get("default", "gs-1").unwrap()).clone();
        gs.status.as_mut().unwrap().state = Some(GameServerState::Ready);
        store.api::<GameServer>().update(gs).unwrap();
        let total = r#"agones_gameservers_total{fleet_name="f",namespace="default",type="Ready"} 1"#;
        until("the Ready transition", || metrics.encode().contains(total)).await;
        let text = metrics.encode();
        let left = r#"agones_gameserver_state_duration_count{fleet_name="f",namespace="default",type="Scheduled"} 1"#;
        assert!(text.contains(left), "{text}");
        // The first sight of a server is no change.
        assert!(!text.contains(r#"agones_gameservers_total{fleet_name="f",namespace="default",type="Scheduled"}"#));
        assert!(text.contains("agones_gameservers_node_count_count 1"), "{text}");
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[test]
    fn refresh_reads_the_store() {
        let store = Store::new();
        let metrics = Metrics::new();
        store.api::<GameServer>().create(server("gs-1", GameServerState::Ready)).unwrap();
        refresh(&store, &metrics);
        let text = metrics.encode();
        assert!(
            text.contains(r#"agones_gameservers_count{fleet_name="f",namespace="default",type="Ready"} 1"#),
            "{text}"
        );
    }
}

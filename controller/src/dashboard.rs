//! The web dashboard: fleets, game servers and the matchmaker, live in a browser.
//!
//! One page (HTML, JS and CSS embedded in the binary: no Node, no CDN, works offline) over three
//! routes: `GET /api/dashboard/events` (Server-Sent Events: a `snapshot`, then `delta`s, at most
//! four frames a second, see [`sse`]), `GET /api/dashboard/snapshot` (the same picture once) and
//! `GET /api/dashboard/gameservers/{namespace}/{name}` (a server's recent Events and, locally,
//! the tail of its output). `stadion up` serves it on the admin address; the kube controller
//! on `--dashboard-address`, read-only and behind bearer tokens ([`auth`]). Each runtime
//! supplies its objects through [`DashboardSource`]; the matchmaker panel comes from a
//! [`MatchmakerFeed`].

pub mod auth;
pub mod matchmaker;
pub mod snapshot;
mod sse;

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

pub use matchmaker::{MatchmakerFeed, MatchmakerSummary};
pub use snapshot::Objects;
pub use sse::FRAME_PERIOD;

/// The page.
pub const INDEX_HTML: &str = include_str!("dashboard/assets/index.html");
/// Its script.
pub const APP_JS: &str = include_str!("dashboard/assets/app.js");
/// Its style sheet.
pub const STYLE_CSS: &str = include_str!("dashboard/assets/style.css");

/// Where a dashboard reads what it shows.
#[async_trait]
pub trait DashboardSource: Send + Sync + 'static {
    /// Every object now (shared handles: cheap to take often).
    fn objects(&self) -> Objects;
    /// One server's recent Events and output tail.
    async fn details(&self, namespace: &str, name: &str) -> ServerDetails;
}

/// What an expanded server row shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerDetails {
    /// Its recent Events, oldest first.
    pub events: Vec<EventLine>,
    /// The last lines of its output, oldest first; `None` where the runtime cannot see it (a
    /// cluster: use `kubectl logs`).
    pub output: Option<Vec<String>>,
}

/// One Event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventLine {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub note: String,
    /// When (RFC 3339).
    pub time: String,
}

/// A dashboard over one source: cheap to clone, every clone shares the live feed.
#[derive(Clone)]
pub struct Dashboard {
    hub: Arc<sse::Hub>,
    source: Arc<dyn DashboardSource>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard of `source`, with the matchmaker panel when `matchmaker` is given.
    pub fn new(source: Arc<dyn DashboardSource>, matchmaker: Option<Arc<dyn MatchmakerFeed>>) -> Self {
        Self { hub: Arc::new(sse::Hub::new(source.clone(), matchmaker)), source }
    }

    /// The full picture as `GET /api/dashboard/snapshot` answers it.
    pub fn snapshot_json(&self) -> String {
        self.hub.snapshot().1
    }

    /// Ends every live stream, so a server stopping does not wait for open browser tabs.
    pub fn close(&self) {
        self.hub.close();
    }

    /// The page, its assets and the data routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
            .route("/dashboard/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
            .route("/dashboard/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
            .route("/api/dashboard/snapshot", get(snapshot))
            .route("/api/dashboard/events", get(events))
            .route("/api/dashboard/gameservers/{namespace}/{name}", get(details))
            .with_state(self.clone())
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn snapshot(State(dashboard): State<Dashboard>) -> Response {
    let json = tokio::task::spawn_blocking(move || dashboard.snapshot_json()).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

async fn events(State(dashboard): State<Dashboard>) -> Response {
    let hub = dashboard.hub.clone();
    // The first picture reads every object: off the reactor.
    match tokio::task::spawn_blocking(move || hub.stream()).await {
        Ok(stream) => ([(header::CACHE_CONTROL, "no-cache")], stream).into_response(),
        Err(_) => crate::http_refusal(axum::http::StatusCode::SERVICE_UNAVAILABLE, "dashboard stopping".into()),
    }
}

async fn details(State(dashboard): State<Dashboard>, Path((namespace, name)): Path<(String, String)>) -> Response {
    Json(dashboard.source.details(&namespace, &name).await).into_response()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    use stadion_crds::GameServerState;

    /// A source with numbered servers whose states a test changes.
    pub(crate) struct FixedSource {
        objects: Mutex<Objects>,
    }

    impl FixedSource {
        pub(crate) fn with_servers(count: usize) -> Self {
            let gameservers = (0..count)
                .map(|n| snapshot::tests::server(&format!("gs-{n:04}"), "arena-1", GameServerState::Ready))
                .collect();
            let fleet: stadion_crds::Fleet = serde_json::from_value(serde_json::json!({
                "apiVersion": "agones.dev/v1", "kind": "Fleet",
                "metadata": {"name": "arena", "namespace": "default"},
                "spec": {"replicas": count, "template": {"spec": {"containers": [{"name": "g", "image": "g"}]}}}
            }))
            .unwrap();
            Self { objects: Mutex::new(Objects { gameservers, fleets: vec![Arc::new(fleet)], ..Objects::default() }) }
        }

        pub(crate) fn set_state(&self, n: usize, state: GameServerState) {
            let mut objects = self.objects.lock().unwrap();
            let mut gs = (*objects.gameservers[n]).clone();
            gs.status.as_mut().unwrap().state = Some(state);
            objects.gameservers[n] = Arc::new(gs);
        }

        pub(crate) fn remove(&self, n: usize) {
            self.objects.lock().unwrap().gameservers.remove(n);
        }
    }

    #[async_trait]
    impl DashboardSource for FixedSource {
        fn objects(&self) -> Objects {
            self.objects.lock().unwrap().clone()
        }

        async fn details(&self, _: &str, _: &str) -> ServerDetails {
            ServerDetails::default()
        }
    }

    /// The budget the issue sets: page, script, style and the first data of 1,000 servers.
    #[test]
    fn page_and_a_thousand_server_snapshot_stay_under_two_megabytes() {
        let dashboard = Dashboard::new(Arc::new(FixedSource::with_servers(1000)), None);
        let first = dashboard.snapshot_json();
        assert!(first.contains("gs-0999"), "every server is in the first data");
        let total = INDEX_HTML.len() + APP_JS.len() + STYLE_CSS.len() + first.len();
        assert!(total < 2 * 1024 * 1024, "page {total} bytes");
    }

    #[test]
    fn the_page_is_accessible_and_offline() {
        // Only the SVG namespace may name a URL, and it is never fetched.
        for text in [INDEX_HTML, APP_JS.replace("\"http://www.w3.org/2000/svg\"", "").as_str(), STYLE_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"), "nothing is loaded from elsewhere");
            assert!(!text.contains("@import") && !text.contains("url("), "no remote style");
        }
        assert!(INDEX_HTML.contains("<th scope=\"col\""), "column headers have a scope");
        assert!(APP_JS.contains("aria-sort"), "sortable headers say how they sort");
        assert!(STYLE_CSS.contains(":focus-visible"), "focus is visible");
    }
}

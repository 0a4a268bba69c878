//! A scripted fake API server for unit tests, in the style of kube-rs/controller-rs: the code
//! under test talks to a real `kube::Client` whose transport is a `tower_test` mock, and the
//! script says exactly which method, path (and query) and body each request must have, and what
//! the server answers. A request out of script fails the test.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Check = Arc<dyn Fn(&Value) + Send + Sync>;

/// The server side of a mock client.
pub struct ApiServer(Handle);

/// The answer to one expected request.
#[derive(Clone)]
enum Reply {
    /// Answer with this status and JSON body.
    Json(u16, Value),
    /// Answer 200 with the request body, with the resourceVersion bumped (what a PUT/POST does).
    Echo,
    /// Answer with a Kubernetes Status error of this code.
    Status(u16),
}

/// One request the code under test must make next, and its answer.
#[derive(Clone)]
pub struct Expect {
    method: Method,
    path: String,
    query: Vec<String>,
    check: Option<Check>,
    reply: Reply,
}

impl Expect {
    fn new(method: Method, path: &str) -> Self {
        Self { method, path: path.to_owned(), query: Vec::new(), check: None, reply: Reply::Status(500) }
    }

    /// A GET of `path`.
    pub fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }

    /// A POST (create) to `path`.
    pub fn post(path: &str) -> Self {
        Self::new(Method::POST, path)
    }

    /// A PUT (replace) of `path`.
    pub fn put(path: &str) -> Self {
        Self::new(Method::PUT, path)
    }

    /// A PATCH of `path`.
    pub fn patch(path: &str) -> Self {
        Self::new(Method::PATCH, path)
    }

    /// A DELETE of `path`.
    pub fn delete(path: &str) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// The query string must contain `fragment` (e.g. `fieldSelector=metadata.name%3Dgs-1`).
    pub fn query(mut self, fragment: &str) -> Self {
        self.query.push(fragment.to_owned());
        self
    }

    /// Runs `check` on the request's JSON body (assertions inside fail the test).
    pub fn check(mut self, check: impl Fn(&Value) + Send + Sync + 'static) -> Self {
        self.check = Some(Arc::new(check));
        self
    }

    /// Answers 200 with `body`.
    pub fn respond_json(mut self, body: &impl Serialize) -> Self {
        self.reply = Reply::Json(200, serde_json::to_value(body).expect("fixture serializes"));
        self
    }

    /// Answers 200 with the request body (resourceVersion bumped).
    pub fn respond_echo(mut self) -> Self {
        self.reply = Reply::Echo;
        self
    }

    /// Answers with a Kubernetes error Status of `code` (404, 409, …).
    pub fn respond_status(mut self, code: u16) -> Self {
        self.reply = Reply::Status(code);
        self
    }
}

impl ApiServer {
    /// A client wired to a fresh mock server.
    pub fn start() -> (Client, ApiServer) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(service, "default"), ApiServer(handle))
    }

    /// Serves `script` in order on a background task; await the handle to check that every
    /// expected request arrived (a mismatch panics the task, which fails the await).
    pub fn run(mut self, script: Vec<Expect>) -> JoinHandle<ApiServer> {
        tokio::spawn(async move {
            for (step, expect) in script.into_iter().enumerate() {
                self.serve_one(step, expect).await;
            }
            self
        })
    }

    /// Fails the test if any request arrives within `period`.
    pub async fn expect_quiet(mut self, period: std::time::Duration) {
        if let Ok(Some((request, _))) = tokio::time::timeout(period, self.0.next_request()).await {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }

    /// Serves one expected request.
    pub async fn serve_one(&mut self, step: usize, expect: Expect) {
        let (request, send) = self.0.next_request().await.unwrap_or_else(|| panic!("step {step}: client went away"));
        let uri = request.uri().clone();
        assert_eq!(request.method(), expect.method, "step {step}: method of {uri}");
        assert_eq!(uri.path(), expect.path, "step {step}: path");
        let query = uri.query().unwrap_or_default();
        for fragment in &expect.query {
            assert!(query.contains(fragment.as_str()), "step {step}: query {query:?} lacks {fragment:?}");
        }
        let bytes = request.into_body().collect_bytes().await.expect("request body");
        let body: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
        if let Some(check) = &expect.check {
            check(&body);
        }
        let (code, reply) = match expect.reply {
            Reply::Json(code, value) => (code, value),
            Reply::Echo => {
                let mut echoed = body;
                let next = echoed["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|rv| rv.parse::<u64>().ok())
                    .map_or(1, |rv| rv + 1);
                echoed["metadata"]["resourceVersion"] = json!(next.to_string());
                (200, echoed)
            }
            Reply::Status(code) => (code, status_body(code)),
        };
        let response = Response::builder()
            .status(StatusCode::from_u16(code).expect("valid status"))
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).expect("reply serializes")))
            .expect("response builds");
        send.send_response(response);
    }
}

/// A Kubernetes `Status` error body for `code`.
pub fn status_body(code: u16) -> Value {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        410 => "Gone",
        422 => "Invalid",
        _ => "InternalError",
    };
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": format!("mock API server says {reason}"),
        "reason": reason,
        "code": code,
    })
}

/// Path of the events.k8s.io Events in `namespace`.
pub fn events_path(namespace: &str) -> String {
    format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events")
}

impl Expect {
    /// An Event with `reason` recorded in `default`.
    pub fn event(reason: &'static str) -> Self {
        Self::post(&events_path("default")).check(move |body| assert_eq!(body["reason"], reason)).respond_echo()
    }
}

/// What every test Pod gets.
pub fn pod_config() -> super::pod::PodConfig {
    super::pod::PodConfig { sidecar_image: "stadion:test".into(), service_account: "stadion-sdk".into() }
}

/// A defaulted GameServer `name` in `default`, uid `uid-<name>`, resourceVersion 1, state
/// Creating, with one Dynamic UDP port `default` (container 7654) allocated host port 7000.
pub fn gameserver(name: &str) -> stadion_crds::GameServer {
    let mut spec = stadion_core::testing::game_spec();
    if let Some(pod) = spec.template.spec.as_mut() {
        pod.containers[0].image = Some("game:1".into());
    }
    let mut gs = stadion_crds::GameServer::new(name, spec);
    gs.metadata.namespace = Some("default".into());
    gs.metadata.uid = Some(format!("uid-{name}"));
    gs.metadata.resource_version = Some("1".into());
    gs.apply_defaults();
    gs.spec.ports[0].host_port = Some(7000);
    set_state(&mut gs, stadion_crds::GameServerState::Creating);
    gs
}

/// Sets the state of `gs`.
pub fn set_state(gs: &mut stadion_crds::GameServer, state: stadion_crds::GameServerState) {
    gs.status.get_or_insert_with(Default::default).state = Some(state);
}

/// Writers that feed the watch caches of a test [`super::context::Context`].
pub struct Caches {
    /// Nodes.
    pub nodes: kube::runtime::reflector::store::Writer<k8s_openapi::api::core::v1::Node>,
    /// Pods.
    pub pods: kube::runtime::reflector::store::Writer<super::watched_pod::WatchedPod>,
    /// GameServers.
    pub gameservers: kube::runtime::reflector::store::Writer<stadion_crds::GameServer>,
    /// GameServerSets.
    pub gameserversets: kube::runtime::reflector::store::Writer<stadion_crds::GameServerSet>,
    /// Fleets.
    pub fleets: kube::runtime::reflector::store::Writer<stadion_crds::Fleet>,
    /// FleetAutoscalers.
    pub fleetautoscalers: kube::runtime::reflector::store::Writer<stadion_crds::FleetAutoscaler>,
}

impl Caches {
    /// Puts `obj` in its cache.
    pub fn node(&mut self, obj: k8s_openapi::api::core::v1::Node) {
        self.nodes.apply_watcher_event(&kube::runtime::watcher::Event::Apply(obj));
    }

    /// Puts `obj` in its cache.
    pub fn gameserver(&mut self, obj: stadion_crds::GameServer) {
        self.gameservers.apply_watcher_event(&kube::runtime::watcher::Event::Apply(obj));
    }

    /// Puts `obj` in its cache.
    pub fn gameserverset(&mut self, obj: stadion_crds::GameServerSet) {
        self.gameserversets.apply_watcher_event(&kube::runtime::watcher::Event::Apply(obj));
    }

    /// Puts `obj` in its cache.
    pub fn fleet(&mut self, obj: stadion_crds::Fleet) {
        self.fleets.apply_watcher_event(&kube::runtime::watcher::Event::Apply(obj));
    }

    /// Puts `obj` in its cache as the watch would: parsed from its JSON into what is cached.
    pub fn pod(&mut self, obj: k8s_openapi::api::core::v1::Pod) {
        let json = serde_json::to_value(obj).expect("a Pod serialises");
        let watched = serde_json::from_value(json).expect("a Pod parses as the cached Pod");
        self.pods.apply_watcher_event(&kube::runtime::watcher::Event::Apply(watched));
    }
}

/// A leader's context over `client` with empty caches, the default 7000–8000 port range and no
/// allocation TTL unless a server's annotation asks for one.
pub fn context(client: Client) -> (std::sync::Arc<super::context::Context>, Caches) {
    let caches = Caches {
        nodes: Default::default(),
        pods: Default::default(),
        gameservers: Default::default(),
        gameserversets: Default::default(),
        fleets: Default::default(),
        fleetautoscalers: Default::default(),
    };
    let events = super::events::EventPublisher::inline(client.clone(), Some("test".into()));
    let metrics = std::sync::Arc::new(super::metrics::Metrics::controller());
    let stores = super::context::KubeStores {
        gameservers: super::store::KubeStore::new(client.clone(), caches.gameservers.as_reader()),
        sets: super::store::KubeStore::new(client.clone(), caches.gameserversets.as_reader()),
        fleets: super::store::KubeStore::new(client.clone(), caches.fleets.as_reader()),
        autoscalers: super::store::KubeStore::new(client.clone(), caches.fleetautoscalers.as_reader()),
    };
    let ctx = super::context::Context {
        recorder: super::recorder::KubeRecorder::new(events.clone(), metrics.clone()),
        events,
        client,
        metrics,
        leadership: super::lease::Leadership::always(),
        pod_config: pod_config(),
        ports: std::sync::Mutex::new(stadion_core::ports::PortAllocator::new(
            stadion_core::ports::PortRanges::default(),
        )),
        nodes: caches.nodes.as_reader(),
        pods: caches.pods.as_reader(),
        gameservers: caches.gameservers.as_reader(),
        stores,
        webhooks: crate::executor::WebhookClient::new(),
        gameserver_defaults: Default::default(),
    };
    (std::sync::Arc::new(ctx), caches)
}

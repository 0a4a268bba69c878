//! A stateful Kubernetes API server in this process, on a loopback port: enough of the real
//! thing for the kube runtime's controllers, watch caches, allocator and sidecar to run generic
//! scenarios (the scripted mock in `src/kube/fixtures.rs` can only answer requests it expects).
//!
//! It keeps objects as JSON in memory under one resourceVersion counter, and serves what kube-rs
//! clients and kube-runtime watchers send: discovery, GET, LIST (label and field selectors, the
//! list's resourceVersion), WATCH (newline-delimited events from a resourceVersion, selector
//! transitions as ADDED/DELETED), POST (uid, creationTimestamp, generateName, 409
//! AlreadyExists), PUT (409 on a stale resourceVersion, generation bumped on a spec change),
//! merge PATCH (apply and strategic-merge are taken as merge patches), the status and scale
//! subresources, Pod bindings, and DELETE with finalizers (deletionTimestamp until they are
//! removed), graceful Pod deletion and owner-reference cascade. Simplifications are listed in
//! [`objects`].

mod objects;
mod selector;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

pub use objects::{ApiError, Db};
use objects::{KINDS, Kind};
use selector::Selectors;

/// Objects and the change log, shared by every request.
struct Shared {
    db: Mutex<Db>,
    /// The newest resourceVersion, so watches wake on every commit.
    latest: watch::Sender<u64>,
    /// Refuses some Pods at creation, as an API server's admission would (None: accept all).
    pod_admission: Option<PodAdmission>,
}

/// Returns why a Pod is refused (answered 422 Invalid), or None to accept it.
pub type PodAdmission = fn(&Value) -> Option<String>;

impl Shared {
    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the objects and wakes the watches if it committed anything.
    fn write<T>(&self, f: impl FnOnce(&mut Db) -> T) -> T {
        let (result, rv) = {
            let mut db = self.db();
            let result = f(&mut db);
            (result, db.rv)
        };
        self.latest.send_if_modified(|latest| {
            let changed = *latest != rv;
            *latest = rv;
            changed
        });
        result
    }
}

/// The running fake API server.
pub struct FakeApiServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    /// Starts serving on 127.0.0.1 and a free port; Pods `pod_admission` refuses get 422.
    pub async fn start(pod_admission: Option<PodAdmission>) -> Self {
        let (latest, _) = watch::channel(0);
        let shared = Arc::new(Shared { db: Mutex::new(Db::default()), latest, pod_admission });
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let shared = shared.clone();
            async move { handle(&shared, method, uri, headers, body).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake API server");
        let addr = listener.local_addr().expect("a bound address");
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("fake API server stopped: {error}");
            }
        });
        Self { addr, task }
    }

    /// A client of this server, in namespace `default`.
    pub fn client(&self) -> kube::Client {
        stadion_controller::kube::connect::install_crypto_provider();
        let url = format!("http://{}", self.addr).parse().expect("a loopback URL");
        let mut config = kube::Config::new(url);
        config.default_namespace = "default".into();
        // Watches stay open for long; reads of a busy test must not time out either.
        config.read_timeout = None;
        kube::Client::try_from(config).expect("a client of the fake API server")
    }
}

/// What a request is about, parsed from its path.
enum Target {
    /// `/api/v1` or `/apis/<group>/<version>`: the resources served.
    Discovery { group: String, version: String },
    /// `/version`.
    Version,
    /// A collection or one object of a kind, maybe a subresource of it.
    Resource { kind: &'static Kind, namespace: Option<String>, name: Option<String>, sub: Option<String> },
}

fn parse_target(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Some(Target::Version),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let find = |plural: &str| KINDS.iter().find(|k| k.group == group && k.version == version && k.plural == plural);
    let owned = |s: &&str| (*s).to_owned();
    match rest {
        [] => Some(Target::Discovery { group: group.to_owned(), version: version.to_owned() }),
        ["namespaces", namespace, plural, tail @ ..] if find(plural).is_some_and(|k| k.namespaced) => {
            Some(Target::Resource {
                kind: find(plural)?,
                namespace: Some((*namespace).to_owned()),
                name: tail.first().map(owned),
                sub: tail.get(1).map(owned),
            })
        }
        [plural, tail @ ..] => Some(Target::Resource {
            kind: find(plural)?,
            namespace: None,
            name: tail.first().map(owned),
            sub: tail.get(1).map(owned),
        }),
    }
}

fn query(uri: &Uri) -> Vec<(String, String)> {
    let Some(raw) = uri.query() else { return Vec::new() };
    raw.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(
            code,
            &json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code,
            }),
        )
    }
}

async fn handle(shared: &Arc<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some(target) = parse_target(uri.path()) else {
        return ApiError::not_found(&format!("the server could not find the requested resource ({})", uri.path()))
            .into_response();
    };
    let params = query(&uri);
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match target {
        Target::Version => json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-stadion-fake", "platform": "linux/amd64"}),
        ),
        Target::Discovery { group, version } => discovery(&group, &version),
        Target::Resource { kind, namespace, name, sub } => {
            let body: Option<Value> = if body.is_empty() {
                None
            } else {
                let parsed = match content_type(&headers) {
                    "application/apply-patch+yaml" => serde_saphyr::from_slice(&body).map_err(|e| e.to_string()),
                    _ => serde_json::from_slice(&body).map_err(|e| e.to_string()),
                };
                match parsed {
                    Ok(value) => Some(value),
                    Err(error) => {
                        return ApiError::bad_request(&format!("cannot parse the body: {error}")).into_response();
                    }
                }
            };
            let ns = namespace.as_deref();
            let result = match (method.as_str(), name.as_deref()) {
                ("GET", None) if param("watch").is_some_and(|w| w == "true" || w == "1") => {
                    let selectors = match Selectors::parse(param("labelSelector"), param("fieldSelector")) {
                        Ok(s) => s,
                        Err(error) => return ApiError::bad_request(&error).into_response(),
                    };
                    let since = param("resourceVersion").and_then(|rv| rv.parse::<u64>().ok()).filter(|rv| *rv > 0);
                    let timeout = param("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()).map(Duration::from_secs);
                    return watch_response(shared, kind, namespace, selectors, since, timeout);
                }
                ("GET", None) => match Selectors::parse(param("labelSelector"), param("fieldSelector")) {
                    Ok(selectors) => Ok((StatusCode::OK, shared.db().list(kind, ns, &selectors))),
                    Err(error) => Err(ApiError::bad_request(&error)),
                },
                ("GET", Some(name)) => shared.db().get(kind, ns, name, sub.as_deref()).map(|v| (StatusCode::OK, v)),
                ("POST", None) => {
                    let body = body.unwrap_or_default();
                    if kind.plural == "pods"
                        && let Some(why) = shared.pod_admission.and_then(|admit| admit(&body))
                    {
                        return ApiError::invalid(&format!("Pod is invalid: {why}")).into_response();
                    }
                    shared.write(|db| db.create(kind, ns, body)).map(|v| (StatusCode::CREATED, v))
                }
                ("POST", Some(name)) if sub.as_deref() == Some("binding") => {
                    let body = body.unwrap_or_default();
                    shared.write(|db| db.bind(kind, ns, name, &body)).map(|v| (StatusCode::CREATED, v))
                }
                ("PUT", Some(name)) => {
                    let body = body.unwrap_or_default();
                    shared.write(|db| db.replace(kind, ns, name, sub.as_deref(), body)).map(|v| (StatusCode::OK, v))
                }
                ("PATCH", Some(name)) => {
                    let body = body.unwrap_or_default();
                    let apply = content_type(&headers) == "application/apply-patch+yaml";
                    shared
                        .write(|db| db.patch(kind, ns, name, sub.as_deref(), &body, apply))
                        .map(|v| (StatusCode::OK, v))
                }
                ("DELETE", Some(name)) => {
                    let grace = body.as_ref().and_then(|b| b.get("gracePeriodSeconds")).and_then(Value::as_i64);
                    shared.write(|db| db.delete(kind, ns, name, grace)).map(|v| (StatusCode::OK, v))
                }
                (method, _) => Err(ApiError::new(405, "MethodNotAllowed", &format!("{method} is not supported here"))),
            };
            match result {
                Ok((code, value)) => json_response(code, &value),
                Err(error) => error.into_response(),
            }
        }
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    let raw = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    raw.split(';').next().unwrap_or(raw).trim()
}

fn discovery(group: &str, version: &str) -> Response {
    let served: Vec<&Kind> = KINDS.iter().filter(|k| k.group == group && k.version == version).collect();
    if served.is_empty() {
        return ApiError::not_found(&format!("no API group {group}/{version}")).into_response();
    }
    let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    let mut resources = Vec::new();
    for kind in served {
        let verbs = ["create", "delete", "get", "list", "patch", "update", "watch"];
        resources.push(json!({
            "name": kind.plural, "singularName": kind.kind.to_lowercase(), "namespaced": kind.namespaced,
            "kind": kind.kind, "verbs": verbs,
        }));
        if kind.status {
            resources.push(json!({"name": format!("{}/status", kind.plural), "singularName": "",
                "namespaced": kind.namespaced, "kind": kind.kind, "verbs": ["get", "patch", "update"]}));
        }
        if kind.scale {
            resources.push(json!({"name": format!("{}/scale", kind.plural), "singularName": "",
                "namespaced": kind.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale",
                "verbs": ["get", "patch", "update"]}));
        }
    }
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// A watch: the changes after `since` (or synthetic ADDED events for what exists now, when no
/// resourceVersion is given), then every new change, one JSON event per line, until the client
/// goes away or `timeout` passes.
fn watch_response(
    shared: &Arc<Shared>,
    kind: &'static Kind,
    namespace: Option<String>,
    selectors: Selectors,
    since: Option<u64>,
    timeout: Option<Duration>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let mut latest = shared.latest.subscribe();
    let (mut seen, initial) = {
        let db = shared.db();
        match since {
            Some(rv) => (rv, Vec::new()),
            None => (db.rv, db.snapshot(kind, namespace.as_deref(), &selectors)),
        }
    };
    let reader = shared.clone();
    tokio::spawn(async move {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        for object in initial {
            let line = event_line("ADDED", &object);
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        loop {
            let (changes, rv) = {
                let db = reader.db();
                (db.changes_after(seen, kind, namespace.as_deref()), db.rv)
            };
            for change in changes {
                if let Some((type_, object)) = selectors.transition(&change)
                    && tx.send(Ok(event_line(type_, object))).await.is_err()
                {
                    return;
                }
            }
            seen = rv;
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = latest.changed() => if changed.is_err() { return },
                () = sleep => return,
                () = tx.closed() => return,
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .expect("a streaming response")
}

fn event_line(type_: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": type_, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

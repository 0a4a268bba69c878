//! What the benches on a real API server share (`kube_scale`, `kube_alloc`): the API server's
//! own count of GameServer writes, and its raw GameServer update rate.

#![allow(dead_code)] // Each bench uses a different subset.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use stadion_crds::GameServer;

/// Writers of the raw rate, each replacing its own GameServer.
pub const RAW_WORKERS: usize = 16;
/// How long the raw rate is measured.
pub const RAW_SECONDS: u64 = 10;

/// Writes the API server has answered, by (resource, verb, code); a subresource is named
/// `resource/subresource` (`fleets/status`).
#[derive(Clone, Debug, Default)]
pub struct Writes(pub BTreeMap<(String, String, String), f64>);

impl Writes {
    /// What the API server has answered so far, from its `apiserver_request_total` counter
    /// (everyone's: controller, sidecars, allocators, raw writers).
    pub async fn read(client: &Client) -> Self {
        let request = http::Request::get("/metrics").body(Vec::new()).expect("metrics request");
        let text = client.request_text(request).await.unwrap_or_default();
        let mut writes = BTreeMap::new();
        for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
            let Some((labels, value)) = line.rsplit_once(' ') else { continue };
            let label = |name: &str| {
                let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
                Some(labels[start..].split('"').next()?.to_owned())
            };
            let (Some(resource), Some(verb), Some(code)) = (label("resource"), label("verb"), label("code")) else {
                continue;
            };
            let resource = match label("subresource").filter(|s| !s.is_empty()) {
                Some(sub) => format!("{resource}/{sub}"),
                None => resource,
            };
            if matches!(verb.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
                *writes.entry((resource, verb, code)).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
            }
        }
        Self(writes)
    }

    /// The writes answered since `before` was read.
    pub fn since(mut self, before: &Self) -> Self {
        for (key, n) in &before.0 {
            *self.0.entry(key.clone()).or_insert(0.0) -= n;
        }
        self.0.retain(|_, n| *n > 0.0);
        self
    }

    /// Only the writes of `resource` (`gameservers`).
    pub fn of(mut self, resource: &str) -> Self {
        self.0.retain(|(r, _, _), _| r == resource);
        self
    }

    /// All writes.
    pub fn total(&self) -> f64 {
        self.0.values().fold(0.0, |sum, n| sum + n)
    }

    /// Writes of `verb` answered `code` (`None`: any code).
    pub fn count(&self, verb: &str, code: Option<&str>) -> f64 {
        let matching = self.0.iter().filter(|((_, v, c), _)| v == verb && code.is_none_or(|code| c == code));
        matching.fold(0.0, |sum, (_, n)| sum + n)
    }

    /// `PUT 200: 12, PUT 409: 3` (for one resource).
    pub fn describe(&self) -> String {
        let kinds: Vec<String> = self.0.iter().map(|((_, verb, code), n)| format!("{verb} {code}: {n:.0}")).collect();
        if kinds.is_empty() { "none".into() } else { kinds.join(", ") }
    }

    /// Writes per resource.
    pub fn by_resource(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for ((resource, _, _), n) in &self.0 {
            *out.entry(resource.clone()).or_insert(0.0) += n;
        }
        out
    }
}

/// Waits until the API server is quiet: at most a few writes (Lease and Node heartbeats) in
/// the last second, so that what a fleet's start or refill left behind (its last status writes,
/// the Events still queued in the controller) is not timed with what comes next. Returns how
/// long that took; gives up after a minute.
pub async fn quiet(client: &Client) -> Duration {
    const HEARTBEATS: f64 = 3.0;
    let started = Instant::now();
    let mut last = Writes::read(client).await;
    let mut calm_since = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = Writes::read(client).await;
        if now.clone().since(&last).total() > HEARTBEATS {
            (last, calm_since) = (now, Instant::now());
        } else if calm_since.elapsed() >= Duration::from_secs(1) {
            return started.elapsed();
        }
    }
    eprintln!("the API server kept writing for a minute; going on");
    started.elapsed()
}

/// GameServer replaces per second, [`RAW_WORKERS`] at a time for [`RAW_SECONDS`] (see
/// [`raw_updates`]).
pub async fn raw_update_rate(client: &Client, namespace: &str) -> f64 {
    raw_updates(client, namespace, RAW_WORKERS).await.rate
}

/// The API server's own pace for GameServer replaces: how many per second, and how long one
/// takes (milliseconds, median and 99th percentile).
pub struct Raw {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `workers` writers for [`RAW_SECONDS`], each replacing its own GameServer back to back (PUT,
/// resourceVersion from the last answer), in `namespace`, created for it and deleted after: one
/// no controller watches.
pub async fn raw_updates(client: &Client, namespace: &str, workers: usize) -> Raw {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    namespaces.create(&PostParams::default(), &ns).await.expect("raw namespace");
    let api: Api<GameServer> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(RAW_SECONDS);
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let gs: GameServer = serde_json::from_value(json!({
            "apiVersion": "agones.dev/v1", "kind": "GameServer",
            "metadata": {"name": format!("raw-{worker}")},
            "spec": {"ports": [{"name": "default", "containerPort": 7654}],
                     "template": {"spec": {"containers": [{"name": "game", "image": "raw"}]}}}
        }))
        .unwrap();
        let mut current = api.create(&PostParams::default(), &gs).await.expect("raw GameServer");
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::new();
            while Instant::now() < deadline {
                let n = took.len() + 1;
                current.metadata.labels.get_or_insert_with(Default::default).insert("n".into(), n.to_string());
                let sent = Instant::now();
                match api.replace(&current.metadata.name.clone().unwrap(), &PostParams::default(), &current).await {
                    Ok(next) => {
                        current = next;
                        took.push(sent.elapsed());
                    }
                    Err(error) => eprintln!("raw write: {error}"),
                }
            }
            took
        }));
    }
    let started = Instant::now();
    let mut took = Vec::new();
    for task in tasks {
        took.extend(task.await.expect("raw writer"));
    }
    let rate = took.len() as f64 / started.elapsed().as_secs_f64();
    let _ = namespaces.delete(namespace, &DeleteParams::default()).await;
    took.sort();
    let at = |q: f64| took.get(((took.len() as f64 * q) as usize).min(took.len().saturating_sub(1)));
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    Raw { rate, p50_ms: ms(at(0.5)), p99_ms: ms(at(0.99)) }
}

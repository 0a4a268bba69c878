//! Scale bench on a real API server (outside `cargo test`): a Fleet of N from apply to all
//! Ready, beside the API server's raw GameServer update rate measured in the same run, and the
//! controller's memory.
//!
//! ```text
//! eval "$(scripts/cluster-up.sh /opt/kube/bin /tmp/kube)"
//! cargo build --release -p stadion --bin stadion
//! cargo run --release -p stadion-controller --example kube_scale -- [REPLICAS=1000]
//! ```
//!
//! The controller is the real `stadion controller` process (`target/release/stadion`, or
//! `STADION_BIN`), scoped to a fresh namespace. Pods are bound by the real kube-scheduler to 10
//! simulated Nodes; the stand-in kubelet of the cluster suite (`tests/kubelet/`, in this
//! process) reports them Running without processes and each server's SDK Ready goes through the
//! sidecar's kube backend, as a sidecar would write it.
//!
//! Raw rate: 16 tasks each replacing its own GameServer back to back (PUT, resourceVersion from
//! the last answer) for 10 s, in a namespace no controller watches. Controller memory: `VmRSS`
//! once all are Ready (after 5 s of quiet) and `VmHWM` (peak), from `/proc`, with the heap
//! (`RssAnon`) apart from the mapped binary. GameServer writes: the API server's own request
//! counter (`/metrics`), from apply to all Ready, by verb and answer code.

#[path = "../tests/kubelet/mod.rs"]
mod kubelet;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use stadion_crds::{Fleet, GameServer};

use kubelet::Mode;
use kubelet::cluster::{SIDECAR_IMAGE, World, dynamic_udp, fleet, kubeconfig_path};

const RAW_WORKERS: usize = 16;
const RAW_SECONDS: u64 = 10;

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// GameServer writes the API server has answered so far, by verb and code, from its
/// `apiserver_request_total` counter (everyone's: controller, sidecars, raw writers).
async fn gameserver_writes(client: &Client) -> std::collections::BTreeMap<(String, String), f64> {
    let request = http::Request::get("/metrics").body(Vec::new()).expect("metrics request");
    let text = client.request_text(request).await.unwrap_or_default();
    let mut writes = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else { continue };
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
            Some(labels[start..].split('"').next()?.to_owned())
        };
        if label("resource").as_deref() != Some("gameservers") {
            continue;
        }
        let (Some(verb), Some(code)) = (label("verb"), label("code")) else { continue };
        if matches!(verb.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
            *writes.entry((verb, code)).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    writes
}

/// GameServer replaces per second, `RAW_WORKERS` at a time, in a namespace of their own.
async fn raw_update_rate(client: &Client, namespace: &str) -> f64 {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    namespaces.create(&PostParams::default(), &ns).await.expect("raw namespace");
    let api: Api<GameServer> = Api::namespaced(client.clone(), namespace);
    let writes = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(RAW_SECONDS);
    let mut tasks = Vec::new();
    for worker in 0..RAW_WORKERS {
        let gs: GameServer = serde_json::from_value(json!({
            "apiVersion": "agones.dev/v1", "kind": "GameServer",
            "metadata": {"name": format!("raw-{worker}")},
            "spec": {"ports": [{"name": "default", "containerPort": 7654}],
                     "template": {"spec": {"containers": [{"name": "game", "image": "raw"}]}}}
        }))
        .unwrap();
        let mut current = api.create(&PostParams::default(), &gs).await.expect("raw GameServer");
        let (api, writes) = (api.clone(), writes.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                current.metadata.labels.get_or_insert_with(Default::default).insert("n".into(), n.to_string());
                match api.replace(&current.metadata.name.clone().unwrap(), &PostParams::default(), &current).await {
                    Ok(next) => {
                        current = next;
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => eprintln!("raw write: {error}"),
                }
            }
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await.expect("raw writer");
    }
    let rate = writes.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    let _ = namespaces.delete(namespace, &DeleteParams::default()).await;
    rate
}

#[tokio::main]
async fn main() {
    let replicas: i32 = std::env::args().nth(1).map_or(1000, |a| a.parse().expect("REPLICAS is a number"));
    let world = World::new(10, 250, Mode::Simulated).await;
    let raw = raw_update_rate(&world.client, &format!("{}-raw", world.namespace)).await;
    println!("raw GameServer update rate: {raw:.0}/s ({RAW_WORKERS} writers, {RAW_SECONDS} s)");

    let log = std::fs::File::create(std::env::temp_dir().join(format!("stadion-kube-scale-{}.log", world.run)))
        .expect("controller log");
    let mut controller = Command::new(kubelet::cluster::stadion_binary())
        .args(["controller", "--metrics-addr", "127.0.0.1:0", "--allocation-api-addr", "off"])
        .args(["--lease-namespace", &world.namespace, "--namespace", &world.namespace])
        .args(["--sidecar-image", SIDECAR_IMAGE])
        .env("KUBECONFIG", kubeconfig_path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start stadion controller");
    let pid = controller.id();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss = status_kib(pid, "VmRSS:").unwrap_or(0);

    let fleets: Api<Fleet> = Api::namespaced(world.client.clone(), &world.namespace);
    let writes_before = gameserver_writes(&world.client).await;
    let started = Instant::now();
    fleets
        .create(&PostParams::default(), &fleet(&world, "scale", replicas, "Packed", dynamic_udp()))
        .await
        .expect("fleet");
    let mut half = None;
    let took = loop {
        let ready = fleets.get("scale").await.ok().and_then(|f| f.status).map_or(0, |s| s.ready_replicas);
        if half.is_none() && ready >= replicas / 2 {
            half = Some(started.elapsed());
        }
        if ready >= replicas {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(600), "not all Ready after 10 minutes ({ready}/{replicas})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut writes = gameserver_writes(&world.client).await;
    for (key, before) in writes_before {
        *writes.entry(key).or_insert(0.0) -= before;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss = status_kib(pid, "VmRSS:").unwrap_or(0);
    let (anon, file) = (status_kib(pid, "RssAnon:").unwrap_or(0), status_kib(pid, "RssFile:").unwrap_or(0));
    let peak = status_kib(pid, "VmHWM:").unwrap_or(0);
    let budget = f64::from(replicas) * 5.0 / raw;
    println!(
        "fleet of {replicas}: all Ready {:.1} s after apply (half at {:.1} s)",
        took.as_secs_f64(),
        half.unwrap_or(took).as_secs_f64()
    );
    println!("5 writes per server at the raw rate: {budget:.1} s; measured / that: {:.2}", took.as_secs_f64() / budget);
    println!(
        "controller RSS: {} MiB idle, {} MiB at {replicas} Ready, peak {} MiB",
        idle_rss / 1024,
        rss / 1024,
        peak / 1024
    );
    println!(
        "  of which at {replicas} Ready: {} MiB heap (RssAnon), {} MiB the mapped binary and libraries",
        anon / 1024,
        file / 1024
    );
    let total: f64 = writes.values().sum();
    let by_kind: Vec<String> =
        writes.iter().filter(|(_, n)| **n > 0.0).map(|((verb, code), n)| format!("{verb} {code}: {n:.0}")).collect();
    println!(
        "GameServer writes from apply to all Ready (everyone's): {total:.0}, {:.1} per server ({})",
        total / f64::from(replicas),
        by_kind.join(", ")
    );

    let _ = controller.kill();
    let _ = controller.wait();
    world.clean_up().await;
}

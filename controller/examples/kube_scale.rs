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

mod kube_bench;
#[path = "../tests/kubelet/mod.rs"]
mod kubelet;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use futures::StreamExt;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use stadion_crds::{Fleet, GameServer};

use kube_bench::{RAW_SECONDS, RAW_WORKERS, Writes, raw_update_rate};
use kubelet::Mode;
use kubelet::cluster::{SIDECAR_IMAGE, World, dynamic_udp, fleet, kubeconfig_path};

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
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
    let writes_before = Writes::read(&world.client).await;
    let started = Instant::now();
    fleets
        .create(&PostParams::default(), &fleet(&world, "scale", replicas, "Packed", dynamic_udp()))
        .await
        .expect("fleet");
    let timeline = tokio::spawn(print_timeline(Api::namespaced(world.client.clone(), &world.namespace), started));
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
    timeline.abort();
    let all_writes = Writes::read(&world.client).await.since(&writes_before);
    let writes = all_writes.clone().of("gameservers");
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
    let total = writes.total();
    println!(
        "GameServer writes from apply to all Ready (everyone's): {total:.0}, {:.1} per server ({})",
        total / f64::from(replicas),
        writes.describe()
    );

    let by_resource: Vec<String> =
        all_writes.by_resource().iter().map(|(resource, n)| format!("{resource} {n:.0}")).collect();
    println!("every write from apply to all Ready, by resource: {}", by_resource.join(", "));

    let _ = controller.kill();
    let _ = controller.wait();
    world.clean_up().await;
}

/// Every 5 s, how many of the fleet's servers are in each state (from a watch, so the sampling
/// costs the API server no lists): where a fleet start waits shows as the state that piles up.
async fn print_timeline(api: Api<GameServer>, started: Instant) {
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, watcher::Config::default())).applied_objects();
    tokio::spawn(stream.for_each(|_| async {}));
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        for gs in reader.state() {
            let state = gs.state().map_or("(none)".to_owned(), |s| s.to_string());
            *states.entry(state).or_default() += 1;
        }
        let states: Vec<String> = states.iter().map(|(state, n)| format!("{state} {n}")).collect();
        println!("  t={:>5.1} s: {}", started.elapsed().as_secs_f64(), states.join(", "));
    }
}

//! Allocation bench on a real API server (outside `cargo test`, issue #14 point 3): allocations
//! per second, p50/p99, outcomes, GameServer PUTs per allocation and duplicates, with 1, 16 and
//! 64 concurrent clients, through Kubernetes' aggregation layer and through the matchmaker,
//! beside the API server's raw GameServer update rate measured in the same run.
//!
//! ```text
//! eval "$(scripts/cluster-up.sh /opt/kube/bin /tmp/kube)"
//! cargo build --release -p stadion -p stadion-controller --bin stadion --example kube_alloc
//! cargo run --release -p stadion-controller --example kube_alloc -- [REPLICAS=300] [ALLOCATIONS=200] [CLIENTS=1,16,64]
//! ```
//!
//! In a fresh namespace: a Packed Fleet of REPLICAS, run by the real `stadion controller` process
//! (`target/<profile>/stadion`, or `STADION_BIN`) with its allocation API on loopback; Pods bound
//! by the real kube-scheduler to simulated Nodes, reported Running by the cluster suite's stand-in
//! kubelet, each server's SDK Ready written through the sidecar's kube backend (as `kube_scale`).
//! The allocation API is registered as the install renders it: its certificate, an ExternalName
//! Service to 127.0.0.1 and the APIService with the `caBundle` that trusts it. A `stadion
//! matchmaker` process in kube mode, scoped to the namespace, serves Agones' REST allocation.
//!
//! Each row is ALLOCATIONS allocations (fewer than REPLICAS, so Ready servers remain throughout)
//! by CLIENTS concurrent clients, each sending its next request when the last is answered:
//! - `aggregated`: `POST /apis/allocation.agones.dev/v1/namespaces/NS/gameserverallocations` to
//!   the kube-apiserver with the kubeconfig's credentials, as `kubectl create` sends it
//!   (authentication, RBAC, the aggregator's proxy, the controller's allocation API);
//! - `matchmaker`: `POST /gameserverallocation` (Agones' REST allocation) to the matchmaker.
//!
//! Per row: Allocated answers per second of the row's wall time, and between the first and last
//! tenth of them; p50/p99 of every answer; outcomes (Allocated, UnAllocated, Contention, errors);
//! GameServer PUTs per Allocated answer and their 409s, from the API server's own
//! `apiserver_request_total` before the row and a second after its last answer (all writers',
//! but the fleet is quiet: every server Ready, none starting or being deleted), and the other
//! writes of that window per resource (Events, fleet status);
//! duplicates (a server name handed out twice in the whole run); Allocated servers the API
//! server shows after the row (must equal the Allocated answers) and the Ready servers left.
//! Between rows the allocated servers are deleted, as finished matches are, and the controller
//! refills the fleet to REPLICAS Ready before the next row starts, and the row waits until the
//! API server is quiet (a second with no more than heartbeats), so the Events and status writes
//! the refill left queued are not timed with the row.

mod kube_bench;
#[path = "../tests/kubelet/mod.rs"]
mod kubelet;

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use stadion_controller::kube::allocation_api::SERVICE_NAME;
use stadion_controller::kube::install::{self, ALLOCATION_TLS_SECRET, InstallOptions};
use stadion_crds::{Fleet, GameServer, GameServerState};

use kube_bench::{RAW_SECONDS, RAW_WORKERS, Writes, raw_updates};
use kubelet::Mode;
use kubelet::cluster::{MANAGER, SIDECAR_IMAGE, World, dynamic_udp, eventually, fleet, kubeconfig_path, live, servers};

const API_SERVICE: &str = "v1.allocation.agones.dev";
const FLEET: &str = "alloc";
/// A Fleet no server belongs to, for warm-up requests.
const NO_FLEET: &str = "no-such-fleet";
/// Warm-up requests per client before each row.
const WARM_UP: usize = 2;
/// How long after a row's last answer its writes are still counted.
const AFTERMATH: Duration = Duration::from_secs(1);
/// How long the fleet may take to be whole again (release: seconds).
const REFILL_TIMEOUT: Duration = Duration::from_secs(600);

/// A port free on loopback right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a loopback port").local_addr().expect("its address").port()
}

/// Starts `stadion ARGS` with the test's kubeconfig, logging to `log`.
fn stadion(args: &[&str], log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(kubelet::cluster::stadion_binary())
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start stadion {}: {e}", args[0]))
}

fn api_services(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService");
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

/// Registers the controller's allocation API for `namespace` as the install renders it, with
/// the controller on 127.0.0.1:`port`: the install's certificate (written to `dir` as
/// `tls.crt`/`tls.key` for `--tls-cert`/`--tls-key`), an ExternalName Service (Endpoints may
/// not hold loopback) and the APIService whose `caBundle` trusts that certificate.
async fn register_allocation_api(client: &Client, namespace: &str, port: u16, dir: &Path) -> (PathBuf, PathBuf) {
    let options = InstallOptions { namespace: namespace.to_owned(), ..InstallOptions::default() };
    let rendered = install::render(&options, &[]).expect("the install renders");
    let docs = install::parse_documents("install", &rendered).expect("the install parses");
    let doc = |kind: &str, name: &str| -> Value {
        let found = docs.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name);
        found.cloned().unwrap_or_else(|| panic!("the install has {kind} {name}"))
    };
    let secret: Secret = serde_json::from_value(doc("Secret", ALLOCATION_TLS_SECRET)).expect("a Secret");
    let data = secret.data.expect("the certificate Secret has data");
    std::fs::create_dir_all(dir).expect("certificate folder");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, &data["tls.crt"].0).expect("tls.crt");
    std::fs::write(&key, &data["tls.key"].0).expect("tls.key");

    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": SERVICE_NAME, "namespace": namespace},
        "spec": {"type": "ExternalName", "externalName": "127.0.0.1",
                 "ports": [{"name": "allocation", "port": port, "protocol": "TCP"}]}
    }))
    .expect("a Service");
    Api::<Service>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &service)
        .await
        .expect("the allocation Service");
    let mut api_service = doc("APIService", API_SERVICE);
    api_service["spec"]["service"]["port"] = json!(port);
    api_services(client)
        .patch(API_SERVICE, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&api_service))
        .await
        .expect("the APIService");
    (cert, key)
}

/// How one allocation request was answered.
enum Answer {
    Allocated(String),
    UnAllocated,
    Contention,
    Error(String),
}

/// Where allocations are sent.
#[derive(Clone)]
enum Target {
    /// The kube-apiserver's aggregation layer, with the kubeconfig's credentials.
    Aggregated { client: Client, namespace: String },
    /// The matchmaker's Agones REST allocation.
    Matchmaker { http: reqwest::Client, url: String, namespace: String },
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Self::Aggregated { .. } => "aggregated",
            Self::Matchmaker { .. } => "matchmaker",
        }
    }

    /// One allocation from the Fleet named `fleet`.
    async fn allocate(&self, fleet: &str) -> Answer {
        match self {
            Self::Aggregated { client, namespace } => {
                let body = json!({
                    "apiVersion": "allocation.agones.dev/v1", "kind": "GameServerAllocation",
                    "spec": {"selectors": [{"matchLabels": {"agones.dev/fleet": fleet}}]}
                });
                let request = http::Request::post(format!(
                    "/apis/allocation.agones.dev/v1/namespaces/{namespace}/gameserverallocations"
                ))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).expect("JSON"))
                .expect("a request");
                match client.request::<Value>(request).await {
                    Ok(gsa) => match gsa["status"]["state"].as_str() {
                        Some("Allocated") => match gsa["status"]["gameServerName"].as_str() {
                            Some(name) => Answer::Allocated(name.to_owned()),
                            None => Answer::Error(format!("Allocated without a server name: {gsa}")),
                        },
                        Some("UnAllocated") => Answer::UnAllocated,
                        Some("Contention") => Answer::Contention,
                        _ => Answer::Error(format!("no state: {gsa}")),
                    },
                    Err(error) => Answer::Error(error.to_string()),
                }
            }
            Self::Matchmaker { http, url, namespace } => {
                let body = json!({"namespace": namespace, "gameServerSelectors": [{"matchLabels": {"agones.dev/fleet": fleet}}]});
                let response = match http.post(url).json(&body).send().await {
                    Ok(response) => response,
                    Err(error) => return Answer::Error(error.to_string()),
                };
                let code = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                match code {
                    200 => match body["gameServerName"].as_str() {
                        Some(name) => Answer::Allocated(name.to_owned()),
                        None => Answer::Error(format!("200 without a server name: {body}")),
                    },
                    // The matchmaker's mapping: no server free, servers matched but taken first.
                    429 => Answer::UnAllocated,
                    409 => Answer::Contention,
                    _ => Answer::Error(format!("{code}: {body}")),
                }
            }
        }
    }
}

/// One row's answers and what the API server saw.
struct Row {
    target: &'static str,
    clients: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// When each Allocated answer came, from the row's start.
    allocated_at: Vec<Duration>,
    allocated: usize,
    unallocated: usize,
    contention: usize,
    errors: Vec<String>,
    duplicates: usize,
    /// GameServer writes during the row.
    writes: Writes,
    /// Every write during the row, of any resource.
    all_writes: Writes,
    allocated_in_api: usize,
    ready_left: usize,
}

impl Row {
    fn rate(&self) -> f64 {
        self.allocated as f64 / self.elapsed.as_secs_f64()
    }

    /// Allocated answers per second between the first and the last tenth of them: the rate once
    /// every client's connections are up (the row's ramp and tail left out).
    fn steady_rate(&self) -> f64 {
        let (first, last) = (percentile(&self.allocated_at, 0.1), percentile(&self.allocated_at, 0.9));
        let between = self.allocated_at.iter().filter(|at| **at > first && **at <= last).count();
        if last > first { between as f64 / (last - first).as_secs_f64() } else { self.rate() }
    }

    fn percentile(&self, q: f64) -> Duration {
        percentile(&self.latencies, q)
    }

    fn puts_per_allocation(&self) -> f64 {
        self.writes.count("PUT", None) / self.allocated.max(1) as f64
    }
}

/// Opens the connections `clients` concurrent clients use, on every hop but the allocator's
/// write: each sends [`WARM_UP`] requests for a Fleet that does not exist, answered UnAllocated
/// without a write. Not counted: a client's first request pays for its connections (TLS
/// handshakes, which a debug build makes slow), which a long-running backend pays once.
async fn warm_up(target: &Target, clients: usize) {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move {
                for _ in 0..WARM_UP {
                    if let Answer::Allocated(name) | Answer::Error(name) = target.allocate(NO_FLEET).await {
                        eprintln!("warm-up of {} was answered {name}, not UnAllocated", target.name());
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("warm-up task");
    }
}

/// `allocations` requests to `target` from `clients` concurrent clients; `seen` holds every
/// server handed out so far in the run; `admin` reads the API server's counters and `api` the
/// fleet's servers.
async fn run_row(
    target: &Target,
    clients: usize,
    allocations: usize,
    admin: &Client,
    api: &Api<GameServer>,
    seen: &mut HashSet<String>,
) -> Row {
    warm_up(target, clients).await;
    let before = Writes::read(admin).await;
    let remaining = Arc::new(AtomicUsize::new(allocations));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (target, remaining) = (target.clone(), remaining.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
                    let sent = Instant::now();
                    let answer = target.allocate(FLEET).await;
                    answers.push((sent.elapsed(), started.elapsed(), answer));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    // What the row caused beside the answers (the Allocated Events, the fleet's count) is
    // written just after them.
    tokio::time::sleep(AFTERMATH).await;
    let all_writes = Writes::read(admin).await.since(&before);
    let mut row = Row {
        target: target.name(),
        clients,
        elapsed,
        latencies: Vec::new(),
        allocated_at: Vec::new(),
        allocated: 0,
        unallocated: 0,
        contention: 0,
        errors: Vec::new(),
        duplicates: 0,
        writes: all_writes.clone().of("gameservers"),
        all_writes,
        allocated_in_api: 0,
        ready_left: 0,
    };
    for (latency, at, answer) in answers {
        row.latencies.push(latency);
        if matches!(answer, Answer::Allocated(_)) {
            row.allocated_at.push(at);
        }
        match answer {
            Answer::Allocated(name) => {
                row.allocated += 1;
                if !seen.insert(name) {
                    row.duplicates += 1;
                }
            }
            Answer::UnAllocated => row.unallocated += 1,
            Answer::Contention => row.contention += 1,
            Answer::Error(error) => row.errors.push(error),
        }
    }
    let now = live(servers(api).await);
    row.allocated_in_api = now.iter().filter(|gs| gs.state() == Some(GameServerState::Allocated)).count();
    row.ready_left = now.iter().filter(|gs| gs.state() == Some(GameServerState::Ready)).count();
    row
}

/// Deletes the fleet's Allocated servers (finished matches) and waits until the fleet is
/// `replicas` Ready servers again with nothing starting or being deleted, then a second more
/// for every watch cache to catch up. How long it took to be whole.
async fn refill(api: &Api<GameServer>, replicas: usize) -> Duration {
    let allocated: Vec<String> = servers(api)
        .await
        .into_iter()
        .filter(|gs| gs.state() == Some(GameServerState::Allocated) && gs.metadata.deletion_timestamp.is_none())
        .map(|gs| gs.name_any())
        .collect();
    futures::stream::iter(allocated)
        .for_each_concurrent(16, |name| async move {
            if let Err(error) = api.delete(&name, &DeleteParams::default()).await {
                eprintln!("delete {name}: {error}");
            }
        })
        .await;
    let started = Instant::now();
    loop {
        let all = servers(api).await;
        let ready = all.iter().filter(|gs| gs.state() == Some(GameServerState::Ready)).count();
        if all.len() == replicas && ready == replicas {
            break;
        }
        assert!(
            started.elapsed() < REFILL_TIMEOUT,
            "the fleet is not whole after {REFILL_TIMEOUT:?}: {ready} Ready of {} servers",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let whole = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    whole
}

/// The `q` quantile of `values` (nearest rank).
fn percentile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The other writes the API server answered during a row, per Allocated answer:
/// `fleets/status 1.02, events 1.00`.
fn other_writes(row: &Row) -> String {
    let per = |n: f64| n / row.allocated.max(1) as f64;
    let others: Vec<String> = row
        .all_writes
        .by_resource()
        .into_iter()
        .filter(|(resource, _)| resource != "gameservers")
        .map(|(resource, n)| format!("{resource} {:.2}", per(n)))
        .collect();
    if others.is_empty() { "none".into() } else { others.join(", ") }
}

fn print_row(row: &Row) {
    println!(
        "| {} | {} | {} | {:.1} | {:.1} | {} / {} | {} / {} / {} / {} | {:.2} ({:.0}) | {} | {} | {} |",
        row.target,
        row.clients,
        row.latencies.len(),
        row.rate(),
        row.steady_rate(),
        ms(row.percentile(0.50)),
        ms(row.percentile(0.99)),
        row.allocated,
        row.unallocated,
        row.contention,
        row.errors.len(),
        row.puts_per_allocation(),
        row.writes.count("PUT", Some("409")),
        row.duplicates,
        row.allocated_in_api,
        row.ready_left,
    );
}

fn number<T: std::str::FromStr>(arg: Option<String>, default: T, what: &str) -> T {
    arg.map_or(default, |a| a.parse().unwrap_or_else(|_| panic!("{what} is a number, not {a:?}")))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let replicas: usize = number(args.next(), 300, "REPLICAS");
    let allocations: usize = number(args.next(), replicas * 2 / 3, "ALLOCATIONS");
    let clients: Vec<usize> = args.next().map_or(vec![1, 16, 64], |list| {
        list.split(',').map(|c| c.trim().parse().unwrap_or_else(|_| panic!("CLIENTS: {c:?} is not a number"))).collect()
    });
    assert!(
        allocations < replicas,
        "ALLOCATIONS ({allocations}) must stay below REPLICAS ({replicas}) so Ready servers remain"
    );

    let nodes = u8::try_from(replicas / 100).unwrap_or(10).clamp(2, 10);
    let world = World::new(nodes, 250, Mode::Simulated).await;
    let raw = raw_updates(&world.client, &format!("{}-raw", world.namespace), RAW_WORKERS).await.rate;
    println!("raw GameServer update rate: {raw:.0}/s ({RAW_WORKERS} writers, {RAW_SECONDS} s)");
    let single = raw_updates(&world.client, &format!("{}-raw1", world.namespace), 1).await;
    println!(
        "one writer alone: {:.0} replaces/s, one replace p50 {:.1} ms, p99 {:.1} ms (the floor under a 1-client allocation)",
        single.rate, single.p50_ms, single.p99_ms
    );

    let dir = std::env::temp_dir().join(format!("stadion-kube-alloc-{}", world.run));
    let port = free_port();
    let (cert, key) = register_allocation_api(&world.client, &world.namespace, port, &dir).await;
    let listen = format!("127.0.0.1:{port}");
    let mut controller = stadion(
        &[
            "controller",
            "--metrics-addr",
            "127.0.0.1:0",
            "--allocation-api-addr",
            &listen,
            "--tls-cert",
            cert.to_str().expect("UTF-8 path"),
            "--tls-key",
            key.to_str().expect("UTF-8 path"),
            "--lease-namespace",
            &world.namespace,
            "--namespace",
            &world.namespace,
            "--sidecar-image",
            SIDECAR_IMAGE,
        ],
        &dir.join("controller.log"),
    );
    let config = dir.join("matchmaker.yaml");
    let queues = format!(
        "queues:\n  - name: bench\n    players: {{min: 2, max: 2}}\n    allocation:\n      namespace: {}\n      selectors:\n        - matchLabels: {{agones.dev/fleet: {FLEET}}}\n",
        world.namespace
    );
    std::fs::write(&config, queues).expect("matchmaker config");
    let mm_listen = format!("127.0.0.1:{}", free_port());
    let mut matchmaker = stadion(
        &[
            "matchmaker",
            "--config",
            config.to_str().expect("UTF-8 path"),
            "--listen",
            &mm_listen,
            "--namespace",
            &world.namespace,
        ],
        &dir.join("matchmaker.log"),
    );
    println!("logs: {}", dir.display());

    let fleets: Api<Fleet> = Api::namespaced(world.client.clone(), &world.namespace);
    let mut spec = serde_json::to_value(fleet(&world, FLEET, replicas as i32, "Packed", dynamic_udp())).expect("JSON");
    // Nothing pings in simulated Pods; health is not what this bench measures.
    spec["spec"]["template"]["spec"]["health"] = json!({"disabled": true});
    fleets.create(&PostParams::default(), &serde_json::from_value(spec).expect("a Fleet")).await.expect("the Fleet");
    let gameservers: Api<GameServer> = Api::namespaced(world.client.clone(), &world.namespace);
    let took = refill(&gameservers, replicas).await;
    println!("fleet of {replicas} Packed: all Ready {:.1} s after apply", took.as_secs_f64());

    eventually("the APIService to be Available", Duration::from_secs(120), || async {
        let service = api_services(&world.client).get(API_SERVICE).await.ok()?;
        let conditions = service.data["status"]["conditions"].as_array()?.clone();
        conditions.iter().any(|c| c["type"] == "Available" && c["status"] == "True").then_some(())
    })
    .await;
    let http = reqwest::Client::new();
    eventually("the matchmaker to answer /healthz", Duration::from_secs(60), || async {
        http.get(format!("http://{mm_listen}/healthz")).send().await.ok()?.status().is_success().then_some(())
    })
    .await;

    let targets = [
        Target::Aggregated { client: world.client.clone(), namespace: world.namespace.clone() },
        Target::Matchmaker {
            http: http.clone(),
            url: format!("http://{mm_listen}/gameserverallocation"),
            namespace: world.namespace.clone(),
        },
    ];
    println!("{allocations} allocations per row from a fleet of {replicas} Ready; raw update rate {raw:.0}/s");
    println!(
        "| path | clients | answers | allocated/s | steady /s | p50 / p99 ms | Allocated / UnAllocated / Contention / errors | PUTs per allocation (409s) | duplicates | Allocated in API | Ready left |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut seen = HashSet::new();
    let mut rows = Vec::new();
    for target in &targets {
        for &n in &clients {
            let _ = refill(&gameservers, replicas).await;
            let waited = kube_bench::quiet(&world.client).await;
            eprintln!("{} x{n}: API server quiet {:.1} s after the refill", target.name(), waited.as_secs_f64());
            let row = run_row(target, n, allocations, &world.client, &gameservers, &mut seen).await;
            print_row(&row);
            for error in row.errors.iter().take(3) {
                eprintln!("  {} x{n}: {error}", row.target);
            }
            rows.push(row);
        }
    }

    println!("other API writes per Allocated answer (everyone's, during the row):");
    for row in &rows {
        println!("  {} x{}: {}", row.target, row.clients, other_writes(row));
    }
    let best = rows.iter().map(Row::rate).fold(0.0, f64::max);
    let best_steady = rows.iter().map(Row::steady_rate).fold(0.0, f64::max);
    let light = rows.iter().filter(|r| r.clients == 1).map(|r| r.percentile(0.99)).max();
    let duplicates: usize = rows.iter().map(|r| r.duplicates).sum();
    let puts = rows.iter().map(Row::puts_per_allocation).fold(0.0, f64::max);
    println!("goal (issue #14): >= 85 % of the raw rate, 1-client p99 <= 25 ms, 0 duplicates, 1.0 PUT per allocation");
    println!(
        "measured: best {best:.1}/s = {:.0} % of raw ({best_steady:.1}/s = {:.0} % steady); 1-client p99 {} (worst path); {duplicates} duplicates; at most {puts:.2} PUTs per allocation",
        100.0 * best / raw,
        100.0 * best_steady / raw,
        light.map_or("not measured".into(), |p99| format!("{} ms", ms(p99)))
    );
    println!("beside one bare replace by one writer: p50 {:.1} ms, p99 {:.1} ms", single.p50_ms, single.p99_ms);

    for child in [&mut controller, &mut matchmaker] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = api_services(&world.client).delete(API_SERVICE, &DeleteParams::default()).await;
    world.clean_up().await;
}

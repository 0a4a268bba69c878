//! The matchmaker's benchmark (issue 16): each figure beside a limit measured in the same run,
//! printed as a markdown table (BENCHMARKS.md). The same command runs every store:
//!
//! ```text
//! cargo build --release -p stadion --bin stadion --example mmbench
//! target/release/examples/mmbench                      # embedded store, in memory
//! target/release/examples/mmbench --store journal      # embedded store with --state-dir
//! target/release/examples/mmbench --store journal --state-sync 1s   # synced once a second
//! target/release/examples/mmbench --store redis        # Redis store (its own redis-server)
//! ```
//!
//! 1. Ticket ingest (`POST /v1/tickets`, `--clients` clients) vs `GET /healthz` on the same server.
//! 2. Memory per searching ticket: RSS growth of `stadion up` over the ingested tickets.
//! 3. Ticket → assigned p50/p99 at 100 and 1,000 tickets/s with servers free.
//! 4. The longest `POST /v1/tickets` while a `--backlog` of searching tickets is matched every
//!    tick (tickets that keep widening, so every round visits all of them).
//!
//! Not part of `cargo test`: it needs a minute and a few hundred game processes.

#[allow(dead_code)]
#[path = "../bench/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "../bench/procs.rs"]
mod procs;
#[path = "../bench/report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use load::{ms, percentile};
use procs::{Proc, free_port, rss_bytes, wait_for};
use report::{FLEET, Row};
use serde_json::{Value, json};

/// Where the matchmaker keeps its tickets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Store {
    /// Embedded, in memory.
    Memory,
    /// Embedded, journaled in a `--state-dir`.
    Journal,
    /// Redis (`--redis-url`): a `redis-server` the bench starts on a free port unless
    /// `--redis-url` names one.
    Redis,
}

/// Options of the bench.
#[derive(Debug, Parser)]
struct Options {
    /// The `stadion` binary (default: the release build next to this bench).
    #[arg(long)]
    stadion: Option<PathBuf>,
    /// The ticket store under test.
    #[arg(long, value_enum, default_value_t = Store::Memory)]
    store: Store,
    /// With `--store journal`: `stadion up --state-sync` (`always`, the default, or a duration).
    #[arg(long, value_name = "always|DURATION", default_value = "always")]
    state_sync: String,
    /// With `--store redis`: an existing Redis (its matchmaker keys are overwritten) instead of
    /// a `redis-server` started for the run.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// Concurrent clients for the ingest rows.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Tickets submitted for the ingest and memory rows (they stay searching).
    #[arg(long, default_value_t = 50_000)]
    tickets: usize,
    /// Searching tickets matched every tick during the stall row.
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
    /// Ready servers for the latency rows (each pair of tickets takes one).
    #[arg(long, default_value_t = 600)]
    servers: usize,
    /// Seconds of tickets at 100/s.
    #[arg(long, default_value_t = 3.0)]
    slow_seconds: f64,
    /// Seconds of tickets at 1,000/s.
    #[arg(long, default_value_t = 0.8)]
    fast_seconds: f64,
    /// Seconds the stall probe posts tickets, one at a time, during the backlog's rounds.
    #[arg(long, default_value_t = 5.0)]
    probe_seconds: f64,
}

/// `bench`: pairs, allocated from the fleet. `hold`: a skill window that never opens, so its
/// tickets stay searching (and, fully widened, cost a round nothing). `backlog`: a window
/// that keeps widening (so every round visits every ticket) far too slowly to match tickets
/// a million apart.
const QUEUES: &str = "\
queues:
  - name: bench
    players: {min: 2, max: 2}
    allocation:
      selectors:
        - matchLabels:
            agones.dev/fleet: bench
    ticketTimeout: 60s
  - name: hold
    players: {min: 2, max: 2}
    skill: {attribute: skill, initialSpread: 0, widenPerSecond: 0, maxSpread: 0}
    ticketTimeout: 1h
  - name: backlog
    players: {min: 2, max: 2}
    skill: {attribute: skill, initialSpread: 0, widenPerSecond: 0.001, maxSpread: 1000000000}
    ticketTimeout: 1h
";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let stadion = options.stadion.clone().unwrap_or_else(procs::default_stadion);
    if !stadion.is_file() {
        bail!("{} not found: run `cargo build --release -p stadion` first (or pass --stadion)", stadion.display());
    }
    let scratch = std::env::temp_dir().join(format!("stadion-mmbench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let mut rows = Vec::new();
    let result = run(&stadion, &scratch, &options, &mut rows).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    if options.store == Store::Journal {
        println!("\nstore: {:?}, --state-sync {}\n", options.store, options.state_sync);
    } else {
        println!("\nstore: {:?}\n", options.store);
    }
    report::print_table("limit", &rows);
    Ok(())
}

async fn run(stadion: &Path, scratch: &Path, options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    std::fs::write(scratch.join("fleet.yaml"), FLEET.replace("REPLICAS", &options.servers.to_string()))?;
    std::fs::write(scratch.join("matchmaker.yaml"), QUEUES)?;
    let admin = format!("127.0.0.1:{}", free_port()?);
    let api = format!("127.0.0.1:{}", free_port()?);
    let mut args: Vec<String> =
        ["up", "--quiet", "--game-output", "none", "--poll-ms", "100"].map(String::from).to_vec();
    args.extend(["--admin-addr".to_owned(), admin.clone(), "--port-range".to_owned(), "27000-28999".to_owned()]);
    args.extend(["--matchmaker-addr".to_owned(), api.clone()]);
    if options.store == Store::Journal {
        args.extend(["--state-dir".to_owned(), scratch.join("state").display().to_string()]);
        args.extend(["--state-sync".to_owned(), options.state_sync.clone()]);
    }
    // A redis-server for the run, kept until it ends (dropping it stops the server).
    let own_redis = match (options.store, &options.redis_url) {
        (Store::Redis, None) => Some(start_redis(scratch).await?),
        _ => None,
    };
    if options.store == Store::Redis {
        let url = options.redis_url.clone().or_else(|| own_redis.as_ref().map(|(_, url)| url.clone()));
        args.extend(["--redis-url".to_owned(), url.unwrap_or_default()]);
    }
    args.push(scratch.display().to_string());
    let env = [("RUST_LOG".to_owned(), "warn".to_owned())];
    let mut up = Proc::spawn(stadion, &args, &env, Some(&scratch.join("up.log")))?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let (admin, api) = (format!("http://{admin}"), format!("http://{api}"));
    eprintln!("mmbench: waiting for {} Ready servers…", options.servers);
    let servers = options.servers as i64;
    wait_for(&mut up, Duration::from_secs(600), "the fleet Ready", || async {
        let Ok(fleets) = http.get(format!("{admin}/api/fleets")).send().await else { return false };
        let fleets: Value = fleets.json().await.unwrap_or_default();
        fleets.as_array().into_iter().flatten().any(|f| f["name"] == "bench" && f["ready"].as_i64() == Some(servers))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    eprintln!("mmbench: {} tickets from {} clients…", options.tickets, options.clients);
    let rss_before = rss_bytes(up.pid());
    let ingest = post_many(&http, &api, "hold", 0, options.tickets, options.clients).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = rss_bytes(up.pid());
    let (client, url) = (http.clone(), format!("{api}/healthz"));
    let health = load::closed_loop(options.tickets, options.clients, move |_| {
        let request = client.get(&url).send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    if ingest.failed > 0 {
        eprintln!("mmbench: {} tickets refused", ingest.failed);
    }
    rows.push(Row {
        what: format!("tickets/s, `POST /v1/tickets`, {} clients", options.clients),
        stadion: format!(
            "{:.0}/s (p50 {}) = {:.0} %",
            ingest.per_second(),
            ms(percentile(&ingest.latencies, 0.5)),
            100.0 * ingest.per_second() / health.per_second()
        ),
        limit: format!("{:.0}/s (p50 {})", health.per_second(), ms(percentile(&health.latencies, 0.5))),
        limit_what: "`GET /healthz` on the same server, same clients".to_owned(),
    });
    let per_ticket = rss_after.saturating_sub(rss_before) as f64 / ingest.ok.max(1) as f64;
    rows.push(Row {
        what: format!("memory per searching ticket ({} tickets)", ingest.ok),
        stadion: format!("{:.2} KiB", per_ticket / 1024.0),
        limit: format!("{:.2} KiB", ticket_json_bytes() as f64 / 1024.0),
        limit_what: "the ticket's own JSON as the API returns it".to_owned(),
    });

    for (rate, seconds) in [(100.0, options.slow_seconds), (1000.0, options.fast_seconds)] {
        eprintln!("mmbench: tickets at {rate}/s for {seconds} s…");
        let (sent, latencies) = load::ticket_to_assigned(&http, &api, rate, Duration::from_secs_f64(seconds)).await;
        rows.push(Row {
            what: format!("ticket → assigned at {rate:.0} tickets/s ({}/{sent} assigned)", latencies.len()),
            stadion: format!("p50 {} · p99 {}", ms(percentile(&latencies, 0.5)), ms(percentile(&latencies, 0.99))),
            limit: format!(
                "p50 {} · p99 {}",
                ms(percentile(&health.latencies, 0.5)),
                ms(percentile(&health.latencies, 0.99))
            ),
            limit_what: "one `/healthz` round trip under 64 clients".to_owned(),
        });
    }

    eprintln!("mmbench: a backlog of {} widening tickets…", options.backlog);
    let backlog = post_many(&http, &api, "backlog", 1, options.backlog, options.clients).await;
    eprintln!("mmbench: probing POST latency for {} s while the backlog is matched…", options.probe_seconds);
    // Probes on a connection of their own: a pooled one the load opened but never used may
    // already be closed by the server's header-read timeout, and a POST is not retried.
    let single = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
    let probe = probe(&single, &api, Duration::from_secs_f64(options.probe_seconds)).await?;
    let idle = probe_idle_healthz(&single, &api, probe.len()).await;
    rows.push(Row {
        what: format!("longest `POST /v1/tickets` while {} searching tickets are matched every tick", backlog.ok),
        stadion: format!(
            "{} (p99 {}, {} posts)",
            ms(percentile(&probe, 1.0)),
            ms(percentile(&probe, 0.99)),
            probe.len()
        ),
        limit: format!("{} (p99 {})", ms(percentile(&idle, 1.0)), ms(percentile(&idle, 0.99))),
        limit_what: "longest `GET /healthz` on the same server meanwhile, one client".to_owned(),
    });
    if options.store == Store::Journal && options.state_sync == "always" {
        // A journaled POST is answered once its line is synced: the disk's own sync is a floor.
        let syncs = probe_sync(&scratch.join("state"), Duration::from_secs_f64(options.probe_seconds)).await?;
        rows.push(Row {
            what: "longest append + `fdatasync` of one ticket line (journal store's floor)".to_owned(),
            stadion: "—".to_owned(),
            limit: format!(
                "{} (p99 {}, {} syncs)",
                ms(percentile(&syncs, 1.0)),
                ms(percentile(&syncs, 0.99)),
                syncs.len()
            ),
            limit_what: "one writer appending to a file in the state folder right after the probe".to_owned(),
        });
    }
    up.terminate();
    up.stop(Duration::from_secs(60));
    Ok(())
}

/// `count` searching tickets in `queue`, a million skill points apart, from `clients` clients.
async fn post_many(
    http: &reqwest::Client,
    api: &str,
    queue: &'static str,
    series: usize,
    count: usize,
    clients: usize,
) -> load::Rate {
    let (client, url) = (http.clone(), Arc::new(format!("{api}/v1/tickets")));
    // The first few refusals are shown, with why.
    let shown = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    load::closed_loop(count, clients, move |index| {
        let body = json!({
            "queue": queue,
            "players": [{"id": format!("{queue}-{series}-{index}"), "attributes": {"skill": index as f64 * 1e6}}],
        });
        let request = client.post(url.as_str()).json(&body).send();
        let shown = shown.clone();
        async move {
            let why = match request.await {
                Ok(response) if response.status().as_u16() == 201 => return true,
                Ok(response) => format!("{}: {}", response.status(), response.text().await.unwrap_or_default()),
                Err(error) => format!("{error:?}"),
            };
            if shown.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 5 {
                eprintln!("mmbench: ticket {index} refused: {why}");
            }
            false
        }
    })
    .await
}

/// The size of a typical searching ticket's JSON.
fn ticket_json_bytes() -> usize {
    json!({
        "id": "7f9c1a52-3a0e-4c53-9d43-4f8b2a1d6e10", "queue": "hold", "state": "searching",
        "players": [{"id": "hold-0-12345", "attributes": {"skill": 12345000000.0}}],
        "createdAt": "2026-12-01T16:30:00.123456Z", "updatedAt": "2026-12-01T16:30:00.123456Z",
    })
    .to_string()
    .len()
}

/// One client posting `hold` tickets back to back for `duration`: each POST's latency.
async fn probe(http: &reqwest::Client, api: &str, duration: Duration) -> anyhow::Result<Vec<Duration>> {
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < duration {
        let body = json!({"queue": "hold", "players": [{"id": format!("probe-{}", latencies.len()), "attributes": {"skill": -1e6 * (latencies.len() as f64 + 1.0)}}]});
        let sent = Instant::now();
        let response = http.post(format!("{api}/v1/tickets")).json(&body).send().await.context("probe POST")?;
        let took = sent.elapsed();
        if response.status().as_u16() != 201 {
            bail!("probe ticket refused: {}", response.text().await.unwrap_or_default());
        }
        latencies.push(took);
    }
    Ok(latencies)
}

/// `count` `GET /healthz` round trips from one client, for the stall row's limit.
async fn probe_idle_healthz(http: &reqwest::Client, api: &str, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let sent = Instant::now();
        if http.get(format!("{api}/healthz")).send().await.is_ok() {
            latencies.push(sent.elapsed());
        }
    }
    latencies
}

/// Back-to-back appends of a ticket-sized line, each followed by `fdatasync`, in `dir` for
/// `duration`: each one's latency.
async fn probe_sync(dir: &Path, duration: Duration) -> anyhow::Result<Vec<Duration>> {
    use std::io::Write as _;
    let path = dir.join("mmbench-sync-probe");
    let task = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Duration>> {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let line = [b'x'; 400];
        let (started, mut latencies) = (Instant::now(), Vec::new());
        while started.elapsed() < duration {
            let sent = Instant::now();
            file.write_all(&line)?;
            file.sync_data()?;
            latencies.push(sent.elapsed());
        }
        std::fs::remove_file(&path)?;
        Ok(latencies)
    });
    task.await?
}

/// A `redis-server` without persistence on a free port, its files in `scratch`.
async fn start_redis(scratch: &Path) -> anyhow::Result<(Proc, String)> {
    let port = free_port()?;
    let args: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        .iter()
        .map(|a| (*a).to_owned())
        .chain(["--dir".to_owned(), scratch.display().to_string()])
        .collect();
    let mut server = Proc::spawn(Path::new("redis-server"), &args, &[], Some(&scratch.join("redis.log")))
        .context("starting redis-server (apt-get install redis-server)")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if server.exited() || Instant::now() > deadline {
            bail!("redis-server did not start on port {port}; see {}", scratch.join("redis.log").display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((server, format!("redis://127.0.0.1:{port}/0")))
}

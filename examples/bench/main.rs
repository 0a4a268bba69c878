//! Stadion's end-to-end benchmark on the local runtime, each number beside its physical limit
//! measured in the same run, printed as a markdown table (issue 7, BENCHMARKS.md).
//!
//! ```text
//! cargo build --release -p stadion && cargo run --release --example bench
//! ```
//!
//! 1. A fleet of `--servers` real game processes becoming Ready under `stadion up`, vs spawning
//!    the same processes by hand against one shared SDK sidecar until each answers UDP.
//! 2. Memory of `stadion up` per 100 servers (RSS growth from an empty fleet), vs one game process.
//! 3. Allocations per second through `POST /v1/allocations` and Agones' `POST /gameserverallocation`,
//!    vs `GET /healthz` on the same server.
//! 4. Ticket → assigned latency (p50/p99) at 100 and 1,000 tickets/s, vs the `/healthz` round trip.
//! 5. Allocation latency next to a server hammered by SDK writes, vs the same with it quiet.
//!
//! Not part of `cargo test`: it needs minutes and a machine that can hold the fleet.

mod hot;
mod load;
mod procs;
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use load::{ms, percentile};
use procs::{Proc, free_port, pss_bytes, rss_bytes, wait_for};
use report::{FLEET, Row};
use serde_json::{Value, json};

/// Options of the bench.
#[derive(Debug, Parser)]
struct Options {
    /// The `stadion` binary (default: the release build next to this bench).
    #[arg(long)]
    stadion: Option<PathBuf>,
    /// Fleet size.
    #[arg(long, default_value_t = 1000)]
    servers: usize,
    /// Allocations made through the HTTP API (each takes one Ready server).
    #[arg(long, default_value_t = 300)]
    allocations: usize,
    /// Allocations made through Agones' REST allocation API (`POST /gameserverallocation`).
    #[arg(long, default_value_t = 100)]
    agones_allocations: usize,
    /// Concurrent HTTP clients for the request-rate rows.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds of tickets at 100/s (each pair takes one server).
    #[arg(long, default_value_t = 3.0)]
    slow_seconds: f64,
    /// Seconds of tickets at 1,000/s.
    #[arg(long, default_value_t = 0.8)]
    fast_seconds: f64,
    /// Skip the matchmaker rows (allocations, tickets and the hot neighbour).
    #[arg(long)]
    no_matchmaker: bool,
    /// Allocations per hot-neighbour row (0 skips them): a second fleet of twice as many
    /// servers is allocated from with a third fleet's server quiet, then under SDK writes.
    #[arg(long, default_value_t = 100)]
    hot_allocations: usize,
}

const QUEUES: &str = "\
queues:
  - name: bench
    players:
      min: 2
      max: 2
    allocation:
      selectors:
        - matchLabels:
            agones.dev/fleet: bench
    ticketTimeout: 60s
";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let stadion = options.stadion.clone().unwrap_or_else(procs::default_stadion);
    if !stadion.is_file() {
        bail!("{} not found: run `cargo build --release -p stadion` first (or pass --stadion)", stadion.display());
    }
    let scratch = std::env::temp_dir().join(format!("stadion-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let mut rows = Vec::new();
    let (baseline, game_pss) = baseline_spawn(&stadion, options.servers).await?;
    let result = with_up(&stadion, &scratch, &options, baseline, game_pss, &mut rows).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    println!();
    report::print_table("physical limit", &rows);
    Ok(())
}

/// Spawns `servers` game processes with no orchestration, all on one `stadion sdk-server
/// --local`, and times them until each answers UDP. Returns that time and one game's PSS.
async fn baseline_spawn(stadion: &Path, servers: usize) -> anyhow::Result<(Duration, u64)> {
    eprintln!("bench: spawning {servers} game processes without orchestration…");
    let (grpc, http) = (free_port()?, free_port()?);
    let sidecar_args: Vec<String> =
        ["sdk-server", "--local", "--grpc-port", &grpc.to_string(), "--http-port", &http.to_string()]
            .map(String::from)
            .to_vec();
    let _sidecar = Proc::spawn(stadion, &sidecar_args, &[], None)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ports: Vec<u16> = (0..servers).map(|i| 25000 + i as u16).collect();
    let started = Instant::now();
    let mut games = Vec::with_capacity(servers);
    for port in &ports {
        let env = [
            ("AGONES_SDK_GRPC_PORT".to_owned(), grpc.to_string()),
            ("STADION_PORT_DEFAULT".to_owned(), port.to_string()),
            ("RUST_LOG".to_owned(), "warn".to_owned()),
        ];
        let args = ["simple-game-server", "--health-interval-ms", "5000"].map(String::from);
        games.push(Proc::spawn(stadion, &args, &env, None)?);
    }
    let probe_ports = ports.clone();
    let answered =
        tokio::task::spawn_blocking(move || load::wait_udp_answers(&probe_ports, Duration::from_secs(300))).await??;
    let elapsed = started.elapsed();
    if answered < servers {
        bail!("only {answered} of {servers} hand-spawned games answered");
    }
    let pss = pss_bytes(games[games.len() / 2].pid());
    for game in &games {
        game.terminate();
    }
    drop(games);
    Ok((elapsed, pss))
}

async fn with_up(
    stadion: &Path,
    scratch: &Path,
    options: &Options,
    baseline: Duration,
    game_pss: u64,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let fleet = scratch.join("fleet.yaml");
    std::fs::write(&fleet, FLEET.replace("REPLICAS", "0"))?;
    if !options.no_matchmaker {
        // `up` runs the matchmaker for a queue config found among its paths.
        std::fs::write(scratch.join("matchmaker.yaml"), QUEUES)?;
    }
    let admin = format!("127.0.0.1:{}", free_port()?);
    let api = format!("127.0.0.1:{}", free_port()?);
    let mut args: Vec<String> =
        ["up", "--quiet", "--game-output", "none", "--poll-ms", "100"].map(String::from).to_vec();
    args.extend(["--admin-addr".to_owned(), admin.clone(), "--port-range".to_owned(), "27000-28999".to_owned()]);
    args.extend(["--matchmaker-addr".to_owned(), api.clone()]);
    args.push(scratch.display().to_string());
    let env = [("RUST_LOG".to_owned(), "warn".to_owned())];
    let mut up = Proc::spawn(stadion, &args, &env, Some(&scratch.join("up.log")))?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let admin_url = format!("http://{admin}");
    wait_for(&mut up, Duration::from_secs(30), "the admin endpoint", || async {
        http.get(format!("{admin_url}/healthz")).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_empty = rss_bytes(up.pid());

    eprintln!("bench: scaling the fleet to {} under stadion up…", options.servers);
    std::fs::write(&fleet, FLEET.replace("REPLICAS", &options.servers.to_string()))?;
    let started = Instant::now();
    let servers = options.servers as i64;
    wait_for(&mut up, Duration::from_secs(600), "the fleet Ready", || async {
        let fleets = http.get(format!("{admin_url}/api/fleets")).send().await;
        let Ok(fleets) = fleets else { return false };
        let fleets: Value = fleets.json().await.unwrap_or_default();
        fleets.as_array().into_iter().flatten().any(|f| f["name"] == "bench" && f["ready"].as_i64() == Some(servers))
    })
    .await?;
    let ready_time = started.elapsed();
    let rss_full = rss_bytes(up.pid());
    rows.push(Row {
        what: format!("{} servers from applied to Ready", options.servers),
        stadion: format!("{:.2} s", ready_time.as_secs_f64()),
        limit: format!("{:.2} s", baseline.as_secs_f64()),
        limit_what: "same game processes spawned by hand on one shared sidecar, until each answers UDP".to_owned(),
    });
    let per_100 = rss_full.saturating_sub(rss_empty) as f64 / (options.servers as f64 / 100.0);
    rows.push(Row {
        what: "RSS of `stadion up` per 100 servers".to_owned(),
        stadion: format!("{:.1} MiB (empty: {:.1} MiB)", per_100 / 1048576.0, rss_empty as f64 / 1048576.0),
        limit: format!("{:.1} MiB", game_pss as f64 * 100.0 / 1048576.0),
        limit_what: "100 game processes themselves (PSS of one × 100)".to_owned(),
    });

    if !options.no_matchmaker {
        matchmaker_rows(&http, &format!("http://{api}"), options, rows).await?;
        if options.hot_allocations > 0 {
            let (api, allocations) = (format!("http://{api}"), options.hot_allocations);
            hot::rows(&http, scratch, &admin_url, &api, allocations, options.concurrency, rows).await?;
        }
    }
    up.terminate();
    let stop_started = Instant::now();
    up.stop(Duration::from_secs(60));
    eprintln!("bench: stadion up stopped {} servers in {:.2} s", options.servers, stop_started.elapsed().as_secs_f64());
    Ok(())
}

async fn matchmaker_rows(
    http: &reqwest::Client,
    api: &str,
    options: &Options,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    eprintln!("bench: {} allocations through the HTTP API…", options.allocations);
    let body = json!({"spec": {"selectors": [{"matchLabels": {"agones.dev/fleet": "bench"}}]}});
    let (client, url) = (http.clone(), format!("{api}/v1/allocations"));
    let allocations = load::closed_loop(options.allocations, options.concurrency, move |_| {
        let request = client.post(&url).json(&body).send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    let (client, url) = (http.clone(), format!("{api}/healthz"));
    let health = load::closed_loop(options.allocations.max(2000), options.concurrency, move |_| {
        let request = client.get(&url).send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    if allocations.failed > 0 {
        eprintln!("bench: {} allocations failed", allocations.failed);
    }
    rows.push(Row {
        what: format!("allocations/s, `POST /v1/allocations`, {} clients", options.concurrency),
        stadion: format!("{:.0}/s (p50 {})", allocations.per_second(), ms(percentile(&allocations.latencies, 0.5))),
        limit: format!("{:.0}/s (p50 {})", health.per_second(), ms(percentile(&health.latencies, 0.5))),
        limit_what: "`GET /healthz` on the same server, same clients".to_owned(),
    });

    eprintln!("bench: {} allocations through Agones' REST allocation API…", options.agones_allocations);
    let body = json!({"namespace": "default", "gameServerSelectors": [{"matchLabels": {"agones.dev/fleet": "bench"}}]});
    let (client, url) = (http.clone(), format!("{api}/gameserverallocation"));
    let agones = load::closed_loop(options.agones_allocations, options.concurrency, move |_| {
        let request = client.post(&url).json(&body).send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    if agones.failed > 0 {
        eprintln!("bench: {} Agones allocations failed", agones.failed);
    }
    rows.push(Row {
        what: format!("allocations/s, Agones' `POST /gameserverallocation`, {} clients", options.concurrency),
        stadion: format!("{:.0}/s (p50 {})", agones.per_second(), ms(percentile(&agones.latencies, 0.5))),
        limit: format!("{:.0}/s (p50 {})", health.per_second(), ms(percentile(&health.latencies, 0.5))),
        limit_what: "`GET /healthz` on the same server, same clients".to_owned(),
    });

    for (rate, seconds) in [(100.0, options.slow_seconds), (1000.0, options.fast_seconds)] {
        eprintln!("bench: tickets at {rate}/s for {seconds} s…");
        let (sent, latencies) = load::ticket_to_assigned(http, api, rate, Duration::from_secs_f64(seconds)).await;
        rows.push(Row {
            what: format!("ticket → assigned at {rate:.0} tickets/s ({}/{sent} assigned)", latencies.len()),
            stadion: format!("p50 {} · p99 {}", ms(percentile(&latencies, 0.5)), ms(percentile(&latencies, 0.99))),
            limit: format!(
                "p50 {} · p99 {}",
                ms(percentile(&health.latencies, 0.5)),
                ms(percentile(&health.latencies, 0.99))
            ),
            limit_what: "one `/healthz` round trip (matching also waits for the 100 ms tick)".to_owned(),
        });
    }
    Ok(())
}

//! Scale check of the local runtime (outside `cargo test`): brings up a Fleet of N real game
//! processes and reports the time until all are Ready and the runtime process's peak memory.
//!
//! ```text
//! cargo build --release -p stadion-controller --bin stadion-test-game --example scale
//! target/release/examples/scale [REPLICAS=1000] [GAME=<next to this binary>/stadion-test-game]
//! ```
//!
//! The game is `stadion-test-game` (the SDK client: connect, Ready, health pings every 2 s).
//! Peak memory is `VmHWM` of this process (the store, controllers and a thousand in-process
//! sidecars); the games' own memory is reported separately as their summed `VmRSS`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use stadion_controller::local::LocalRuntime;
use stadion_controller::local::runtime::{Manifest, RuntimeConfig};
use stadion_controller::local::store::Selector;
use stadion_controller::local::supervisor::OutputSink;
use stadion_core::ports::PortRanges;
use stadion_crds::manifest::parse_documents;
use stadion_crds::{GameServer, GameServerState};

fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn fleet(replicas: usize, game: &str) -> String {
    format!(
        r#"apiVersion: agones.dev/v1
kind: Fleet
metadata:
  name: scale
spec:
  replicas: {replicas}
  template:
    spec:
      ports:
        - name: default
          containerPort: 7654
      template:
        spec:
          containers:
            - name: game
              command: [{game:?}]
              args: ["--health-ms", "2000"]
"#
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let replicas: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(1000);
    let game = match args.next() {
        Some(game) => PathBuf::from(game),
        None => std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .ok_or("no binary folder")?
            .join("stadion-test-game"),
    };
    if !game.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build -p stadion-controller --bin stadion-test-game`",
            game.display()
        )
        .into());
    }
    let config = RuntimeConfig {
        output: OutputSink::Discard,
        port_ranges: PortRanges::new().with("default", 20000, 29999)?,
        ..RuntimeConfig::default()
    };
    let runtime = LocalRuntime::start(config)?;
    let manifests: Vec<Manifest> = parse_documents(&fleet(replicas, &game.to_string_lossy()), "scale.yaml")?
        .into_iter()
        .map(|resource| Manifest { resource, base_dir: PathBuf::from("."), source: "scale.yaml".into() })
        .collect();
    let started = Instant::now();
    runtime.apply(&manifests, false)?;
    let api = runtime.store().api::<GameServer>();
    let mut last_report = Instant::now();
    let ready_after = loop {
        let ready = api
            .list(None, &Selector::everything())
            .iter()
            .filter(|gs| gs.state() == Some(GameServerState::Ready))
            .count();
        if ready >= replicas {
            break started.elapsed();
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("{:>6.1} s: {ready}/{replicas} Ready", started.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("only {ready}/{replicas} Ready after 10 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Let the steady state (health pings, watches) run for a moment before measuring memory.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let peak = status_kib("self", "VmHWM:").unwrap_or_default();
    let games: Vec<u32> = api
        .list(None, &Selector::everything())
        .iter()
        .filter_map(|gs| runtime.process_id(gs.namespace(), gs.name()))
        .collect();
    let game_rss: u64 = games.iter().filter_map(|pid| status_kib(&pid.to_string(), "VmRSS:")).sum();
    println!("replicas: {replicas}");
    println!("time to all Ready: {:.2} s", ready_after.as_secs_f64());
    println!("runtime peak RSS (VmHWM): {:.1} MiB", peak as f64 / 1024.0);
    println!("game processes: {} using {:.1} MiB RSS in total", games.len(), game_rss as f64 / 1024.0);
    let stopping = Instant::now();
    runtime.shutdown().await;
    println!("shutdown of all games: {:.2} s", stopping.elapsed().as_secs_f64());
    Ok(())
}

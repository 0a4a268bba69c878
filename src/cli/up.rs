//! `stadion up`: runs the manifests' fleets on this machine with the local runtime, re-applies
//! them when the files change, serves the read-only admin endpoint, and runs the matchmaker
//! over the same runtime when a queue configuration is given or found among the paths.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use stadion_controller::local::files::{Fingerprint, SETTLE, SETTLE_LOOKS, load_all, settled};
use stadion_controller::local::runtime::{ApplyReport, DEFAULT_ADDRESS, RuntimeConfig};
use stadion_controller::local::sandbox::SandboxCommand;
use stadion_controller::local::supervisor::OutputSink;
use stadion_controller::local::{LocalRuntime, Snapshot, admin};
use stadion_core::ports::PortRanges;
use stadion_crds::allocation_ttl::AllocationTtl;
use stadion_matchmaker::{Matchmaker, MatchmakerConfig};

use super::config_reload::{self, ConfigWatch, Reload};

/// Where the games' stdout/stderr go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GameOutput {
    /// On stderr, each line prefixed with `[<gameserver>]`.
    Prefixed,
    /// As log events (with `gameserver` and `stream` fields).
    Log,
    /// Dropped.
    None,
}

/// Flags of `stadion up`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest files, or folders whose *.yaml / *.yml files are read (GameServer,
    /// GameServerSet, Fleet, FleetAutoscaler; files without `kind` are skipped).
    #[arg(required = true, value_name = "FILE_OR_DIR")]
    pub paths: Vec<PathBuf>,
    /// Address given to players (`status.address`); a LAN address lets other machines join.
    #[arg(long, env = "STADION_ADDRESS", default_value = DEFAULT_ADDRESS)]
    pub address: String,
    /// Where the read-only JSON admin endpoint listens (`/api/fleets`, `/api/gameservers`,
    /// `/api/gameserversets`).
    #[arg(long, env = "STADION_ADMIN_ADDR", default_value = "127.0.0.1:9500", value_parser = super::socket_addr)]
    pub admin_addr: SocketAddr,
    /// No progress lines (game output is set with --game-output).
    #[arg(long, env = "STADION_QUIET", value_parser = super::boolish())]
    pub quiet: bool,
    /// Where game processes' output goes.
    #[arg(long, env = "STADION_GAME_OUTPUT", value_enum, default_value_t = GameOutput::Prefixed)]
    pub game_output: GameOutput,
    /// How long a game gets to exit after SIGTERM before it is killed: seconds (`5`) or a
    /// duration (`30s`, `1m30s`, `500ms`).
    #[arg(
        long = "grace-period",
        alias = "grace-seconds",
        env = "STADION_GRACE_SECONDS",
        value_name = "DURATION",
        default_value = "5",
        value_parser = super::duration_or_seconds
    )]
    pub grace_period: Duration,
    /// Host ports for Dynamic and Passthrough ports, `MIN-MAX`.
    #[arg(long, env = "STADION_PORT_RANGE", default_value = "7000-8000")]
    pub port_range: String,
    /// How often to check the manifests for changes and refresh progress: milliseconds (`250`)
    /// or a duration (`250ms`, `2s`).
    #[arg(
        long = "poll-interval",
        alias = "poll-ms",
        env = "STADION_POLL_MS",
        value_name = "DURATION",
        default_value = "1000",
        value_parser = super::duration_or_millis
    )]
    pub poll_interval: Duration,
    /// Matchmaker queue configuration. When unset, a YAML file among the paths whose top level
    /// has `queues:` (and no `kind:`) is used; with none, no matchmaker runs.
    #[arg(long, env = "STADION_MATCHMAKER_CONFIG", value_name = "FILE")]
    pub matchmaker_config: Option<PathBuf>,
    /// Where the matchmaker's HTTP API listens (`/v1/tickets`, `/v1/allocations`).
    #[arg(long, env = "STADION_MATCHMAKER_ADDR", default_value = "127.0.0.1:9600", value_parser = super::socket_addr)]
    pub matchmaker_addr: SocketAddr,
    /// Keep the matchmaker's tickets and waiting matches in a journal in this folder, so a
    /// restart of `up` resumes them (overrides the queue configuration's `stateDir`).
    #[arg(long, env = "STADION_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// When the journal in `--state-dir` is synced to disk (overrides the config's
    /// `stateSync`): `always` (the default: each acknowledged ticket survives a crash of the
    /// machine) or a duration such as `1s` (answered once written, so it survives a crash of
    /// the process; a crash of the machine loses at most that long).
    #[arg(long, env = "STADION_STATE_SYNC", value_name = "always|DURATION")]
    pub state_sync: Option<stadion_matchmaker::config::StateSync>,
    /// Keep the matchmaker's tickets and waiting matches in Redis at this URL
    /// (`redis://127.0.0.1:6379/0`) instead, so a restart of `up` resumes them (overrides the
    /// queue configuration's `redis`). Cannot be combined with `--state-dir`.
    #[arg(long, env = "STADION_REDIS_URL", value_name = "URL", conflicts_with = "state_dir")]
    pub redis_url: Option<String>,
    /// Shut an Allocated server down once its last allocation is this old and no players are
    /// connected (`90s`, `5m`, `1h30m`, seconds, or `off`). A server's
    /// `stadion.dev/allocation-ttl` annotation wins over this.
    #[arg(long, env = "STADION_ALLOCATION_TTL", value_name = "DURATION", default_value = "off")]
    pub allocation_ttl: AllocationTtl,
    /// `network` runs each game in its own network namespace, as in a pod: its sidecar on the
    /// spec's SDK ports (9357/9358) reachable only from inside, the game on its containerPort,
    /// players through its host port. Needs unprivileged user namespaces (Linux).
    #[arg(long, env = "STADION_ISOLATION", value_enum, default_value_t = Isolation::None)]
    pub isolation: Isolation,
}

/// How games are isolated from each other and from the host (`--isolation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    /// Games share the host's network; every sidecar listens on a loopback port of its own.
    None,
    /// Each game in its own network namespace, its sidecar reachable only from there.
    Network,
}

/// Runs `stadion up` until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::init_tracing(false, "warn");
    raise_open_file_limit();
    let port_ranges = match parse_port_range(&args.port_range) {
        Ok(ranges) => ranges,
        Err(error) => return Ok(usage_error(&format!("{error:#}"))),
    };
    let manifests = match load_all(&args.paths) {
        Ok(loaded) => {
            report_skipped(&loaded.skipped);
            loaded.manifests
        }
        Err(error) => return Ok(usage_error(&error)),
    };
    let queues = match matchmaker_config(&args) {
        Ok(queues) => queues,
        Err(error) => return Ok(usage_error(&format!("{error:#}"))),
    };
    let network_isolation = match args.isolation {
        Isolation::None => None,
        Isolation::Network => match network_sandbox() {
            Ok(sandbox) => Some(sandbox),
            Err(error) => return Ok(usage_error(&format!("--isolation network: {error}"))),
        },
    };
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start tokio")?;
    tokio.block_on(async move {
        let admin = admin::bind(args.admin_addr).await?;
        let output = match args.game_output {
            GameOutput::Prefixed => OutputSink::stderr(),
            GameOutput::Log => OutputSink::Tracing,
            GameOutput::None => OutputSink::Discard,
        };
        let config = RuntimeConfig {
            address: args.address.clone(),
            port_ranges,
            grace: args.grace_period,
            output,
            base_dir: std::env::current_dir().context("cannot read the current directory")?,
            allocation_ttl: args.allocation_ttl,
            orphan_guard: orphan_guard(args.grace_period),
            network_isolation,
            ..RuntimeConfig::default()
        };
        let runtime = LocalRuntime::start(config)?;
        match runtime.apply(&manifests, true) {
            Ok(report) => describe(&report, args.quiet),
            Err(error) => {
                runtime.shutdown().await;
                return Ok(usage_error(&error));
            }
        }
        // Built before the admin endpoint, so the dashboard shows its panel from the start.
        let matchmaker = match queues {
            Some((path, config)) => {
                let listener = tokio::net::TcpListener::bind(args.matchmaker_addr)
                    .await
                    .with_context(|| format!("--matchmaker-addr {}: cannot listen", args.matchmaker_addr))?;
                let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
                if !args.quiet {
                    explain_matchmaker(&address, &path, &config);
                }
                match Matchmaker::open(config, Arc::new(runtime.allocator())).await {
                    Ok(matchmaker) => Some((path, listener, matchmaker)),
                    // An unreachable or busy store is the operator's to fix, like a bad flag.
                    Err(error @ stadion_matchmaker::Error::Store(_)) => {
                        runtime.shutdown().await;
                        return Ok(usage_error(&error));
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            None => None,
        };
        let mut admin_state = admin::AdminState::of(&runtime);
        if let Some((_, _, matchmaker)) = &matchmaker {
            admin_state = admin_state.with_matchmaker(Arc::new(super::matchmaker_feed::Feed(matchmaker.clone())));
        }
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_address = admin.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let admin_task = tokio::spawn(admin::serve(admin, admin_state, async {
            let _ = admin_stopped.await;
        }));
        if !args.quiet {
            eprintln!("stadion up: dashboard on http://{admin_address}/ (JSON under /api/fleets) — Ctrl-C to stop");
        }
        let (stop_matchmaker, matchmaker_stopped) = tokio::sync::oneshot::channel::<()>();
        let mut reload = None;
        let matchmaker_task = match matchmaker {
            Some((path, listener, matchmaker)) => {
                reload = Some((ConfigWatch::new(&path), matchmaker.clone()));
                Some(tokio::spawn(stadion_matchmaker::http::serve_listener(listener, matchmaker, async {
                    let _ = matchmaker_stopped.await;
                })))
            }
            None => None,
        };
        watch(&runtime, &args, reload).await?;
        if !args.quiet {
            eprintln!("stadion up: stopping {} game server processes…", runtime.running_processes());
        }
        let _ = stop_matchmaker.send(());
        if let Some(task) = matchmaker_task
            && let Ok(Err(error)) = task.await
        {
            eprintln!("stadion up: matchmaker: {error}");
        }
        let _ = stop_admin.send(());
        let _ = admin_task.await;
        runtime.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Until a stop signal: re-applies changed manifests and matchmaker configuration, and prints
/// progress.
async fn watch(
    runtime: &LocalRuntime,
    args: &Args,
    mut matchmaker: Option<(ConfigWatch, Matchmaker)>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut tick = tokio::time::interval(args.poll_interval.max(Duration::from_millis(50)));
    let mut fingerprint = Fingerprint::of(&args.paths);
    let mut progress = Progress::default();
    loop {
        tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            _ = tick.tick() => {}
        }
        let now = Fingerprint::of(&args.paths);
        if now != fingerprint {
            fingerprint = settled(now, || Fingerprint::of(&args.paths), SETTLE, SETTLE_LOOKS).await;
            let applied = load_all(&args.paths).map_err(|e| e.to_string()).and_then(|loaded| {
                report_skipped(&loaded.skipped);
                runtime.apply(&loaded.manifests, true).map_err(|e| e.to_string())
            });
            match applied {
                Ok(report) => describe(&report, args.quiet),
                // The running fleets stay as they were until the files are fixed.
                Err(error) => eprintln!("stadion up: not re-applied: {error}"),
            }
        }
        if let Some((config, matchmaker)) = &mut matchmaker {
            match config.poll(matchmaker) {
                Some(Reload::Applied(reconfigured)) if !args.quiet => {
                    eprintln!("stadion up: {}", config_reload::summary(config.path(), &reconfigured));
                }
                // The queues in force stay until the file is fixed.
                Some(Reload::Refused(error)) => {
                    eprintln!("stadion up: matchmaker configuration not re-applied: {error}");
                }
                Some(Reload::Applied(_)) | None => {}
            }
        }
        if !args.quiet {
            progress.print_changes(&runtime.snapshot());
        }
    }
}

/// The matchmaker's queue configuration: `--matchmaker-config`, else the one YAML file among the
/// paths that is a queue configuration (top-level `queues:`, no `kind:`), else none.
fn matchmaker_config(args: &Args) -> anyhow::Result<Option<(PathBuf, MatchmakerConfig)>> {
    let path = match &args.matchmaker_config {
        Some(path) => path.clone(),
        None => {
            let files = stadion_controller::local::files::manifest_files(&args.paths)?;
            let found: Vec<PathBuf> = files.into_iter().filter(|file| is_queue_config(file)).collect();
            match found.as_slice() {
                [] if args.state_dir.is_some() || args.redis_url.is_some() || args.state_sync.is_some() => {
                    let flag = if args.state_dir.is_some() {
                        "--state-dir"
                    } else if args.redis_url.is_some() {
                        "--redis-url"
                    } else {
                        "--state-sync"
                    };
                    anyhow::bail!(
                        "{flag} is about the matchmaker's tickets, but no matchmaker runs: give a queue configuration with --matchmaker-config or among the paths"
                    )
                }
                [] => return Ok(None),
                [one] => one.clone(),
                several => anyhow::bail!(
                    "several matchmaker configurations ({}): choose one with --matchmaker-config",
                    several.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    };
    let mut config = MatchmakerConfig::from_yaml_file(&path)
        .map_err(|error| anyhow::anyhow!(config_reload::describe_error(&path, &error)))?;
    if let Some(dir) = &args.state_dir {
        config.state_dir = Some(dir.clone());
    }
    if let Some(sync) = args.state_sync {
        config.state_sync = Some(sync);
    }
    if let Some(url) = &args.redis_url {
        config.redis = Some(url.clone());
    }
    // `stateDir` in the file and `--redis-url`, or the other way round.
    config.validate().map_err(|error| anyhow::anyhow!(config_reload::describe_error(&path, &error)))?;
    Ok(Some((path, config)))
}

/// One line per document of another API: `up` runs Agones resources only, and says so rather
/// than refuse a file that also holds the Service or RBAC a cluster install needs.
fn report_skipped(skipped: &[(String, stadion_crds::manifest::Skipped)]) {
    for (file, document) in skipped {
        let name = if document.name.is_empty() { String::new() } else { format!(" {}", document.name) };
        eprintln!(
            "stadion up: {file}: document {}: skipped {}{name} ({}): not a Stadion resource",
            document.document, document.kind, document.api_version
        );
    }
}

fn is_queue_config(file: &std::path::Path) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else { return false };
    let Ok(documents) = stadion_crds::manifest::yaml_documents(&text, "") else { return false };
    matches!(documents.as_slice(), [value] if value.get("queues").is_some() && value.get("kind").is_none())
}

/// Tells a newcomer how to get a match: the first queue's ticket request, ready to paste.
fn explain_matchmaker(address: &str, path: &std::path::Path, config: &MatchmakerConfig) {
    let names: Vec<&str> = config.queues.iter().map(|q| q.name.as_str()).collect();
    eprintln!("stadion up: matchmaker on http://{address} (queues {} from {})", names.join(", "), path.display());
    if let Some(queue) = names.first() {
        eprintln!(
            "stadion up: ask for a match: curl -s -X POST http://{address}/v1/tickets -H 'content-type: application/json' \\\n    -d '{{\"queue\": \"{queue}\", \"players\": [{{\"id\": \"alice\"}}]}}'"
        );
        eprintln!("stadion up: then read the assignment: curl -s http://{address}/v1/tickets/<ticket id>");
    }
    eprintln!(
        "stadion up: Agones clients allocate at the same address: POST http://{address}/gameserverallocation, or gRPC allocation.AllocationService/Allocate (plaintext)"
    );
}

fn usage_error(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("stadion up: {error}");
    eprintln!("stadion up: nothing was started");
    ExitCode::from(super::EXIT_USAGE)
}

fn describe(report: &ApplyReport, quiet: bool) {
    if quiet {
        return;
    }
    for (verb, objects) in [("created", &report.created), ("updated", &report.updated), ("deleted", &report.deleted)] {
        for object in objects {
            eprintln!("stadion up: {verb} {object}");
        }
    }
}

/// Lifts the open-file soft limit to the hard limit, as a server manager should: every game
/// server holds its sidecar's listeners, connections and output pipes, and the usual soft limit
/// of 1,024 runs out at a few hundred servers while the hard limit is far higher.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open-file limit"),
            Err(error) => tracing::warn!(soft, hard, %error, "cannot raise the open-file limit"),
        },
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot read the open-file limit"),
    }
}

fn parse_port_range(text: &str) -> anyhow::Result<PortRanges> {
    let (min, max) = text.split_once('-').with_context(|| format!("--port-range {text:?}: expected MIN-MAX"))?;
    let parse =
        |s: &str| s.trim().parse::<i32>().with_context(|| format!("--port-range {text:?}: {s:?} is not a port"));
    Ok(PortRanges::new().with("default", parse(min)?, parse(max)?)?)
}

/// The last line printed per fleet (and per fleetless GameServer), so only changes are printed.
#[derive(Debug, Default)]
struct Progress {
    lines: BTreeMap<String, String>,
}

impl Progress {
    fn print_changes(&mut self, snapshot: &Snapshot) {
        let mut current = BTreeMap::new();
        for fleet in &snapshot.fleets {
            current.insert(
                format!("fleet {}/{}", fleet.namespace, fleet.name),
                format!(
                    "desired {} current {} ready {} allocated {} reserved {}",
                    fleet.desired, fleet.current, fleet.ready, fleet.allocated, fleet.reserved
                ),
            );
        }
        for gs in snapshot.gameservers.iter().filter(|gs| gs.fleet.is_none()) {
            let ports: Vec<String> = gs.ports.iter().map(|p| format!("{}={}", p.name, p.port)).collect();
            current.insert(
                format!("gameserver {}/{}", gs.namespace, gs.name),
                format!("{} {} {}", gs.state, gs.address, ports.join(",")),
            );
        }
        for (what, line) in &current {
            if self.lines.get(what) != Some(line) {
                eprintln!("{what}: {line}");
            }
        }
        self.lines = current;
    }
}

/// This binary as the orphan guard, so the games stop even if `up` is SIGKILLed. Without a
/// readable path to ourselves there is no guard (a warning; everything else works).
fn orphan_guard(grace: Duration) -> Option<stadion_controller::local::supervisor::GuardCommand> {
    match std::env::current_exe() {
        Ok(program) => Some(stadion_controller::local::supervisor::GuardCommand {
            program,
            args: vec!["__orphan-guard".to_owned(), "--grace-period".to_owned(), format!("{}ms", grace.as_millis())],
        }),
        Err(error) => {
            tracing::warn!(%error, "cannot locate the stadion binary; games would outlive a killed `stadion up`");
            None
        }
    }
}

/// This binary as the network sandbox, once it has shown that this machine lets it create the
/// namespaces (an unprivileged user namespace may be disabled by the kernel or its policy).
fn network_sandbox() -> anyhow::Result<SandboxCommand> {
    use stadion_controller::local::sandbox::SUBCOMMAND;
    let program = std::env::current_exe().context("cannot locate the stadion binary")?;
    let probe = std::process::Command::new(&program)
        .args([SUBCOMMAND, "--probe"])
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run the sandbox probe")?;
    if !probe.status.success() {
        let reason = String::from_utf8_lossy(&probe.stderr);
        anyhow::bail!("this machine does not allow it: {}", reason.trim());
    }
    Ok(SandboxCommand { program })
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use stadion_crds::allocation_ttl::AllocationTtl;

    #[derive(Debug, Parser)]
    struct Up {
        #[command(flatten)]
        args: super::Args,
    }

    #[test]
    fn allocation_ttl_defaults_to_off_and_a_bad_one_is_a_usage_error() {
        let parse = |extra: &[&str]| Up::try_parse_from(["up", "examples/"].iter().chain(extra));
        assert_eq!(parse(&[]).expect("parses").args.allocation_ttl, AllocationTtl::OFF);
        let set = parse(&["--allocation-ttl", "1h30m"]).expect("parses").args.allocation_ttl;
        assert_eq!(set.duration().map(|d| d.as_secs()), Some(5400));
        let error = parse(&["--allocation-ttl", "soon"]).expect_err("refused");
        assert_eq!((error.kind(), error.exit_code()), (clap::error::ErrorKind::ValueValidation, 2));
        assert!(error.to_string().contains("\"soon\" is not a duration"), "{error}");
    }

    #[test]
    fn grace_and_poll_take_durations_and_keep_their_old_integer_forms() {
        use std::time::Duration;
        let parse = |extra: &[&str]| Up::try_parse_from(["up", "examples/"].iter().chain(extra));
        let defaults = parse(&[]).expect("parses").args;
        assert_eq!((defaults.grace_period, defaults.poll_interval), (Duration::from_secs(5), Duration::from_secs(1)));
        let old = parse(&["--grace-seconds", "3", "--poll-ms", "200"]).expect("parses").args;
        assert_eq!((old.grace_period, old.poll_interval), (Duration::from_secs(3), Duration::from_millis(200)));
        let new = parse(&["--grace-period", "1m30s", "--poll-interval", "1.5s"]).expect("parses").args;
        assert_eq!((new.grace_period, new.poll_interval), (Duration::from_secs(90), Duration::from_millis(1500)));
        assert_eq!(parse(&["--grace-period", "300ms"]).expect("parses").args.grace_period, Duration::from_millis(300));
        let error = parse(&["--grace-period", "soon"]).expect_err("refused");
        assert_eq!((error.kind(), error.exit_code()), (clap::error::ErrorKind::ValueValidation, 2));
        let message = error.to_string();
        assert!(message.contains("--grace-period") && message.contains("1h30m, 90s, 300ms, 1.5m"), "{message}");
    }
}

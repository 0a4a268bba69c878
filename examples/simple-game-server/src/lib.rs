//! A small but real UDP game server for Stadion (and Agones), using the Agones SDK through
//! `stadion-sdk`. The example manifests run it as `stadion simple-game-server`; it also builds
//! alone as the `simple-game-server` binary.
//!
//! It connects to its sidecar, finds its port (see [`port`]), starts health pings, calls Ready,
//! and then echoes every datagram as `ECHO <gameserver>: <payload>`. Upper-case text commands
//! drive the SDK so a test or a person with `nc -u` can walk the server through its lifecycle:
//!
//! | command | effect | reply |
//! |---|---|---|
//! | `EXIT` | SDK Shutdown, then exit 0 (the ACK is sent first) | `ACK EXIT` |
//! | `UNHEALTHY` | stop health pings (the server turns Unhealthy) | `ACK UNHEALTHY` |
//! | `ALLOCATE` / `READY` | SDK Allocate / Ready | `ACK ALLOCATE` |
//! | `RESERVE <s>` | SDK Reserve for `s` seconds | `ACK RESERVE` |
//! | `LABEL <k> <v>` / `ANNOTATION <k> <v>` | SDK SetLabel / SetAnnotation | `ACK LABEL` |
//! | `PLAYERS` | connected player count (alpha) | `ACK PLAYERS <n>` |
//! | `PLAYER_CONNECT <id>` / `PLAYER_DISCONNECT <id>` | alpha player tracking | `ACK PLAYER_CONNECT connected` |
//! | `GAMESERVER` | name, state, labels, annotations | `ACK GAMESERVER {json}` |
//! | `LIST <name>` / `LIST_ADD <name> <v>` | SDK GetList / AddListValue (beta) | `ACK LIST <capacity> <v1,v2>` |
//!
//! Failures answer `ERR <COMMAND> <reason>`. With `--tcp` the same protocol is served, one line per
//! message, on TCP at the same port number.

pub mod command;
pub mod game;
pub mod port;
pub mod watch;

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use stadion_sdk::Sdk;
use tokio::net::{TcpListener, UdpSocket};

use crate::game::{ExitReason, Game};
use crate::port::PortSource;

/// Flags of the simple game server.
#[derive(Clone, Debug, clap::Args)]
// A named group: embedders flatten this into their own `Args`, whose default group id would clash.
#[group(id = "simple_game_server")]
pub struct Args {
    /// Port used when the runtime sets no `STADION_PORT_<NAME>` (on Agones: the `containerPort`).
    #[arg(long, env = "SIMPLE_GAME_SERVER_PORT", default_value_t = 7654)]
    pub port: u16,
    /// Name of the GameServer port to serve (its `STADION_PORT_<NAME>` variable / status entry).
    #[arg(long, env = "SIMPLE_GAME_SERVER_PORT_NAME", default_value = "default")]
    pub port_name: String,
    /// Read the port from the GameServer status (Agones `portPolicy: Passthrough`).
    #[arg(long, env = "SIMPLE_GAME_SERVER_PASSTHROUGH")]
    pub passthrough: bool,
    /// Address to bind; all interfaces by default so players on other hosts can connect.
    #[arg(long, env = "SIMPLE_GAME_SERVER_BIND", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind: IpAddr,
    /// Also accept TCP clients (one command or message per line) on the same port number.
    #[arg(long, env = "SIMPLE_GAME_SERVER_TCP")]
    pub tcp: bool,
    /// Milliseconds between health pings.
    #[arg(long, env = "SIMPLE_GAME_SERVER_HEALTH_MS", default_value_t = 2000)]
    pub health_interval_ms: u64,
    /// Seconds after becoming Allocated to call SDK Shutdown and exit 0, so a fleet recycles its
    /// servers; unset: stay up until told `EXIT`.
    #[arg(long, env = "AUTOMATIC_SHUTDOWN_DELAY_SEC_AFTER_ALLOCATION", value_name = "SECONDS")]
    pub automatic_shutdown_delay_after_allocation: Option<u64>,
    /// Player capacity to set (alpha player tracking) before Ready; unset: the GameServer's
    /// `spec.players.initialCapacity` stays.
    #[arg(long, env = "SIMPLE_GAME_SERVER_PLAYER_CAPACITY")]
    pub player_capacity: Option<i64>,
    /// Milliseconds to wait before calling Ready (to watch the Scheduled → Ready step).
    #[arg(long, env = "SIMPLE_GAME_SERVER_READY_DELAY_MS", default_value_t = 0)]
    pub ready_delay_ms: u64,
}

/// Logs to stderr (the runtime prefixes each line with the server's name), `info` unless
/// `RUST_LOG` says otherwise. Does nothing if a subscriber is already installed.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a terminal: under `stadion up` or a log collector they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(ansi).with_env_filter(filter).try_init();
}

/// Runs the server on a new Tokio runtime until `EXIT`, the shutdown delay, or SIGTERM/Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // A game server of this size needs no more; a thousand of them on one laptop must fit.
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(serve(args))
}

/// Runs the server on the current Tokio runtime; see [`run`].
pub async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    let sdk = Sdk::connect().await.context("cannot reach the SDK sidecar")?;
    let gameserver = sdk.game_server().await.context("cannot read this server's GameServer")?;
    let name = gameserver
        .object_meta
        .as_ref()
        .map(|m| m.name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| std::env::var("STADION_GAMESERVER_NAME").ok())
        .unwrap_or_else(|| "simple-game-server".to_owned());
    let (port, source) = find_port(&args, &sdk, gameserver).await?;
    let udp =
        UdpSocket::bind((args.bind, port)).await.with_context(|| format!("cannot bind udp {}:{port}", args.bind))?;
    let tcp = match args.tcp {
        true => Some(
            TcpListener::bind((args.bind, port))
                .await
                .with_context(|| format!("cannot bind tcp {}:{port}", args.bind))?,
        ),
        false => None,
    };
    tracing::info!(gameserver = %name, port, source = ?source, tcp = args.tcp, "listening");

    let (game, mut exits) = Game::new(sdk.clone(), name.clone(), Duration::from_millis(args.health_interval_ms.max(1)));
    // Health before Ready: a server that is Ready must already be proving it is alive.
    game.start_health();
    if let Some(capacity) = args.player_capacity {
        sdk.alpha().set_player_capacity(capacity).await.context("SDK SetPlayerCapacity failed")?;
    }
    if args.ready_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(args.ready_delay_ms)).await;
    }
    sdk.ready().await.context("SDK Ready failed")?;
    tracing::info!(gameserver = %name, "ready");

    let shutdown_after = args.automatic_shutdown_delay_after_allocation.map(Duration::from_secs);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(watch::follow(game.clone(), shutdown_after));
    tasks.spawn(game::serve_udp(game.clone(), udp));
    if let Some(tcp) = tcp {
        tasks.spawn(game::serve_tcp(game.clone(), tcp));
    }

    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let (ended, code) = tokio::select! {
        reason = exits.recv() => match reason {
            Some(ExitReason::ExitCommand) | None => ("EXIT command", ExitCode::SUCCESS),
            Some(ExitReason::AfterAllocation) => ("shutdown delay after allocation", ExitCode::SUCCESS),
            Some(ExitReason::ShutdownFailed) => ("EXIT command, SDK Shutdown failed", ExitCode::FAILURE),
        },
        // The runtime stopping us (scale-down, Shutdown recorded, `up` ending) is a normal end.
        _ = terminate.recv() => ("SIGTERM", ExitCode::SUCCESS),
        _ = interrupt.recv() => ("SIGINT", ExitCode::SUCCESS),
    };
    tracing::info!(gameserver = %name, reason = ended, "exiting");
    tasks.shutdown().await;
    Ok(code)
}

/// The listen port, by the precedence documented in [`port`]. Passthrough waits for the status
/// to carry the port: the SDK answers before the controller has scheduled the server.
async fn find_port(
    args: &Args,
    sdk: &Sdk,
    mut gameserver: stadion_sdk::proto::GameServer,
) -> anyhow::Result<(u16, PortSource)> {
    if let Some(found) = port::from_env(&args.port_name, |name| std::env::var(name).ok())? {
        return Ok(found);
    }
    if !args.passthrough {
        return Ok((args.port, PortSource::Flag));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = port::from_status(&gameserver, &args.port_name) {
            return Ok(found);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("--passthrough: the GameServer status has no port {:?} after 60 s", args.port_name);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        gameserver = sdk.game_server().await.context("cannot read this server's GameServer")?;
    }
}

//! `stadion sdk-server`: the SDK sidecar a game server talks to. With `--local` it serves an
//! in-memory GameServer (optionally from a manifest, reloaded on change) so a game's SDK
//! integration can be tested on a laptop. Without it, it serves its own GameServer in a cluster
//! (`GAMESERVER_NAME` in `POD_NAMESPACE`), as injected into every game-server Pod.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use stadion_sdk::server::local::LocalBackend;
use stadion_sdk::server::{self, ServeOptions};

/// Flags of `stadion sdk-server`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Serve an in-memory GameServer (`local` in `default`, Ready at 127.0.0.1:7777) instead of
    /// one in a cluster.
    #[arg(long, env = "STADION_SDK_LOCAL")]
    pub local: bool,
    /// With `--local`: a GameServer manifest (YAML or JSON) to serve; reloaded when it changes.
    #[arg(long, env = "STADION_SDK_FILE", requires = "local")]
    pub file: Option<PathBuf>,
    /// gRPC port (0: pick a free one).
    #[arg(long, env = "AGONES_SDK_GRPC_PORT", default_value_t = stadion_sdk::DEFAULT_GRPC_PORT)]
    pub grpc_port: u16,
    /// REST port (0: pick a free one).
    #[arg(long, env = "AGONES_SDK_HTTP_PORT", default_value_t = stadion_sdk::DEFAULT_HTTP_PORT)]
    pub http_port: u16,
    /// Address to listen on; localhost unless told otherwise, as the game shares the host.
    #[arg(long, env = "STADION_SDK_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub address: IpAddr,
    /// In a cluster: the GameServer to serve.
    #[arg(long, env = "GAMESERVER_NAME", required_unless_present = "local")]
    pub gameserver_name: Option<String>,
    /// In a cluster: its namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// In a cluster: address of the `/healthz` and `/gshealthz` probe endpoints.
    #[arg(long, env = "STADION_SDK_HEALTH_ADDR", default_value = "0.0.0.0:8080")]
    pub health_addr: SocketAddr,
}

/// Runs `stadion sdk-server` until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::init_tracing(false, "info");
    if !args.local {
        return serve_in_cluster(args);
    }
    let game_server = match &args.file {
        Some(path) => match LocalBackend::load(path) {
            Ok(gs) => gs,
            Err(error) => {
                eprintln!("stadion sdk-server: {error}");
                return Ok(ExitCode::from(super::EXIT_USAGE));
            }
        },
        None => LocalBackend::default_game_server(),
    };
    small_runtime()?.block_on(serve_local(args, game_server))
}

async fn serve_local(args: Args, game_server: stadion_crds::GameServer) -> anyhow::Result<ExitCode> {
    let backend = Arc::new(LocalBackend::new(game_server));
    let _reloader = args.file.clone().map(|path| {
        tracing::info!(file = %path.display(), "watching the GameServer manifest for changes");
        backend.watch_file(path, Duration::from_secs(1))
    });
    let listeners =
        server::bind(SocketAddr::new(args.address, args.grpc_port), SocketAddr::new(args.address, args.http_port))
            .await?;
    let handle = server::serve(backend, listeners, ServeOptions::default())?;
    tracing::info!(
        grpc = %handle.grpc_addr(),
        http = %handle.http_addr(),
        gameserver = "local",
        "SDK server running in local mode; Ctrl-C to stop"
    );
    super::shutdown_signal().await;
    tracing::info!("stopping the SDK server");
    handle.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The sidecar in a game-server Pod: the kube backend, serving until the server is Shutdown.
fn serve_in_cluster(args: Args) -> anyhow::Result<ExitCode> {
    use stadion_controller::kube::sidecar::serve::{SidecarConfig, serve};
    let config = SidecarConfig {
        gameserver: args.gameserver_name.context("GAMESERVER_NAME is not set")?,
        namespace: args.namespace,
        grpc: SocketAddr::new(args.address, args.grpc_port),
        http: SocketAddr::new(args.address, args.http_port),
        health: args.health_addr,
    };
    small_runtime()?.block_on(async move {
        serve(config, super::shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// A sidecar serves one game: two worker threads are plenty and keep its footprint small.
fn small_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

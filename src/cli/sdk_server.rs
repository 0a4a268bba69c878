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
use stadion_sdk::server::conformance::ConformanceRecorder;
use stadion_sdk::server::local::LocalBackend;
use stadion_sdk::server::{self, GameServerBackend as _, ServeOptions};

/// Flags of `stadion sdk-server`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Serve an in-memory GameServer (`local` in `default`, Ready at 127.0.0.1:7777) instead of
    /// one in a cluster.
    #[arg(long, env = "STADION_SDK_LOCAL", value_parser = super::boolish())]
    pub local: bool,
    /// With `--local`: a GameServer manifest (YAML or JSON) to serve; reloaded when it changes.
    #[arg(long, short = 'f', env = "STADION_SDK_FILE", requires = "local")]
    pub file: Option<PathBuf>,
    /// Agones' SDK conformance mode: the comma-separated calls a test client must make
    /// (`ready,allocate,setlabel,…`). Implies `--local`; at the end of the run the sidecar
    /// compares what it received and exits 1 on a mismatch.
    #[arg(long, env = "TEST", value_name = "CALLS")]
    pub test: Option<String>,
    /// Name of the SDK under test, for the conformance log.
    #[arg(long, env = "SDK_NAME", value_name = "NAME")]
    pub sdk_name: Option<String>,
    /// Local or test mode: stop after this long, in seconds or a duration such as `1m30s`
    /// (0: run until SIGTERM/Ctrl-C).
    #[arg(long, env = "TIMEOUT", value_name = "DURATION", default_value = "0", value_parser = super::duration_or_seconds)]
    pub timeout: Duration,
    /// Wait this long before starting to serve (seconds or a duration such as `500ms`).
    #[arg(long, env = "DELAY", value_name = "DURATION", default_value = "0", value_parser = super::duration_or_seconds)]
    pub delay: Duration,
    /// gRPC port (0: pick a free one).
    #[arg(long, env = "AGONES_SDK_GRPC_PORT", default_value_t = stadion_sdk::DEFAULT_GRPC_PORT)]
    pub grpc_port: u16,
    /// REST port (0: pick a free one).
    #[arg(long, env = "AGONES_SDK_HTTP_PORT", default_value_t = stadion_sdk::DEFAULT_HTTP_PORT)]
    pub http_port: u16,
    /// Address to listen on; localhost unless told otherwise, as the game shares the host.
    #[arg(long, env = "STADION_SDK_ADDRESS", default_value = "localhost", value_parser = parse_address)]
    pub address: IpAddr,
    /// In a cluster: the GameServer to serve.
    #[arg(long, env = "GAMESERVER_NAME", required_unless_present_any = ["local", "test"])]
    pub gameserver_name: Option<String>,
    /// In a cluster: its namespace.
    #[arg(long, alias = "pod-namespace", env = "POD_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// In a cluster: address of the `/healthz` and `/gshealthz` probe endpoints.
    #[arg(long, env = "STADION_SDK_HEALTH_ADDR", default_value = "0.0.0.0:8080", value_parser = super::socket_addr)]
    pub health_addr: SocketAddr,
    /// In a cluster: a kubeconfig file to use instead of the Pod's service account (Agones'
    /// `--kubeconfig`; `KUBECONFIG` is honoured too when no flag is given).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// In a cluster: on SIGTERM keep serving until the GameServer is Shutdown (Agones'
    /// `--graceful-termination`, default true; `--graceful-termination=false` stops at once).
    #[arg(
        long,
        env = "STADION_SDK_GRACEFUL_TERMINATION",
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = super::boolish()
    )]
    pub graceful_termination: bool,
}

/// Runs `stadion sdk-server` until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::init_tracing(false, "info");
    if !args.delay.is_zero() {
        std::thread::sleep(args.delay);
    }
    if !args.local && args.test.is_none() {
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
    let game_server_name = game_server.metadata.name.clone().unwrap_or_default();
    let backend = Arc::new(LocalBackend::new(game_server));
    let _reloader = args.file.clone().map(|path| {
        tracing::info!(file = %path.display(), "watching the GameServer manifest for changes");
        backend.watch_file(path, Duration::from_secs(1))
    });
    let listeners =
        server::bind(SocketAddr::new(args.address, args.grpc_port), SocketAddr::new(args.address, args.http_port))
            .await?;
    let recorder = args.test.as_ref().map(|_| ConformanceRecorder::new(backend.watch()));
    // As Agones' local SDK server: missed health pings are logged, never fatal.
    let options = ServeOptions {
        observer: recorder.as_ref().map(|r| r.observer()),
        enforce_health: false,
        ..ServeOptions::default()
    };
    let name = game_server_name.clone();
    let handle = server::serve(backend, listeners, options)?;
    tracing::info!(
        grpc = %handle.grpc_addr(),
        http = %handle.http_addr(),
        gameserver = %name,
        "SDK server running in local mode; Ctrl-C to stop"
    );
    if args.timeout.is_zero() {
        super::shutdown_signal().await;
    } else {
        tokio::select! {
            () = super::shutdown_signal() => {}
            () = tokio::time::sleep(args.timeout) => {}
        }
    }
    tracing::info!("stopping the SDK server");
    handle.shutdown().await;
    let (Some(recorder), Some(expected)) = (recorder, args.test) else { return Ok(ExitCode::SUCCESS) };
    let sdk = args.sdk_name.unwrap_or_default();
    let expected: Vec<&str> = expected.split(',').collect();
    match recorder.verdict(&expected) {
        Ok(received) => {
            tracing::info!(sdk = %sdk, ?received, "received requests match the expected list: conformance run passed");
            Ok(ExitCode::SUCCESS)
        }
        Err(mismatch) => {
            eprintln!("stadion sdk-server: {sdk}: {mismatch}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// An IP address, or `localhost` (Agones' default spelling) for the loopback address.
fn parse_address(text: &str) -> Result<IpAddr, String> {
    if text.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    text.parse().map_err(|_| format!("{text:?} is neither an IP address nor localhost"))
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
        kubeconfig: args.kubeconfig,
        graceful_termination: args.graceful_termination,
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct SdkServer {
        #[command(flatten)]
        args: super::Args,
    }

    fn parse(extra: &[&str]) -> Result<super::Args, clap::Error> {
        let base = ["sdk-server", "--gameserver-name", "gs-1"];
        SdkServer::try_parse_from(base.iter().chain(extra)).map(|p| p.args)
    }

    #[test]
    fn agones_sidecar_flags_kubeconfig_and_graceful_termination_are_accepted() {
        let defaults = parse(&[]).expect("defaults");
        assert!(defaults.graceful_termination, "on by default, as in Agones");
        assert_eq!(defaults.kubeconfig, None);
        assert!(parse(&["--graceful-termination"]).expect("bare flag").graceful_termination);
        assert!(!parse(&["--graceful-termination=false"]).expect("=false").graceful_termination);
        assert!(parse(&["--graceful-termination=true"]).expect("=true").graceful_termination);
        let with = parse(&["--kubeconfig", "/etc/kube/config"]).expect("kubeconfig");
        assert_eq!(with.kubeconfig.as_deref(), Some(std::path::Path::new("/etc/kube/config")));
        assert_eq!(parse(&["--graceful-termination=maybe"]).expect_err("not a bool").exit_code(), 2);
    }

    #[test]
    fn timeout_and_delay_take_seconds_as_agones_does_or_a_duration() {
        use std::time::Duration;
        let defaults = parse(&[]).expect("defaults");
        assert_eq!((defaults.timeout, defaults.delay), (Duration::ZERO, Duration::ZERO));
        let seconds = parse(&["--timeout", "30", "--delay", "2"]).expect("seconds");
        assert_eq!((seconds.timeout, seconds.delay), (Duration::from_secs(30), Duration::from_secs(2)));
        let units = parse(&["--timeout", "1m30s", "--delay", "500ms"]).expect("durations");
        assert_eq!((units.timeout, units.delay), (Duration::from_secs(90), Duration::from_millis(500)));
        let error = parse(&["--timeout=-5s"]).expect_err("negative");
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("must not be negative"), "{error}");
    }
}

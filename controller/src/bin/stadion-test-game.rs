//! A tiny game server for the local runtime's tests and scale check: it speaks the Agones SDK
//! through `stadion-sdk` exactly as a real game would.
//!
//! It connects to its sidecar, pings health every `--health-ms` milliseconds, calls Ready (unless
//! `--no-ready`) and then watches its GameServer. When the annotation `stadion.test/shutdown`
//! appears it calls SDK Shutdown and exits 0, the way a game ends a finished match. It exits with
//! `--exit-code` after `--exit-after-ms` when asked to, and on SIGTERM it exits 0.

use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;

/// Annotation that makes the game call SDK Shutdown and exit.
const SHUTDOWN_ANNOTATION: &str = "stadion.test/shutdown";

struct Options {
    health: Option<Duration>,
    ready: bool,
    exit_after: Option<(Duration, u8)>,
}

fn parse() -> Result<Options, String> {
    let mut options = Options { health: Some(Duration::from_millis(500)), ready: true, exit_after: None };
    let mut exit_code = 1;
    let mut exit_after = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let raw = args.next().ok_or_else(|| format!("{name} needs a value"))?;
            raw.parse().map_err(|e| format!("{name} {raw:?}: {e}"))
        };
        match arg.as_str() {
            "--no-ready" => options.ready = false,
            "--no-health" => options.health = None,
            "--health-ms" => options.health = Some(Duration::from_millis(value("--health-ms")?)),
            "--exit-after-ms" => exit_after = Some(Duration::from_millis(value("--exit-after-ms")?)),
            "--exit-code" => exit_code = u8::try_from(value("--exit-code")?).map_err(|e| e.to_string())?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    options.exit_after = exit_after.map(|after| (after, exit_code));
    Ok(options)
}

async fn play(options: Options) -> Result<ExitCode, String> {
    let sdk_error = |e: stadion_sdk::Error| e.to_string();
    let sdk = stadion_sdk::Sdk::connect().await.map_err(sdk_error)?;
    let _pinger = options.health.map(|interval| sdk.health_pinger(interval));
    if options.ready {
        sdk.ready().await.map_err(sdk_error)?;
        println!("ready");
    }
    let mut changes = sdk.watch_game_server().await.map_err(sdk_error)?;
    let exit_after = async {
        match options.exit_after {
            Some((after, code)) => {
                tokio::time::sleep(after).await;
                code
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(exit_after);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    loop {
        tokio::select! {
            code = &mut exit_after => {
                println!("exiting with {code}");
                return Ok(ExitCode::from(code));
            }
            _ = terminate.recv() => {
                println!("terminated");
                return Ok(ExitCode::SUCCESS);
            }
            change = changes.next() => {
                let Some(gs) = change.transpose().map_err(sdk_error)? else { return Ok(ExitCode::SUCCESS) };
                let asked = gs.object_meta.as_ref().is_some_and(|m| m.annotations.contains_key(SHUTDOWN_ANNOTATION));
                if asked {
                    sdk.shutdown().await.map_err(sdk_error)?;
                    println!("shut down");
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("stadion-test-game: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stadion-test-game: cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(play(options)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("stadion-test-game: {error}");
            ExitCode::FAILURE
        }
    }
}

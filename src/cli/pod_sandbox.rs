//! `stadion __pod-sandbox` (hidden): started by `stadion up --isolation network` in place of a
//! game, never by hand. Binds the game's host ports, enters its own user and network namespace,
//! hands the SDK listeners it binds there to `up` over stdin, then runs the game and relays its
//! ports. See `stadion_controller::local::sandbox`.

use std::path::PathBuf;
use std::process::ExitCode;

use stadion_controller::local::sandbox::{RelayedPort, enter, probe, run_game, send_listeners};

/// Flags of `stadion __pod-sandbox`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only check that this machine allows the namespaces, then exit (0 when it does).
    #[arg(long)]
    pub probe: bool,
    /// The SDK's gRPC port inside the sandbox.
    #[arg(long, default_value_t = 9357)]
    pub sdk_grpc_port: u16,
    /// The SDK's REST port inside the sandbox.
    #[arg(long, default_value_t = 9358)]
    pub sdk_http_port: u16,
    /// A host port relayed to a container port, `udp|tcp:HOST:CONTAINER` (repeatable).
    #[arg(long = "relay", value_name = "PORT")]
    pub relays: Vec<RelayedPort>,
    /// The game's program.
    #[arg(required_unless_present = "probe", last = true, value_name = "GAME")]
    pub game: Vec<String>,
}

/// Enters the sandbox (before any thread exists), hands over the SDK listeners, runs the game.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.probe {
        return Ok(match probe() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        });
    }
    let entered = match enter(&args.relays, (args.sdk_grpc_port, args.sdk_http_port)) {
        Ok(entered) => entered,
        Err(error) => {
            eprintln!("stadion: network sandbox: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Err(error) = send_listeners(std::io::stdin(), &entered.sdk_grpc, &entered.sdk_http) {
        eprintln!("stadion: network sandbox: cannot hand the SDK ports to stadion up: {error}");
        return Ok(ExitCode::FAILURE);
    }
    let Some((program, game_args)) = args.game.split_first() else {
        return Ok(ExitCode::FAILURE);
    };
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let code = match tokio.block_on(run_game(entered, &PathBuf::from(program), game_args)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("stadion: network sandbox: {error}");
            1
        }
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

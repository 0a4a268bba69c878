//! `stadion simple-game-server`: the example game server of `examples/simple-game-server`, built
//! into the CLI so the example manifests' `command: ["stadion", "simple-game-server"]` needs
//! nothing else installed.

use std::process::ExitCode;

/// Flags of `stadion simple-game-server`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: simple_game_server::Args,
}

/// Runs `stadion simple-game-server` until `EXIT`, its shutdown delay, or SIGTERM/Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    simple_game_server::init_tracing();
    simple_game_server::run(args.server)
}

//! `simple-game-server`: the example game server as its own binary (the same server as
//! `stadion simple-game-server`), for images that ship only the game.

use std::process::ExitCode;

use clap::Parser;

/// The example UDP game server for Stadion and Agones.
#[derive(Debug, Parser)]
#[command(name = "simple-game-server", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    args: simple_game_server::Args,
}

fn main() -> ExitCode {
    simple_game_server::init_tracing();
    match simple_game_server::run(Cli::parse().args) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "simple-game-server failed");
            ExitCode::FAILURE
        }
    }
}

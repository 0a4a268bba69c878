//! `stadion simple-game-server`.

use std::process::ExitCode;

/// Flags of `stadion simple-game-server`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `stadion simple-game-server`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_built_yet("simple-game-server")
}

//! `stadion matchmaker`.

use std::process::ExitCode;

/// Flags of `stadion matchmaker`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `stadion matchmaker`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_built_yet("matchmaker")
}

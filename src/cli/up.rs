//! `stadion up`.

use std::process::ExitCode;

/// Flags of `stadion up`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `stadion up`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_built_yet("up")
}

//! `stadion controller`.

use std::process::ExitCode;

/// Flags of `stadion controller`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `stadion controller`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_built_yet("controller")
}

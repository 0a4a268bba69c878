//! `stadion sdk-server`.

use std::process::ExitCode;

/// Flags of `stadion sdk-server`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `stadion sdk-server`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_built_yet("sdk-server")
}

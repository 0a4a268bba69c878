//! `stadion crds`.

use std::process::ExitCode;

/// Flags of `stadion crds`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `stadion crds`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_built_yet("crds")
}

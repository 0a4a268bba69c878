//! `stadion install`.

use std::process::ExitCode;

/// Flags of `stadion install`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `stadion install`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_built_yet("install")
}

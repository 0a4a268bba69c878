//! `stadion __orphan-guard` (hidden): started by `stadion up`, never by hand. Reads the game
//! process groups `up` reports on stdin; when `up` is gone (its end of the pipe closes, however
//! it died) stops the groups still running. See `stadion_controller::local::supervisor`.

use std::process::ExitCode;
use std::time::Duration;

/// Flags of `stadion __orphan-guard`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Time between SIGTERM and SIGKILL, as `stadion up --grace-period` (seconds or a duration).
    #[arg(long, alias = "grace-period", default_value = "5", value_parser = super::duration_or_seconds)]
    pub grace_seconds: Duration,
}

/// Guards until stdin closes.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin().lock();
    stadion_controller::local::supervisor::guard_groups(stdin, args.grace_seconds);
    Ok(ExitCode::SUCCESS)
}

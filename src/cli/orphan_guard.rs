//! `stadion __orphan-guard` (hidden): started by `stadion up`, never by hand. Reads the game
//! process groups `up` reports on stdin; when `up` is gone (its end of the pipe closes, however
//! it died) stops the groups still running. See `stadion_controller::local::supervisor`.

use std::process::ExitCode;
use std::time::Duration;

/// Flags of `stadion __orphan-guard`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Time between SIGTERM and SIGKILL, as `stadion up --grace-seconds`.
    #[arg(long, default_value_t = 5)]
    pub grace_seconds: u64,
}

/// Guards until stdin closes.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin().lock();
    stadion_controller::local::supervisor::guard_groups(stdin, Duration::from_secs(args.grace_seconds));
    Ok(ExitCode::SUCCESS)
}

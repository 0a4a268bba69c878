//! One module per subcommand: its flags (clap, with `STADION_*` env fallbacks) and its `run`.

pub mod controller;
pub mod crds;
pub mod install;
pub mod matchmaker;
pub mod sdk_server;
pub mod simple_game_server;
pub mod up;

use std::process::ExitCode;

/// Exit code for bad input (invalid flags, invalid manifests, unbuilt subcommands).
pub const EXIT_USAGE: u8 = 2;

/// Reports a subcommand that this build does not provide yet, honestly, with exit code 2.
pub fn not_built_yet(subcommand: &str) -> anyhow::Result<ExitCode> {
    eprintln!("stadion {subcommand}: not built yet in this version of Stadion");
    Ok(ExitCode::from(EXIT_USAGE))
}

//! `stadion`: the command-line entry point. Parses flags and wires the library crates together;
//! no orchestration logic lives here.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Stadion: an Agones-compatible game-server fleet orchestrator with a built-in matchmaker.
#[derive(Debug, Parser)]
#[command(name = "stadion", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything on this machine: fleets of real game-server processes, autoscaling,
    /// health checks and the matchmaker, from Agones manifests. No cluster needed.
    Up(cli::up::Args),
    /// Allocate a server from a running `stadion up`, as `kubectl create -f` does in a cluster:
    /// each GameServerAllocation in the file is created and printed with its status.
    Allocate(cli::allocate::Args),
    /// List GameServers, GameServerSets, Fleets or FleetAutoscalers of a running `stadion up`,
    /// with the columns `kubectl get` prints (`-w` watches).
    Get(cli::get::Args),
    /// Run the Kubernetes operator (GameServer, GameServerSet, Fleet, FleetAutoscaler controllers).
    Controller(cli::controller::Args),
    /// Run the SDK sidecar a game server talks to (gRPC 9357, REST 9358).
    SdkServer(cli::sdk_server::Args),
    /// Run the matchmaker HTTP service.
    Matchmaker(cli::matchmaker::Args),
    /// Write the CustomResourceDefinition YAML for the Agones-compatible kinds.
    Crds(cli::crds::Args),
    /// Print the Kubernetes install manifests (namespace, RBAC, CRDs, Deployments, Services).
    Install(cli::install::Args),
    /// Run the example UDP game server (examples/simple-game-server) that the example
    /// manifests start; it talks to its sidecar through the Agones SDK.
    SimpleGameServer(cli::simple_game_server::Args),
    /// Internal: started by `stadion up` to stop its games should it be killed.
    #[command(name = "__orphan-guard", hide = true)]
    OrphanGuard(cli::orphan_guard::Args),
    /// Internal: started by `stadion up --isolation network` to run one game in its own
    /// network namespace.
    #[command(name = "__pod-sandbox", hide = true)]
    PodSandbox(cli::pod_sandbox::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => cli::up::run(args),
        Command::Allocate(args) => cli::allocate::run(args),
        Command::Get(args) => cli::get::run(args),
        Command::Controller(args) => cli::controller::run(args),
        Command::SdkServer(args) => cli::sdk_server::run(args),
        Command::Matchmaker(args) => cli::matchmaker::run(args),
        Command::Crds(args) => cli::crds::run(args),
        Command::Install(args) => cli::install::run(args),
        Command::SimpleGameServer(args) => cli::simple_game_server::run(args),
        Command::OrphanGuard(args) => cli::orphan_guard::run(args),
        Command::PodSandbox(args) => cli::pod_sandbox::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("stadion: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

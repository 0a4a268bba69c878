//! `stadion controller`: the Kubernetes operator (GameServer, GameServerSet, Fleet and
//! FleetAutoscaler controllers), with leader election, metrics and health endpoints.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use stadion_controller::core::ports::PortRanges;
use stadion_controller::kube::install::{DEFAULT_IMAGE, DEFAULT_NAMESPACE, SDK_SERVICE_ACCOUNT};
use stadion_controller::kube::run::{ControllerConfig, run_with_default_client};
use stadion_crds::allocation_ttl::AllocationTtl;
use stadion_crds::gameserver::{DEFAULT_MAX_PORT, DEFAULT_MIN_PORT, DEFAULT_PORT_RANGE};

/// Flags of `stadion controller`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image of the SDK sidecar injected into every game-server Pod.
    #[arg(long, env = "STADION_SIDECAR_IMAGE", default_value = DEFAULT_IMAGE)]
    pub sidecar_image: String,
    /// ServiceAccount game-server Pods run as when their template names none.
    #[arg(long, env = "STADION_SDK_SERVICE_ACCOUNT", default_value = SDK_SERVICE_ACCOUNT)]
    pub sdk_service_account: String,
    /// Address of the `/metrics`, `/healthz` and `/readyz` server.
    #[arg(long, env = "STADION_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Compete for a Lease so only one of several replicas writes.
    #[arg(long, env = "STADION_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_election: bool,
    /// Namespace of the leader-election Lease (the controller's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub lease_namespace: String,
    /// This replica's identity in the Lease (the Pod name; the host name when unset).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Only manage objects in this namespace (all namespaces when unset).
    #[arg(long, env = "STADION_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// First host port of the default range.
    #[arg(long, env = "STADION_MIN_PORT", default_value_t = DEFAULT_MIN_PORT)]
    pub min_port: i32,
    /// Last host port (inclusive) of the default range.
    #[arg(long, env = "STADION_MAX_PORT", default_value_t = DEFAULT_MAX_PORT)]
    pub max_port: i32,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "STADION_LOG_JSON")]
    pub log_json: bool,
    /// Shut an Allocated server down once its last allocation is this old and no players are
    /// connected (`90s`, `5m`, `1h30m`, seconds, or `off`). A server's
    /// `stadion.dev/allocation-ttl` annotation wins over this.
    #[arg(long, env = "STADION_ALLOCATION_TTL", value_name = "DURATION", default_value = "off")]
    pub allocation_ttl: AllocationTtl,
}

/// Runs `stadion controller` until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::init_tracing(args.log_json, "info");
    let port_ranges =
        PortRanges::new().with(DEFAULT_PORT_RANGE, args.min_port, args.max_port).context("--min-port/--max-port")?;
    let identity =
        args.identity.or_else(|| std::env::var("HOSTNAME").ok()).unwrap_or_else(|| "stadion-controller".into());
    let config = ControllerConfig {
        sidecar_image: args.sidecar_image,
        sdk_service_account: args.sdk_service_account,
        metrics_addr: args.metrics_addr,
        leader_election: args.leader_election,
        lease_namespace: args.lease_namespace,
        identity,
        namespace: args.namespace,
        port_ranges,
        allocation_ttl: args.allocation_ttl,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        run_with_default_client(config, super::shutdown_signal()).await?;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Controller {
        #[command(flatten)]
        args: super::Args,
    }

    #[test]
    fn allocation_ttl_flag_parses_durations_and_refuses_anything_else() {
        let parse = |value: &str| Controller::try_parse_from(["controller", "--allocation-ttl", value]);
        assert_eq!(parse("90").expect("seconds").args.allocation_ttl.to_string(), "1m30s");
        assert_eq!(parse("soon").expect_err("refused").exit_code(), 2);
    }
}

//! `stadion controller`: the Kubernetes operator (GameServer, GameServerSet, Fleet and
//! FleetAutoscaler controllers), with leader election, metrics and health endpoints.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::Context;
use stadion_controller::dashboard::auth::Tokens;
use stadion_controller::kube::allocation_api::front_proxy::ClientAuth;
use stadion_controller::kube::allocation_api::tls::TlsSource;
use stadion_controller::kube::allocation_api::{AllocationApiConfig, SERVICE_NAME};
use stadion_controller::kube::dashboard::DashboardConfig;
use stadion_controller::kube::install::{DEFAULT_IMAGE, DEFAULT_NAMESPACE, SDK_SERVICE_ACCOUNT};
use stadion_controller::kube::run::{ControllerConfig, run_with_default_client};
use stadion_core::ports::PortRanges;
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
    #[arg(long, env = "STADION_METRICS_ADDR", default_value = "0.0.0.0:8080", value_parser = super::socket_addr)]
    pub metrics_addr: SocketAddr,
    /// Compete for a Lease so only one of several replicas writes.
    #[arg(long, env = "STADION_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = super::boolish())]
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
    #[arg(long, env = "STADION_LOG_JSON", value_parser = super::boolish())]
    pub log_json: bool,
    /// Shut an Allocated server down once its last allocation is this old and no players are
    /// connected (`90s`, `5m`, `1h30m`, seconds, or `off`). A server's
    /// `stadion.dev/allocation-ttl` annotation wins over this.
    #[arg(long, env = "STADION_ALLOCATION_TTL", value_name = "DURATION", default_value = "off")]
    pub allocation_ttl: AllocationTtl,
    /// Address of the HTTPS `allocation.agones.dev/v1` API the kube-apiserver proxies
    /// GameServerAllocation creates to (`off` turns it off).
    #[arg(long, env = "STADION_ALLOCATION_API_ADDR", value_name = "ADDR|off", default_value = "0.0.0.0:8443")]
    pub allocation_api_addr: ListenAddr,
    /// PEM certificate chain of the allocation API (a self-signed one is generated when unset).
    #[arg(long, env = "STADION_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Who may call the allocation API: `front-proxy` (only the kube-apiserver's aggregator,
    /// by its client certificate) or `off` (anyone who reaches the port).
    #[arg(
        long,
        env = "STADION_ALLOCATION_API_CLIENT_AUTH",
        value_name = "front-proxy|off",
        default_value = "front-proxy"
    )]
    pub allocation_api_client_auth: ClientAuth,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "STADION_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where the read-only web dashboard listens (`off`: not served). It needs a bearer token
    /// (`--dashboard-tokens-file` or `STADION_DASHBOARD_TOKENS`); browsers pass it as
    /// `?access_token=`.
    #[arg(long, env = "STADION_DASHBOARD_ADDRESS", value_name = "ADDR|off", default_value = "off")]
    pub dashboard_address: ListenAddr,
    /// A file with the dashboard's accepted bearer tokens, one per line (blank lines and `#`
    /// comments ignored), as the matchmaker's `auth.tokensFile`.
    #[arg(long, env = "STADION_DASHBOARD_TOKENS_FILE", value_name = "FILE")]
    pub dashboard_tokens_file: Option<PathBuf>,
    /// The dashboard's accepted bearer tokens, comma-separated (as the matchmaker's
    /// `auth.tokensEnv`).
    #[arg(long, env = "STADION_DASHBOARD_TOKENS", value_name = "TOKENS", hide_env_values = true)]
    pub dashboard_tokens: Option<String>,
}

/// The dashboard's settings, or a usage message: it is never served without a token.
fn dashboard_config(args: &Args) -> Result<Option<DashboardConfig>, String> {
    let Some(address) = args.dashboard_address.0 else { return Ok(None) };
    let mut tokens: Vec<String> = Vec::new();
    if let Some(file) = &args.dashboard_tokens_file {
        let text = std::fs::read_to_string(file)
            .map_err(|error| format!("--dashboard-tokens-file {}: {error}", file.display()))?;
        tokens.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from));
    }
    if let Some(list) = &args.dashboard_tokens {
        tokens.extend(list.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from));
    }
    match Tokens::new(tokens) {
        Some(tokens) => Ok(Some(DashboardConfig { address, tokens })),
        None => Err(format!(
            "--dashboard-address {address}: the dashboard needs a bearer token: set --dashboard-tokens-file or STADION_DASHBOARD_TOKENS"
        )),
    }
}

/// A listen address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr(pub Option<SocketAddr>);

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "off" | "none" | "false" | "" => Ok(Self(None)),
            addr => super::socket_addr(addr).map(|a| Self(Some(a))).map_err(|e| format!("{e} (or off)")),
        }
    }
}

/// Runs `stadion controller` until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::init_tracing(args.log_json, "info");
    let dashboard = match dashboard_config(&args) {
        Ok(dashboard) => dashboard,
        Err(message) => {
            eprintln!("stadion controller: {message}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    let port_ranges =
        PortRanges::new().with(DEFAULT_PORT_RANGE, args.min_port, args.max_port).context("--min-port/--max-port")?;
    let identity =
        args.identity.or_else(|| std::env::var("HOSTNAME").ok()).unwrap_or_else(|| "stadion-controller".into());
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => TlsSource::Files { cert, key },
        _ => TlsSource::self_signed_for(SERVICE_NAME, &args.lease_namespace),
    };
    let allocation_api = args.allocation_api_addr.0.map(|addr| AllocationApiConfig {
        addr,
        tls,
        client_auth: args.allocation_api_client_auth,
    });
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
        allocation_api,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        run_with_default_client(config, dashboard, super::shutdown_signal()).await?;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use stadion_controller::kube::allocation_api::front_proxy::ClientAuth;

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

    #[test]
    fn the_dashboard_is_off_by_default_and_never_served_without_a_token() {
        let parse =
            |args: &[&str]| Controller::try_parse_from(std::iter::once("controller").chain(args.iter().copied()));
        assert!(matches!(super::dashboard_config(&parse(&[]).expect("parses").args), Ok(None)));
        let open = parse(&["--dashboard-address", "127.0.0.1:8090"]).expect("parses").args;
        let refused = super::dashboard_config(&open).expect_err("no token");
        assert!(refused.contains("needs a bearer token"), "{refused}");
        let with =
            parse(&["--dashboard-address", "127.0.0.1:8090", "--dashboard-tokens", "a, b"]).expect("parses").args;
        let config = super::dashboard_config(&with).expect("served").expect("on");
        assert_eq!(config.address, "127.0.0.1:8090".parse().unwrap());
        assert!(parse(&["--dashboard-address", "nowhere"]).is_err());
    }

    #[test]
    fn allocation_api_is_on_by_default_and_can_be_turned_off() {
        let parse =
            |args: &[&str]| Controller::try_parse_from(std::iter::once("controller").chain(args.iter().copied()));
        let default = parse(&[]).expect("parses").args;
        assert_eq!(default.allocation_api_addr.0, Some("0.0.0.0:8443".parse().unwrap()));
        assert_eq!(parse(&["--allocation-api-addr", "off"]).expect("parses").args.allocation_api_addr.0, None);
        assert!(parse(&["--allocation-api-addr", "nowhere"]).is_err());
        // A certificate without its key (or the reverse) is a usage error.
        assert!(parse(&["--tls-cert", "/tmp/c.pem"]).is_err());
        let both = parse(&["--tls-cert", "/c.pem", "--tls-key", "/k.pem"]).expect("parses").args;
        assert_eq!(both.tls_key.as_deref(), Some(std::path::Path::new("/k.pem")));
        // Only the aggregator may call it unless told otherwise.
        assert_eq!(default.allocation_api_client_auth, ClientAuth::FrontProxy);
        let open = parse(&["--allocation-api-client-auth", "off"]).expect("parses").args;
        assert_eq!(open.allocation_api_client_auth, ClientAuth::Off);
        assert!(parse(&["--allocation-api-client-auth", "maybe"]).is_err());
    }
}

//! `stadion matchmaker`: the matchmaker HTTP service on its own, allocating from a Kubernetes
//! cluster through the kube allocator. (Inside `stadion up` it runs beside the local runtime.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use stadion_controller::kube::allocator::KubeAllocator;
use stadion_matchmaker::{Matchmaker, MatchmakerConfig};

use super::config_reload::{ConfigWatch, Reload};

/// Flags of `stadion matchmaker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Queue configuration (YAML): queues, match sizes, rules, allocation selectors.
    #[arg(long, env = "STADION_MATCHMAKER_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Address the HTTP API listens on.
    #[arg(long, env = "STADION_MATCHMAKER_ADDR", default_value = "0.0.0.0:9600", value_parser = super::socket_addr)]
    pub listen: SocketAddr,
    /// Only allocate GameServers in this namespace (all namespaces when unset).
    #[arg(long, env = "STADION_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Keep tickets and waiting matches in a journal in this folder, so a restart resumes
    /// them (overrides the config's `stateDir`). Unset: tickets live in memory only.
    #[arg(long, env = "STADION_MATCHMAKER_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// When the journal in `--state-dir` is synced to disk (overrides the config's
    /// `stateSync`): `always` (the default: each acknowledged ticket survives a crash of the
    /// machine) or a duration such as `1s` (answered once written, so it survives a crash of
    /// the process; a crash of the machine loses at most that long).
    #[arg(long, env = "STADION_MATCHMAKER_STATE_SYNC", value_name = "always|DURATION")]
    pub state_sync: Option<stadion_matchmaker::config::StateSync>,
    /// Keep tickets and waiting matches in Redis at this URL (`redis://host:6379/0`) instead
    /// (overrides the config's `redis`); a restart resumes them. Cannot be combined with
    /// `--state-dir`.
    #[arg(long, env = "STADION_MATCHMAKER_REDIS_URL", value_name = "URL", conflicts_with = "state_dir")]
    pub redis_url: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "STADION_LOG_JSON", value_parser = super::boolish())]
    pub log_json: bool,
}

/// Runs `stadion matchmaker` until SIGTERM or Ctrl-C. An invalid config exits 2 before anything
/// starts.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::init_tracing(args.log_json, "info");
    let mut config = match MatchmakerConfig::from_yaml_file(&args.config) {
        Ok(config) => config,
        // A read error names the file itself; the others say where in it.
        Err(error @ stadion_matchmaker::Error::ConfigRead { .. }) => {
            eprintln!("stadion matchmaker: {error}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
        Err(error) => {
            eprintln!("stadion matchmaker: {}", super::config_reload::describe_error(&args.config, &error));
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    if let Some(dir) = &args.state_dir {
        config.state_dir = Some(dir.clone());
    }
    if let Some(sync) = args.state_sync {
        config.state_sync = Some(sync);
    }
    if let Some(url) = &args.redis_url {
        config.redis = Some(url.clone());
    }
    // `stateDir` in the file and `--redis-url`, or the other way round.
    if let Err(error) = config.validate() {
        eprintln!("stadion matchmaker: {}", super::config_reload::describe_error(&args.config, &error));
        return Ok(ExitCode::from(super::EXIT_USAGE));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        let (allocator, watch) = KubeAllocator::from_environment(args.namespace.as_deref())
            .await
            .context("connecting to the Kubernetes API (KUBECONFIG or in-cluster)")?;
        tokio::spawn(watch);
        let matchmaker = match Matchmaker::open(config, Arc::new(allocator)).await {
            Ok(matchmaker) => matchmaker,
            // An unreachable or busy store is the operator's to fix, like a bad flag.
            Err(error @ stadion_matchmaker::Error::Store(_)) => {
                eprintln!("stadion matchmaker: {error}");
                return Ok(ExitCode::from(super::EXIT_USAGE));
            }
            Err(error) => return Err(anyhow::Error::new(error).context("starting the matchmaker")),
        };
        tokio::spawn(reload_on_change(ConfigWatch::new(&args.config), matchmaker.clone()));
        tracing::info!(addr = %args.listen, "matchmaker listening");
        stadion_matchmaker::http::serve(args.listen, matchmaker, super::shutdown_signal())
            .await
            .context("serving the matchmaker API")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// How often the config file is checked for edits (a mounted ConfigMap changes in place).
const RELOAD_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Re-applies the config file whenever it changes; an invalid edit is logged and the
/// configuration in force kept.
async fn reload_on_change(mut config: ConfigWatch, matchmaker: Matchmaker) {
    let mut tick = tokio::time::interval(RELOAD_POLL);
    loop {
        tick.tick().await;
        match config.poll(&matchmaker) {
            Some(Reload::Applied(reconfigured)) => {
                tracing::info!("{}", super::config_reload::summary(config.path(), &reconfigured));
            }
            Some(Reload::Refused(error)) => {
                tracing::error!(file = %config.path().display(), %error, "matchmaker configuration not re-applied; the previous one stays in force");
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use stadion_matchmaker::MatchmakerConfig;

    /// The queues the install manifests ship in their ConfigMap must be a config the
    /// matchmaker accepts, or the Deployment crash-loops on a fresh install.
    #[test]
    fn install_configmap_holds_a_valid_queue_config() {
        let install = include_str!("../../deploy/40-matchmaker.yaml");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(install).expect("install YAML parses");
        let configmap = docs.into_iter().find(|doc| doc["kind"] == "ConfigMap").expect("a ConfigMap with the queues");
        let queues = configmap["data"]["matchmaker.yaml"].as_str().expect("data.matchmaker.yaml");
        let config = MatchmakerConfig::from_yaml_str(queues).expect("the shipped queues validate");
        assert!(!config.queues.is_empty());
    }

    /// The install runs two matchmaker replicas sharing the Redis deploy/redis/ ships: the
    /// Deployment names that Service's URL, and that Service selects its Pods on Redis' port.
    #[test]
    fn the_matchmaker_replicas_share_the_redis_the_manifests_ship() {
        let install = include_str!("../../deploy/40-matchmaker.yaml");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(install).expect("install YAML parses");
        let matchmaker = docs.iter().find(|doc| doc["kind"] == "Deployment").expect("the matchmaker Deployment");
        assert_eq!(matchmaker["spec"]["replicas"].as_u64(), Some(2));
        let env = matchmaker["spec"]["template"]["spec"]["containers"][0]["env"].as_array().expect("env");
        let url = env
            .iter()
            .find(|var| var["name"] == "STADION_MATCHMAKER_REDIS_URL")
            .and_then(|var| var["value"].as_str())
            .expect("STADION_MATCHMAKER_REDIS_URL set on the matchmaker");
        let url = url.strip_prefix("redis://").expect("a redis:// URL");
        let (host, port) = url.split_once('/').map_or(url, |(authority, _)| authority).split_once(':').unwrap();
        let redis = include_str!("../../deploy/redis/matchmaker-redis.yaml");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(redis).expect("Redis YAML parses");
        let service = docs.iter().find(|doc| doc["kind"] == "Service").expect("a Service");
        let deployment = docs.iter().find(|doc| doc["kind"] == "Deployment").expect("a Deployment");
        let name = service["metadata"]["name"].as_str().unwrap();
        let namespace = service["metadata"]["namespace"].as_str().unwrap();
        assert_eq!(host, format!("{name}.{namespace}"));
        assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), port.parse().ok());
        assert_eq!(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["ports"][0]["containerPort"].as_u64(), port.parse().ok());
    }
}

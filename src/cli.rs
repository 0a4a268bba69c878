//! One module per subcommand: its flags (clap, with `STADION_*` env fallbacks) and its `run`.

pub mod allocate;
pub mod config_reload;
pub mod controller;
pub mod crds;
pub mod get;
pub mod install;
pub mod matchmaker;
pub mod matchmaker_feed;
pub mod orphan_guard;
pub mod pod_sandbox;
pub mod sdk_server;
pub mod simple_game_server;
pub mod up;

/// Exit code for bad input (invalid flags, manifests or configuration).
pub const EXIT_USAGE: u8 = 2;

/// Values of boolean flags and their env fallbacks, as people write them in env files and
/// Deployments: `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`.
/// A duration flag where a bare number is seconds, as the flag took before it read durations:
/// `30`, `30s`, `1m30s`, `1.5m`, `300ms` (Stadion's one grammar, `stadion_crds::duration`).
pub fn duration_or_seconds(value: &str) -> Result<std::time::Duration, String> {
    stadion_crds::duration::parse_std(value, stadion_crds::duration::BareNumber::Seconds).map_err(|e| e.to_string())
}

/// A duration flag where a bare number is milliseconds (`--poll-ms 250`, or `250ms`, `1s`).
pub fn duration_or_millis(value: &str) -> Result<std::time::Duration, String> {
    stadion_crds::duration::parse_std(value, stadion_crds::duration::BareNumber::Millis).map_err(|e| e.to_string())
}

pub fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

/// A listen or connect address by IP (`127.0.0.1:9500`, `[::1]:9500`) or by host name
/// (`localhost:9500`), resolved once at start; IPv4 wins when a name has both.
pub fn socket_addr(value: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    let resolved: Vec<std::net::SocketAddr> = value
        .to_socket_addrs()
        .map_err(|e| format!("{e}: expected HOST:PORT, like 127.0.0.1:9500 or localhost:9500"))?
        .collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| format!("{value} resolves to no address"))
}

/// Writes `bytes` to stdout. A reader that went away (`| head`) is not an error: the output is
/// simply no longer wanted, as for every Unix filter.
pub fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Resolves on SIGTERM (Kubernetes stopping the Pod, `kill`) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Installs the tracing subscriber on stderr: the `RUST_LOG` filter, else `default_filter`
/// (`info` for services; `warn` for `up`, whose console belongs to progress and game output),
/// as text or JSON lines.
pub fn init_tracing(json: bool, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // try_init: a second subscriber (tests, embedding) is not an error worth dying for.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

//! One module per subcommand: its flags (clap, with `STADION_*` env fallbacks) and its `run`.

pub mod controller;
pub mod crds;
pub mod install;
pub mod matchmaker;
pub mod orphan_guard;
pub mod sdk_server;
pub mod simple_game_server;
pub mod up;

/// Exit code for bad input (invalid flags, manifests or configuration).
pub const EXIT_USAGE: u8 = 2;

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

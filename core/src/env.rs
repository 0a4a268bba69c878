//! Environment variables the runtimes inject into every game process (local) or game container
//! (kube). The Agones ones keep existing SDKs working unchanged; the `STADION_*` ones spare a game
//! the SDK round-trip just to learn which port to bind.
//!
//! | variable | value |
//! |---|---|
//! | `AGONES_SDK_GRPC_PORT` | the sidecar's gRPC port (9357 unless `sdkServer.grpcPort`) |
//! | `AGONES_SDK_HTTP_PORT` | the sidecar's REST port (9358 unless `sdkServer.httpPort`) |
//! | `STADION_GAMESERVER_NAME` | the GameServer's name |
//! | `STADION_GAMESERVER_NAMESPACE` | its namespace |
//! | `STADION_PORT_<NAME>` | the port the game must listen on for spec port `<name>` |
//! | `STADION_PUBLIC_PORT_<NAME>` | the port players connect to (the status port) |
//!
//! `<NAME>` is the port name uppercased with every character outside `A-Z0-9` replaced by `_`
//! (`game-tcp` → `GAME_TCP`). A TCPUDP port gets one variable under its spec name. The listen
//! port depends on the runtime: a local process shares the host's network, so it binds the host
//! port; a container binds its container port, which Kubernetes maps to the host port.

use stadion_crds::GameServer;
use stadion_crds::gameserver::PortPolicy;

/// gRPC port of the SDK sidecar (read by every Agones SDK).
pub const AGONES_SDK_GRPC_PORT: &str = "AGONES_SDK_GRPC_PORT";
/// REST port of the SDK sidecar (read by every Agones SDK).
pub const AGONES_SDK_HTTP_PORT: &str = "AGONES_SDK_HTTP_PORT";
/// Name of the GameServer the process serves.
pub const STADION_GAMESERVER_NAME: &str = "STADION_GAMESERVER_NAME";
/// Namespace of the GameServer the process serves.
pub const STADION_GAMESERVER_NAMESPACE: &str = "STADION_GAMESERVER_NAMESPACE";
/// Prefix of the per-port listen variables: `STADION_PORT_<NAME>`.
pub const STADION_PORT_PREFIX: &str = "STADION_PORT_";
/// Prefix of the per-port public variables: `STADION_PUBLIC_PORT_<NAME>`.
pub const STADION_PUBLIC_PORT_PREFIX: &str = "STADION_PUBLIC_PORT_";

/// Where the game process's network lives, which decides the port it must bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// A local child process on the host network: it binds the host port.
    Host,
    /// A container with its own network namespace: it binds the container port.
    Container,
}

/// Puts the runtime's `injected` variables into a container's own `env`, in both runtimes.
///
/// Injected names are reserved, as Agones reserves its SDK variables: a template entry of the
/// same name is dropped and the runtime's value used, because a game told the wrong sidecar
/// port (or the wrong name or listen port) cannot work, whatever the template meant. Every other
/// template entry keeps its place and value. `name_of` reads an entry's name; `make` builds one.
pub fn merge_reserved<T>(
    env: &mut Vec<T>,
    injected: &[(String, String)],
    name_of: impl Fn(&T) -> &str,
    make: impl Fn(&str, &str) -> T,
) {
    env.retain(|entry| !injected.iter().any(|(name, _)| name == name_of(entry)));
    env.extend(injected.iter().map(|(name, value)| make(name, value)));
}

/// `game-tcp` → `GAME_TCP`: the `<NAME>` part of the per-port variables.
pub fn port_env_suffix(port_name: &str) -> String {
    port_name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// The variables for one game process, in a stable order. Call it after host ports are
/// allocated; ports without a number yet are left out.
pub fn game_process_env(gs: &GameServer, mode: NetworkMode) -> Vec<(String, String)> {
    let sdk = gs.spec.sdk_server.clone().unwrap_or_default();
    let mut env = vec![
        (AGONES_SDK_GRPC_PORT.to_owned(), sdk.grpc_port().to_string()),
        (AGONES_SDK_HTTP_PORT.to_owned(), sdk.http_port().to_string()),
        (STADION_GAMESERVER_NAME.to_owned(), gs.name().to_owned()),
        (STADION_GAMESERVER_NAMESPACE.to_owned(), gs.namespace().to_owned()),
    ];
    for port in &gs.spec.ports {
        let public = match port.policy() {
            PortPolicy::None => port.container_port,
            PortPolicy::Dynamic | PortPolicy::Static | PortPolicy::Passthrough => port.host_port,
        };
        let listen = match mode {
            NetworkMode::Host => public,
            NetworkMode::Container => port.container_port.or(public),
        };
        let suffix = port_env_suffix(&port.name);
        if let Some(listen) = listen {
            env.push((format!("{STADION_PORT_PREFIX}{suffix}"), listen.to_string()));
        }
        if let Some(public) = public {
            env.push((format!("{STADION_PUBLIC_PORT_PREFIX}{suffix}"), public.to_string()));
        }
    }
    env
}

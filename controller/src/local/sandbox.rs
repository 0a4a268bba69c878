//! Opt-in network isolation for local games: each game runs in its own network namespace, as
//! a pod does, with its SDK sidecar reachable only from inside it.
//!
//! Without isolation every sidecar listens on the host's loopback, so any local process that
//! finds a sibling's port can mark an Allocated server Ready (and have it handed out twice) or
//! shut it down. With isolation the runtime starts `stadion __pod-sandbox` instead of the game.
//! That process, still in the host's namespaces, binds the server's host ports; then it enters a
//! new user and network namespace (unprivileged: the user namespace maps only the caller's own
//! uid and gid), brings its loopback up, binds the SDK ports (9357/9358 unless the spec says
//! otherwise) on that loopback and hands the two listening sockets to the runtime over its
//! stdin, a Unix socket (`SCM_RIGHTS`). The runtime serves the in-process sidecar on them, so
//! the sidecar answers only connections made inside that namespace. Finally the sandbox starts
//! the game there and relays the host ports to the game's container ports.
//!
//! The game therefore sees a pod's network: `localhost:9357` is its own sidecar, it listens on
//! its `containerPort`, and two servers of one fleet may use the same container port.

mod fds;
mod namespace;
mod relay;

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use stadion_crds::GameServer;
use stadion_crds::gameserver::Protocol;
use stadion_sdk::server::SdkListeners;

pub use fds::{receive_listeners, send_listeners};
pub use namespace::{Entered, enter, probe};
pub use relay::run_game;

/// The name of the hidden subcommand that runs a sandbox.
pub const SUBCOMMAND: &str = "__pod-sandbox";

/// How long the runtime waits for a sandbox to hand over its SDK listeners.
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start a sandbox: the Stadion binary (`stadion up` passes its own executable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxCommand {
    /// The program whose [`SUBCOMMAND`] runs the sandbox.
    pub program: PathBuf,
}

/// Transport of a relayed port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Datagrams.
    Udp,
    /// Streams.
    Tcp,
}

/// One host port relayed to a container port inside the sandbox (`udp:7001:7654`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayedPort {
    /// Datagrams or streams.
    pub transport: Transport,
    /// The port players reach on the host.
    pub host: u16,
    /// The port the game listens on inside its namespace.
    pub container: u16,
}

impl fmt::Display for RelayedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        write!(f, "{transport}:{}:{}", self.host, self.container)
    }
}

impl FromStr for RelayedPort {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let wrong = || format!("{value:?}: expected udp|tcp:HOST_PORT:CONTAINER_PORT");
        let mut parts = value.split(':');
        let transport = match parts.next() {
            Some("udp") => Transport::Udp,
            Some("tcp") => Transport::Tcp,
            _ => return Err(wrong()),
        };
        let mut port = || parts.next().and_then(|p| p.parse::<u16>().ok()).filter(|p| *p != 0).ok_or_else(wrong);
        let (host, container) = (port()?, port()?);
        if parts.next().is_some() {
            return Err(wrong());
        }
        Ok(Self { transport, host, container })
    }
}

/// The ports to relay for `gs`: each allocated host port to its container port (the host port
/// when the spec gives none, as for Passthrough), once per transport.
pub fn relayed_ports(gs: &GameServer) -> Vec<RelayedPort> {
    let mut relayed = Vec::new();
    for port in &gs.spec.ports {
        let Some(host) = port.host_port.and_then(|p| u16::try_from(p).ok()) else { continue };
        let container = port.container_port.and_then(|p| u16::try_from(p).ok()).unwrap_or(host);
        let transports: &[Transport] = match port.protocol() {
            Protocol::Udp => &[Transport::Udp],
            Protocol::Tcp => &[Transport::Tcp],
            Protocol::TcpUdp => &[Transport::Udp, Transport::Tcp],
        };
        relayed.extend(transports.iter().map(|&transport| RelayedPort { transport, host, container }));
    }
    relayed
}

/// The arguments that make [`SandboxCommand::program`] run `game` with `args` in a sandbox.
pub fn sandbox_args(ports: &[RelayedPort], sdk: (u16, u16), game: &std::path::Path, args: &[String]) -> Vec<String> {
    let mut out = vec![SUBCOMMAND.to_owned(), "--sdk-grpc-port".into(), sdk.0.to_string()];
    out.extend(["--sdk-http-port".into(), sdk.1.to_string()]);
    for port in ports {
        out.extend(["--relay".into(), port.to_string()]);
    }
    out.push("--".into());
    out.push(game.display().to_string());
    out.extend(args.iter().cloned());
    out
}

/// Turns two received listening sockets into the sidecar's listeners.
pub fn sdk_listeners(grpc: OwnedFd, http: OwnedFd) -> std::io::Result<SdkListeners> {
    let listener = |fd: OwnedFd| {
        let std = std::net::TcpListener::from(fd);
        std.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(std)
    };
    Ok(SdkListeners { grpc: listener(grpc)?, http: listener(http)? })
}

#[cfg(test)]
mod tests {
    use stadion_crds::gameserver::{GameServerPort, GameServerSpec};

    use super::*;

    #[test]
    fn relayed_ports_round_trip_through_their_argument_form() {
        for text in ["udp:7001:7654", "tcp:7002:26000"] {
            assert_eq!(text.parse::<RelayedPort>().expect("parses").to_string(), text);
        }
        for wrong in ["sctp:1:2", "udp:1", "udp:0:2", "udp:1:2:3", "tcp:x:2"] {
            assert!(wrong.parse::<RelayedPort>().is_err(), "{wrong}");
        }
    }

    #[test]
    fn every_allocated_port_is_relayed_once_per_transport() {
        let port = |name: &str, host: Option<i32>, container: Option<i32>, protocol| GameServerPort {
            name: name.into(),
            host_port: host,
            container_port: container,
            protocol: Some(protocol),
            ..GameServerPort::default()
        };
        let spec = GameServerSpec {
            ports: vec![
                port("game", Some(7001), Some(7654), Protocol::Udp),
                port("both", Some(7002), None, Protocol::TcpUdp),
                port("none", None, Some(9000), Protocol::Tcp),
            ],
            ..GameServerSpec::default()
        };
        let relayed = relayed_ports(&GameServer::new("gs", spec));
        let texts: Vec<String> = relayed.iter().map(ToString::to_string).collect();
        assert_eq!(texts, ["udp:7001:7654", "udp:7002:7002", "tcp:7002:7002"]);
    }
}

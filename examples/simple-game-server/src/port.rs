//! Which port the game listens on.
//!
//! In order: `STADION_PORT_<NAME>` (set by both Stadion runtimes: the host port for a local
//! process, the container port in a pod); with `--passthrough`, the port of that name in the
//! GameServer's status (Agones Passthrough, where container port = host port, is only known
//! after scheduling); else `--port` (the manifest's `containerPort`, as on Agones).

use stadion_sdk::proto;

/// Prefix of the per-port listen variables the Stadion runtimes set.
pub const PORT_ENV_PREFIX: &str = "STADION_PORT_";

/// Where the chosen port came from, for the startup log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortSource {
    /// The runtime's `STADION_PORT_<NAME>` variable (the variable's name).
    Environment(String),
    /// The GameServer status port of that name (Passthrough).
    Status(String),
    /// The `--port` flag (or its default).
    Flag,
}

/// `game-tcp` → `STADION_PORT_GAME_TCP`: upper case, every character outside `A-Z0-9` as `_`.
pub fn env_var_name(port_name: &str) -> String {
    let suffix: String =
        port_name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("{PORT_ENV_PREFIX}{suffix}")
}

/// The port from the runtime's environment, if it set one for `port_name`. A value that is not a
/// port is an error rather than a silent fallback: it means the runtime and the game disagree.
pub fn from_env(port_name: &str, lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<(u16, PortSource)>> {
    let var = env_var_name(port_name);
    let Some(raw) = lookup(&var) else { return Ok(None) };
    let port = raw.trim().parse::<u16>().map_err(|_| anyhow::anyhow!("{var}={raw:?} is not a port number"))?;
    Ok(Some((port, PortSource::Environment(var))))
}

/// The status port called `port_name`; when the server has exactly one port, that one, whatever
/// its name. `None` while the status has no ports yet (before scheduling).
pub fn from_status(gameserver: &proto::GameServer, port_name: &str) -> Option<(u16, PortSource)> {
    let ports = &gameserver.status.as_ref()?.ports;
    let port = ports.iter().find(|p| p.name == port_name).or(match ports.as_slice() {
        [only] => Some(only),
        _ => None,
    })?;
    let number = u16::try_from(port.port).ok().filter(|p| *p != 0)?;
    Some((number, PortSource::Status(port.name.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gameserver(ports: &[(&str, i32)]) -> proto::GameServer {
        let ports =
            ports.iter().map(|(name, port)| proto::game_server::status::Port { name: (*name).into(), port: *port });
        proto::GameServer {
            status: Some(proto::game_server::Status { ports: ports.collect(), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn env_names_follow_the_runtime_rule() {
        assert_eq!(env_var_name("default"), "STADION_PORT_DEFAULT");
        assert_eq!(env_var_name("game-tcp"), "STADION_PORT_GAME_TCP");
        assert_eq!(env_var_name("a.b/c"), "STADION_PORT_A_B_C");
    }

    #[test]
    fn env_port_is_read_and_bad_values_fail() {
        let env = |value: &'static str| move |name: &str| (name == "STADION_PORT_GAME").then(|| value.to_owned());
        assert_eq!(
            from_env("game", env("7012")).expect("valid"),
            Some((7012, PortSource::Environment("STADION_PORT_GAME".into())))
        );
        assert_eq!(from_env("other", env("7012")).expect("absent is fine"), None);
        let error = from_env("game", env("seven")).expect_err("not a port");
        assert!(error.to_string().contains("STADION_PORT_GAME"), "{error}");
        assert!(from_env("game", env("70000")).is_err());
    }

    #[test]
    fn status_port_by_name_or_the_only_one() {
        let two = gameserver(&[("a", 7001), ("b", 7002)]);
        assert_eq!(from_status(&two, "b"), Some((7002, PortSource::Status("b".into()))));
        assert_eq!(from_status(&two, "c"), None);
        let one = gameserver(&[("game", 7005)]);
        assert_eq!(from_status(&one, "default"), Some((7005, PortSource::Status("game".into()))));
        // Not yet scheduled: no number yet.
        assert_eq!(from_status(&gameserver(&[("default", 0)]), "default"), None);
        assert_eq!(from_status(&proto::GameServer::default(), "default"), None);
    }
}

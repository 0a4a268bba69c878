//! The YAML scenarios apply: what a user writes, the same for every runtime. Only the game
//! command differs from a real manifest: it is the test game, which a local runtime runs and a
//! kube harness never needs to (its Pods run nowhere).

/// A command no machine has: a server of it cannot start (Error).
pub const MISSING_GAME: &str = "/nonexistent/stadion-contract/game";

/// The test game (`stadion-test-game`), which calls Ready, pings health and then waits.
pub fn test_game() -> String {
    crate::local_runtime::game()
}

/// A Fleet or GameServerSet manifest.
#[derive(Clone, Debug)]
pub struct SetYaml {
    kind: &'static str,
    name: String,
    replicas: i32,
    scheduling: Option<&'static str>,
    rolling: Option<(String, String)>,
    command: String,
    template_labels: Vec<(String, String)>,
    host_port: Option<i32>,
}

impl SetYaml {
    /// Fleet `name` of `replicas` test games, with nothing defaulted by hand.
    pub fn fleet(name: &str, replicas: i32) -> Self {
        Self {
            kind: "Fleet",
            name: name.to_owned(),
            replicas,
            scheduling: None,
            rolling: None,
            command: test_game(),
            template_labels: Vec::new(),
            host_port: None,
        }
    }

    /// GameServerSet `name` of `replicas` test games.
    pub fn set(name: &str, replicas: i32) -> Self {
        Self { kind: "GameServerSet", ..Self::fleet(name, replicas) }
    }

    /// With `spec.scheduling`.
    pub fn scheduling(mut self, scheduling: &'static str) -> Self {
        self.scheduling = Some(scheduling);
        self
    }

    /// With a RollingUpdate strategy of these limits.
    pub fn rolling(mut self, max_surge: &str, max_unavailable: &str) -> Self {
        self.rolling = Some((max_surge.to_owned(), max_unavailable.to_owned()));
        self
    }

    /// With `replicas`.
    pub fn replicas(mut self, replicas: i32) -> Self {
        self.replicas = replicas;
        self
    }

    /// Running `command` instead of the test game.
    pub fn command(mut self, command: &str) -> Self {
        command.clone_into(&mut self.command);
        self
    }

    /// With a host port on its Dynamic port (which validation refuses: Dynamic picks one).
    pub fn host_port(mut self, port: i32) -> Self {
        self.host_port = Some(port);
        self
    }

    /// With a label on the GameServer template (a template change, for a rolling update).
    pub fn template_label(mut self, key: &str, value: &str) -> Self {
        self.template_labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The YAML document.
    pub fn render(&self) -> String {
        let mut out = format!(
            "apiVersion: agones.dev/v1\nkind: {}\nmetadata:\n  name: {}\nspec:\n  replicas: {}\n",
            self.kind, self.name, self.replicas
        );
        if let Some(scheduling) = self.scheduling {
            out.push_str(&format!("  scheduling: {scheduling}\n"));
        }
        if let Some((surge, unavailable)) = &self.rolling {
            out.push_str(&format!(
                "  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: {surge}\n      maxUnavailable: {unavailable}\n"
            ));
        }
        out.push_str("  template:\n");
        if !self.template_labels.is_empty() {
            out.push_str("    metadata:\n      labels:\n");
            for (key, value) in &self.template_labels {
                out.push_str(&format!("        {key}: {value:?}\n"));
            }
        }
        out.push_str("    spec:\n");
        out.push_str(&indent(&gameserver_spec(&self.command, self.host_port), 6));
        out
    }
}

/// A GameServer spec running `command`.
fn gameserver_spec(command: &str, host_port: Option<i32>) -> String {
    let host_port = host_port.map(|p| format!("    hostPort: {p}\n")).unwrap_or_default();
    format!(
        "ports:\n  - name: default\n    containerPort: 7654\n{host_port}health:\n  periodSeconds: 1\n  failureThreshold: 3\n  initialDelaySeconds: 1\ntemplate:\n  spec:\n    containers:\n      - name: game\n        image: registry.invalid/stadion-contract-game:1\n        command: [{command:?}]\n"
    )
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// A standalone GameServer `name` of the test game with these labels (no owner).
pub fn gameserver(name: &str, labels: &[(&str, &str)]) -> String {
    let mut out = format!("apiVersion: agones.dev/v1\nkind: GameServer\nmetadata:\n  name: {name}\n");
    if !labels.is_empty() {
        out.push_str("  labels:\n");
        for (key, value) in labels {
            out.push_str(&format!("    {key}: {value:?}\n"));
        }
    }
    out.push_str("spec:\n");
    out.push_str(&indent(&gameserver_spec(&test_game(), None), 2));
    out
}

/// A Buffer FleetAutoscaler for `fleet` that syncs every second.
pub fn buffer_autoscaler(name: &str, fleet: &str, buffer: i32, min: i32, max: i32) -> String {
    format!(
        "apiVersion: autoscaling.agones.dev/v1\nkind: FleetAutoscaler\nmetadata:\n  name: {name}\nspec:\n  fleetName: {fleet}\n  policy:\n    type: Buffer\n    buffer:\n      bufferSize: {buffer}\n      minReplicas: {min}\n      maxReplicas: {max}\n  sync:\n    type: FixedInterval\n    fixedInterval:\n      seconds: 1\n"
    )
}

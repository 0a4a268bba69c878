//! `agones.dev/v1` GameServer: one dedicated game-server process and its lifecycle.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{NodeAddress, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{CounterStatus, ListStatus, SchedulingStrategy, preserve_unknown_object};
use crate::labels;
use crate::resource::namespaced_resource;

/// A dedicated game server, backed by a Pod (kube runtime) or a child process (local runtime).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServer {
    /// Always `agones.dev/v1`.
    #[serde(default = "GameServer::default_api_version")]
    pub api_version: String,
    /// Always `GameServer`.
    #[serde(default = "GameServer::default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: GameServerSpec,
    /// Observed state (written with the object: GameServer has no status subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<GameServerStatus>,
}

namespaced_resource!(GameServer, group = "agones.dev", version = "v1", plural = "gameservers");

/// GameServer spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerSpec {
    /// Name of the game container in the pod template (defaulted when there is only one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Ports to expose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<GameServerPort>,
    /// Health checking through SDK pings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Packed (default) or Distributed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<SchedulingStrategy>,
    /// Settings of the SDK sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_server: Option<SdkServer>,
    /// Pod template of the game server (a full core/v1 PodTemplateSpec).
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub template: PodTemplateSpec,
    /// Player tracking (alpha).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub players: Option<PlayersSpec>,
    /// Initial counters, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, CounterStatus>,
    /// Initial lists, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lists: BTreeMap<String, ListStatus>,
    /// Disruption tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction: Option<Eviction>,
}

/// One port of a GameServer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerPort {
    /// Port name; shows up in the status and in the SDK.
    #[serde(default)]
    pub name: String,
    /// How the host port is chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_policy: Option<PortPolicy>,
    /// Name of the port range Dynamic/Passthrough ports come from (`default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Container the port belongs to (defaults to the game container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Port the game listens on inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<i32>,
    /// Port exposed on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i32>,
    /// UDP (default), TCP or TCPUDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

impl GameServerPort {
    /// The port policy, Dynamic when unset.
    pub fn policy(&self) -> PortPolicy {
        self.port_policy.unwrap_or_default()
    }

    /// The protocol, UDP when unset.
    pub fn protocol(&self) -> Protocol {
        self.protocol.unwrap_or_default()
    }

    /// The range name, `default` when unset.
    pub fn range(&self) -> &str {
        self.range.as_deref().unwrap_or(DEFAULT_PORT_RANGE)
    }
}

/// Name of the port range used when a port names none.
pub const DEFAULT_PORT_RANGE: &str = "default";
/// First host port of the default range.
pub const DEFAULT_MIN_PORT: i32 = 7000;
/// Last host port (inclusive) of the default range.
pub const DEFAULT_MAX_PORT: i32 = 8000;

/// How a port's host port is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PortPolicy {
    /// The controller picks a host port from the range; `containerPort` is required.
    #[default]
    Dynamic,
    /// The user sets `hostPort`.
    Static,
    /// A host port is picked and the container port is set equal to it.
    Passthrough,
    /// No host port: the status port is the container port.
    None,
}

impl PortPolicy {
    /// Whether the controller must pick a host port for this policy.
    pub fn needs_host_port_allocation(self) -> bool {
        matches!(self, Self::Dynamic | Self::Passthrough)
    }
}

/// Transport protocol of a port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Protocol {
    /// UDP (default).
    #[default]
    #[serde(rename = "UDP")]
    Udp,
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// Both, on one port number: the status carries `<name>-tcp` and `<name>-udp`.
    #[serde(rename = "TCPUDP")]
    TcpUdp,
}

/// SDK health checking.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Turns health checking off.
    #[serde(default)]
    pub disabled: bool,
    /// Seconds between expected pings (5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i32>,
    /// Missed periods before Unhealthy (3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i32>,
    /// Seconds before checking starts (5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<i32>,
}

/// Agones' default health period, in seconds.
pub const DEFAULT_HEALTH_PERIOD_SECONDS: i32 = 5;
/// Agones' default failure threshold.
pub const DEFAULT_HEALTH_FAILURE_THRESHOLD: i32 = 3;
/// Agones' default initial delay, in seconds.
pub const DEFAULT_HEALTH_INITIAL_DELAY_SECONDS: i32 = 5;

impl Health {
    /// Period in seconds, defaulted.
    pub fn period_seconds(&self) -> i32 {
        self.period_seconds.unwrap_or(DEFAULT_HEALTH_PERIOD_SECONDS)
    }

    /// Failure threshold, defaulted.
    pub fn failure_threshold(&self) -> i32 {
        self.failure_threshold.unwrap_or(DEFAULT_HEALTH_FAILURE_THRESHOLD)
    }

    /// Initial delay in seconds, defaulted.
    pub fn initial_delay_seconds(&self) -> i32 {
        self.initial_delay_seconds.unwrap_or(DEFAULT_HEALTH_INITIAL_DELAY_SECONDS)
    }
}

/// Settings of the SDK sidecar.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SdkServer {
    /// Log level: Error, Info (default), Debug or Trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<SdkServerLogLevel>,
    /// gRPC port (9357).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_port: Option<i32>,
    /// REST port (9358).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_port: Option<i32>,
}

/// Default SDK gRPC port.
pub const DEFAULT_SDK_GRPC_PORT: i32 = 9357;
/// Default SDK REST port.
pub const DEFAULT_SDK_HTTP_PORT: i32 = 9358;

impl SdkServer {
    /// gRPC port, defaulted.
    pub fn grpc_port(&self) -> i32 {
        self.grpc_port.unwrap_or(DEFAULT_SDK_GRPC_PORT)
    }

    /// REST port, defaulted.
    pub fn http_port(&self) -> i32 {
        self.http_port.unwrap_or(DEFAULT_SDK_HTTP_PORT)
    }
}

/// Log level of the SDK sidecar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SdkServerLogLevel {
    /// Errors only.
    Error,
    /// Default.
    #[default]
    Info,
    /// Verbose.
    Debug,
    /// Very verbose.
    Trace,
}

/// Player tracking settings (alpha).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlayersSpec {
    /// Player capacity at start.
    #[serde(default)]
    pub initial_capacity: i64,
}

/// Disruption tolerance of a GameServer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Eviction {
    /// Always, OnUpgrade or Never (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe: Option<EvictionSafe>,
}

/// When a GameServer's pod may be evicted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EvictionSafe {
    /// Always safe to evict.
    Always,
    /// Only for cluster upgrades.
    OnUpgrade,
    /// Never (default).
    #[default]
    Never,
}

/// GameServer status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerStatus {
    /// Lifecycle state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<GameServerState>,
    /// Host ports, by port name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<GameServerStatusPort>,
    /// Primary address of the node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Every address of the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    /// Node the server runs on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// When a Reserved server returns to Ready (none: until told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_until: Option<Time>,
    /// Player tracking (alpha).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub players: Option<PlayerStatus>,
    /// Counters, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, CounterStatus>,
    /// Lists, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lists: BTreeMap<String, ListStatus>,
    /// Effective eviction setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction: Option<Eviction>,
}

/// A port in the status: its name and the port players connect to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerStatusPort {
    /// Port name.
    #[serde(default)]
    pub name: String,
    /// Port number players connect to.
    #[serde(default)]
    pub port: i32,
}

/// Player tracking status (alpha).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlayerStatus {
    /// Connected players.
    #[serde(default)]
    pub count: i64,
    /// Capacity.
    #[serde(default)]
    pub capacity: i64,
    /// Connected player ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
}

/// GameServer lifecycle states, with Agones' exact strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum GameServerState {
    /// Host ports are being picked.
    PortAllocation,
    /// The pod (process) is being created.
    Creating,
    /// The pod exists but is not scheduled.
    Starting,
    /// The pod is on a node; address and ports are known.
    Scheduled,
    /// The game called SDK Ready.
    RequestReady,
    /// Allocatable.
    Ready,
    /// Set aside through SDK Reserve: not allocatable, not scaled down.
    Reserved,
    /// Claimed for a session.
    Allocated,
    /// Being shut down; the controller deletes it.
    Shutdown,
    /// The pod could not be created.
    Error,
    /// Missed health checks or the game died: terminal.
    Unhealthy,
}

impl GameServerState {
    /// Every state, in lifecycle order.
    pub const ALL: [Self; 11] = [
        Self::PortAllocation,
        Self::Creating,
        Self::Starting,
        Self::Scheduled,
        Self::RequestReady,
        Self::Ready,
        Self::Reserved,
        Self::Allocated,
        Self::Shutdown,
        Self::Error,
        Self::Unhealthy,
    ];

    /// Agones' string for this state.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PortAllocation => "PortAllocation",
            Self::Creating => "Creating",
            Self::Starting => "Starting",
            Self::Scheduled => "Scheduled",
            Self::RequestReady => "RequestReady",
            Self::Ready => "Ready",
            Self::Reserved => "Reserved",
            Self::Allocated => "Allocated",
            Self::Shutdown => "Shutdown",
            Self::Error => "Error",
            Self::Unhealthy => "Unhealthy",
        }
    }

    /// Counts toward a set's replicas: neither terminal nor on its way out.
    pub fn is_active(self) -> bool {
        !self.is_terminal()
    }

    /// No state change leaves it (Unhealthy, Shutdown, Error).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Shutdown | Self::Error | Self::Unhealthy)
    }

    /// A GameServerSet may choose it when scaling down or rolling: never Allocated or Reserved.
    pub fn is_deletable_by_set(self) -> bool {
        !matches!(self, Self::Allocated | Self::Reserved)
    }

    /// Not yet Ready (still starting up).
    pub fn is_before_ready(self) -> bool {
        matches!(self, Self::PortAllocation | Self::Creating | Self::Starting | Self::Scheduled | Self::RequestReady)
    }

    /// A server in this state is running a live session or can take one.
    pub fn is_allocatable(self) -> bool {
        self == Self::Ready
    }
}

impl fmt::Display for GameServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown state string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown GameServer state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for GameServerState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| UnknownState(s.to_owned()))
    }
}

impl GameServer {
    /// A GameServer with this name and spec, in no namespace (the runtime fills `default`).
    pub fn new(name: impl Into<String>, spec: GameServerSpec) -> Self {
        Self {
            api_version: Self::default_api_version(),
            kind: Self::default_kind(),
            metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
            spec,
            status: None,
        }
    }

    /// Current state, if the status has one.
    pub fn state(&self) -> Option<GameServerState> {
        self.status.as_ref().and_then(|s| s.state)
    }

    /// Health settings (defaulted when unset).
    pub fn health(&self) -> Health {
        self.spec.health.clone().unwrap_or_default()
    }

    /// Whether any port needs a host port picked by the controller.
    pub fn needs_port_allocation(&self) -> bool {
        self.spec.ports.iter().any(|p| p.policy().needs_host_port_allocation())
    }

    /// Name of the game container: `spec.container`, or the only container of the template.
    pub fn game_container_name(&self) -> Option<&str> {
        self.spec.container.as_deref().or_else(|| match self.pod_containers() {
            [only] => Some(only.name.as_str()),
            _ => None,
        })
    }

    /// Containers of the pod template.
    pub fn pod_containers(&self) -> &[k8s_openapi::api::core::v1::Container] {
        self.spec.template.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default()
    }

    /// Applies Agones' defaults in place: game container name, port policy/protocol/range/
    /// container, health 5/3/5, Packed scheduling, SDK server Info/9357/9358, eviction Never, the
    /// initial state (PortAllocation when a port needs a host port, else Creating), the
    /// `agones.dev/controller` finalizer, and the initial counters/lists/players in the status.
    pub fn apply_defaults(&mut self) {
        if self.api_version.is_empty() {
            self.api_version = Self::default_api_version();
        }
        if self.kind.is_empty() {
            self.kind = Self::default_kind();
        }
        self.spec.apply_defaults();

        let finalizers = self.metadata.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == labels::FINALIZER) {
            finalizers.push(labels::FINALIZER.to_owned());
        }

        let needs_ports = self.needs_port_allocation();
        let status = self.status.get_or_insert_with(GameServerStatus::default);
        if status.state.is_none() {
            status.state = Some(if needs_ports { GameServerState::PortAllocation } else { GameServerState::Creating });
        }
        if status.eviction.is_none() {
            status.eviction = self.spec.eviction.clone();
        }
        if status.counters.is_empty() {
            status.counters = self.spec.counters.clone();
        }
        if status.lists.is_empty() {
            status.lists = self.spec.lists.clone();
        }
        if status.players.is_none()
            && let Some(players) = &self.spec.players
        {
            status.players = Some(PlayerStatus { count: 0, capacity: players.initial_capacity, ids: Vec::new() });
        }
    }
}

impl GameServerSpec {
    /// Applies the spec-level defaults (see [`GameServer::apply_defaults`]). A GameServerSet or
    /// Fleet template uses this too, so every server it creates starts out defaulted.
    pub fn apply_defaults(&mut self) {
        // As in Agones, a single-container template always names the game container, whatever
        // `container` said.
        if let Some(spec) = &self.template.spec
            && let [only] = spec.containers.as_slice()
        {
            self.container = Some(only.name.clone());
        }
        for port in &mut self.ports {
            let policy = *port.port_policy.get_or_insert_with(PortPolicy::default);
            port.protocol.get_or_insert_with(Protocol::default);
            if policy.needs_host_port_allocation() && port.range.is_none() {
                port.range = Some(DEFAULT_PORT_RANGE.to_owned());
            }
            if port.container.is_none() {
                port.container.clone_from(&self.container);
            }
        }
        let health = self.health.get_or_insert_with(Health::default);
        if !health.disabled {
            health.period_seconds.get_or_insert(DEFAULT_HEALTH_PERIOD_SECONDS);
            health.failure_threshold.get_or_insert(DEFAULT_HEALTH_FAILURE_THRESHOLD);
            health.initial_delay_seconds.get_or_insert(DEFAULT_HEALTH_INITIAL_DELAY_SECONDS);
        }
        self.scheduling.get_or_insert_with(SchedulingStrategy::default);
        let sdk = self.sdk_server.get_or_insert_with(SdkServer::default);
        sdk.log_level.get_or_insert_with(SdkServerLogLevel::default);
        sdk.grpc_port.get_or_insert(DEFAULT_SDK_GRPC_PORT);
        sdk.http_port.get_or_insert(DEFAULT_SDK_HTTP_PORT);
        self.eviction.get_or_insert_with(Eviction::default).safe.get_or_insert_with(EvictionSafe::default);
    }
}

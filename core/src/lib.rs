//! `stadion-core`: Stadion's pure decisions, and the seams the runtimes implement.
//!
//! It sits between `stadion-crds` (the types) and everything that does I/O (the sidecar, the
//! matchmaker, the local and kube runtimes). Its dependencies hold no async runtime, client,
//! HTTP or process code, so nothing here can do I/O.
//!
//! Every function here takes the objects a runtime observed (GameServers, sets, fleets,
//! autoscalers, allocation requests, node facts) plus explicit inputs for time (`now`) and
//! randomness (a seed), and returns data: the objects to create, update or delete and the status
//! to write. Nothing here does I/O, spawns tasks or reads the clock, so the local runtime and the
//! kube runtime carry out the same decisions and tests call the functions directly.
//!
//! - [`gameserver`]: the GameServer state machine and what a runtime needs to start a server.
//! - [`ports`]: host-port allocation per node ([`ports::PortAllocator`]).
//! - [`gameserverset`]: how many servers to create, which to shut down, the set's status.
//! - [`fleet`]: active set vs old sets, rolling updates, the fleet's status.
//! - [`autoscaler`]: FleetAutoscaler policies → desired replicas and status.
//! - [`admission`]: defaults, then validation, then the `Valid` condition: the one admission step.
//! - [`conditions`]: the `Valid` status condition of sets and fleets.
//! - [`allocation`]: which server a GameServerAllocation gets, and what changes on it.
//! - [`env`](mod@env): the environment variables a runtime injects into game processes.
//! - [`allocator`]: the [`Allocator`](allocator::Allocator) seam and its typed outcome.
//! - [`store`]: the object-store and recorder seams every executor is written against.
//! - [`testing`]: fixture builders for tests (here and in other crates).

pub mod admission;
pub mod allocation;
pub mod allocator;
pub mod autoscaler;
pub mod conditions;
pub mod env;
pub mod fleet;
pub mod gameserver;
pub mod gameserverset;
pub mod labelselector;
pub mod names;
pub mod nodes;
pub mod ports;
pub mod priority;
pub mod store;
pub mod testing;

pub use names::{NameGenerator, SeededNames};
pub use nodes::NodeLoad;

/// What can go wrong while computing a plan. Each variant says which object or input was at
/// fault, so a runtime can report it as an Event or status condition without more context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A port names a range the allocator was not configured with.
    #[error("port {port:?} of GameServer {gameserver} uses unknown port range {range:?}")]
    UnknownPortRange {
        /// `namespace/name` of the GameServer.
        gameserver: String,
        /// The port's name.
        port: String,
        /// The range it asked for.
        range: String,
    },
    /// No free host port is left in a range on any eligible node.
    #[error("no free host port in range {range:?} for GameServer {gameserver} (nodes tried: {nodes_tried})")]
    PortsExhausted {
        /// `namespace/name` of the GameServer.
        gameserver: String,
        /// The range that ran out.
        range: String,
        /// How many nodes were considered.
        nodes_tried: usize,
    },
    /// A Static port's host port is already taken on the node.
    #[error("static host port {port} of GameServer {gameserver} is already in use on node {node:?}")]
    StaticPortInUse {
        /// `namespace/name` of the GameServer.
        gameserver: String,
        /// The host port.
        port: i32,
        /// The node.
        node: String,
    },
    /// A port lacks a number it needs (Static without hostPort, None without containerPort).
    #[error("port {port:?} of GameServer {gameserver} has policy {policy} but no {field}")]
    MissingPortNumber {
        /// `namespace/name` of the GameServer.
        gameserver: String,
        /// The port's name.
        port: String,
        /// Its policy.
        policy: &'static str,
        /// The missing field (`hostPort`, `containerPort`).
        field: &'static str,
    },
    /// The allocator has no node to put a server without a node on.
    #[error("no nodes are known to the port allocator, so GameServer {gameserver} cannot get host ports")]
    NoNodes {
        /// `namespace/name` of the GameServer.
        gameserver: String,
    },
    /// A port range is empty or outside 1–65535.
    #[error("port range {name:?} ({min}-{max}) is invalid: need 1 <= min <= max <= 65535")]
    InvalidPortRange {
        /// Range name.
        name: String,
        /// First port.
        min: i32,
        /// Last port.
        max: i32,
    },
    /// A label selector expression is malformed: an operator other than In, NotIn, Exists,
    /// DoesNotExist, or values that do not fit the operator.
    #[error("label selector expression on key {key:?}: {problem}")]
    InvalidSelector {
        /// The expression's key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A FleetAutoscaler policy is incomplete or inconsistent.
    #[error("FleetAutoscaler {autoscaler}: {message}")]
    InvalidPolicy {
        /// `namespace/name` of the autoscaler.
        autoscaler: String,
        /// What is wrong.
        message: String,
    },
    /// The fleet a FleetAutoscaler names does not exist.
    #[error("FleetAutoscaler {autoscaler}: fleet {fleet:?} does not exist")]
    FleetNotFound {
        /// `namespace/name` of the autoscaler.
        autoscaler: String,
        /// The fleet it names.
        fleet: String,
    },
    /// A webhook answered something other than a valid AutoscaleReview response.
    #[error("autoscaler webhook for {autoscaler} failed: {message}")]
    Webhook {
        /// `namespace/name` of the autoscaler.
        autoscaler: String,
        /// What went wrong (transport error text or response problem).
        message: String,
    },
}

impl Error {
    /// A short stable label for metrics (`error_kind="ports_exhausted"`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownPortRange { .. } => "unknown_port_range",
            Self::PortsExhausted { .. } => "ports_exhausted",
            Self::StaticPortInUse { .. } => "static_port_in_use",
            Self::MissingPortNumber { .. } => "missing_port_number",
            Self::NoNodes { .. } => "no_nodes",
            Self::InvalidPortRange { .. } => "invalid_port_range",
            Self::InvalidSelector { .. } => "invalid_selector",
            Self::InvalidPolicy { .. } => "invalid_policy",
            Self::FleetNotFound { .. } => "fleet_not_found",
            Self::Webhook { .. } => "webhook",
        }
    }
}

/// Results of the core, with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `namespace/name` of an object, the key runtimes and plans use to refer to it.
pub fn object_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Whether `child` is controlled by `owner`: same namespace and a controller owner reference to
/// the owner's uid. A same-named object someone else created is never taken for ours.
pub fn is_controlled_by(
    child: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    // Borrowed, not cloned: a set's pass asks this of every server in the store.
    let Some(uid) = owner.uid.as_deref() else { return false };
    child.namespace.as_deref().unwrap_or("default") == owner.namespace.as_deref().unwrap_or("default")
        && child.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::is_controlled_by;

    fn meta(namespace: &str, uid: Option<&str>, owner: Option<(&str, Option<bool>)>) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(namespace.to_owned()),
            uid: uid.map(str::to_owned),
            owner_references: owner.map(|(uid, controller)| {
                vec![OwnerReference { uid: uid.to_owned(), controller, ..OwnerReference::default() }]
            }),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_a_controller_reference_to_the_owner_in_its_namespace_counts() {
        let owner = meta("games", Some("uid-1"), None);
        assert!(is_controlled_by(&meta("games", None, Some(("uid-1", Some(true)))), &owner));
        // A same-named stranger: another owner, a non-controller reference, another namespace.
        assert!(!is_controlled_by(&meta("games", None, Some(("uid-2", Some(true)))), &owner));
        assert!(!is_controlled_by(&meta("games", None, Some(("uid-1", None))), &owner));
        assert!(!is_controlled_by(&meta("other", None, Some(("uid-1", Some(true)))), &owner));
        assert!(!is_controlled_by(&meta("games", None, None), &owner));
        // An owner not yet created (no uid) controls nothing.
        assert!(!is_controlled_by(&meta("games", None, Some(("", Some(true)))), &meta("games", None, None)));
    }
}

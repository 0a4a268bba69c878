//! The GameServer state machine: facts a runtime observed (ports picked, process started, node
//! assigned, SDK calls, health verdicts, exits) in, the next object out; and [`reconcile`], which
//! says what a runtime must do next for a server in a given state.
//!
//! ```text
//! PortAllocation → Creating → Starting → Scheduled → RequestReady → Ready ⇄ Reserved
//!                                                                     ↓     ↗  ↓
//!                                                                  Allocated → Shutdown
//! Error (pod could not be created) and Unhealthy (health, exit, eviction) are terminal.
//! ```
//!
//! This is the only copy of the rules: the SDK sidecar turns each SDK call into a `Sdk*`
//! [`GameServerEvent`] applied inside its backend's resourceVersion-guarded update, and the
//! runtimes' GameServer controllers apply the rest and run [`reconcile`], which alone ends
//! reservations (so one ends even when the sidecar that made it is gone).
//!
//! With the opt-in allocation TTL ([`allocation_expiry`]), an Allocated server nobody plays on
//! goes to Shutdown once its last allocation is older than the TTL.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::NodeAddress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stadion_crds::allocation_ttl::AllocationTtl;
use stadion_crds::gameserver::{GameServerSpec, GameServerStatus, GameServerStatusPort, PortPolicy, Protocol};
use stadion_crds::{GameServer, GameServerState, labels};

use super::object_key;
use super::ports::PortAssignment;

/// Annotation holding the id of the game container that became Ready (Agones' name): a
/// container that restarts before Ready is a slow start, the Ready one dying is a crash.
pub const READY_CONTAINER_ID: &str = "agones.dev/ready-container-id";

/// `namespace/name` of a GameServer (namespace `default` when unset): the key plans, the port
/// allocator and runtimes use for it.
pub fn gameserver_key(gs: &GameServer) -> String {
    object_key(gs.namespace(), gs.name())
}

/// Something a runtime observed about one GameServer.
#[derive(Clone, Debug, PartialEq)]
pub enum GameServerEvent {
    /// The [`super::ports::PortAllocator`] picked host ports: PortAllocation → Creating.
    PortsAllocated(PortAssignment),
    /// The pod was created / the process spawned: Creating → Starting.
    PodCreated,
    /// The pod (process) could not be created, e.g. the command does not exist: → Error.
    PodCreationFailed {
        /// Why, for the Event / log.
        reason: String,
    },
    /// The pod is on a node (a local process: on node `local`): → Scheduled, with address,
    /// addresses, nodeName and status ports filled in.
    Scheduled {
        /// Node name.
        node_name: String,
        /// The node's addresses; the primary one is picked by [`primary_address`].
        addresses: Vec<NodeAddress>,
    },
    /// SDK Ready: → RequestReady (the controller then moves it to Ready). Also returns an
    /// Allocated or Reserved server to the pool, as in Agones.
    SdkReady,
    /// SDK Allocate: → Allocated, stamping `agones.dev/last-allocated`.
    SdkAllocate,
    /// SDK Reserve(seconds): → Reserved until now + seconds (0: until told otherwise), from any
    /// state that is not terminal, Allocated included (as in Agones).
    SdkReserve {
        /// Reservation length; 0 or less means no expiry.
        seconds: i64,
    },
    /// SDK Shutdown: → Shutdown.
    SdkShutdown,
    /// SDK SetLabel: sets label `agones.dev/sdk-<key>`.
    SdkSetLabel {
        /// Key without the prefix.
        key: String,
        /// Value.
        value: String,
    },
    /// SDK SetAnnotation: sets annotation `agones.dev/sdk-<key>`.
    SdkSetAnnotation {
        /// Key without the prefix.
        key: String,
        /// Value.
        value: String,
    },
    /// Health pings missed `failureThreshold` times: → Unhealthy.
    HealthCheckFailed,
    /// The game process (container) exited. After SDK Shutdown this changes nothing (the server
    /// is already Shutdown); at any other time the server is Unhealthy.
    ProcessExited {
        /// Exit code; `None` when killed by a signal.
        code: Option<i32>,
    },
    /// The pod failed, was evicted or was deleted behind our back: → Unhealthy.
    PodFailed {
        /// Why, for the Event / log.
        reason: String,
    },
}

/// The outcome of applying a [`GameServerEvent`].
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    /// Write this object (a whole-object update guarded by its resourceVersion).
    Changed(Box<GameServer>),
    /// The event is consistent with the object as it is; nothing to write.
    Unchanged,
    /// The event does not apply in the current state (e.g. SDK Ready after Unhealthy); nothing
    /// to write. The text says why, for logs.
    Ignored(&'static str),
}

impl Transition {
    /// The object to write, if any.
    pub fn into_changed(self) -> Option<GameServer> {
        match self {
            Self::Changed(gs) => Some(*gs),
            Self::Unchanged | Self::Ignored(_) => None,
        }
    }
}

/// Applies one observed fact to a GameServer. `now` stamps reservations and allocations.
pub fn apply_event(gs: &GameServer, event: &GameServerEvent, now: Timestamp) -> Transition {
    use GameServerEvent as E;
    use GameServerState as S;

    let state = gs.state();
    let terminal = state.is_some_and(S::is_terminal);
    let mut next = gs.clone();
    match event {
        E::PortsAllocated(assignment) => {
            if state != Some(S::PortAllocation) {
                return Transition::Ignored("ports are only allocated in PortAllocation");
            }
            assignment.apply_to(&mut next.spec);
            set_state(&mut next, S::Creating);
        }
        E::PodCreated => match state {
            Some(S::Creating) => set_state(&mut next, S::Starting),
            Some(S::PortAllocation) => return Transition::Ignored("pod created before host ports were allocated"),
            _ => return Transition::Unchanged,
        },
        E::PodCreationFailed { .. } => match state {
            Some(S::PortAllocation | S::Creating | S::Starting) | None => {
                set_state(&mut next, S::Error);
                next.metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(labels::ERRORED_AT.to_owned(), now.to_string());
            }
            _ => return Transition::Ignored("pod creation failure reported after the pod started"),
        },
        E::Scheduled { node_name, addresses } => {
            if terminal {
                return Transition::Ignored("server is terminal");
            }
            let ports = status_ports(&gs.spec);
            let status = next.status.get_or_insert_with(GameServerStatus::default);
            status.node_name.clone_from(node_name);
            status.addresses.clone_from(addresses);
            status.address = primary_address(addresses).unwrap_or_default().to_owned();
            status.ports = ports;
            if matches!(state, None | Some(S::PortAllocation | S::Creating | S::Starting)) {
                status.state = Some(S::Scheduled);
            }
        }
        E::SdkReady => {
            if terminal {
                return Transition::Ignored("no state change leaves Unhealthy, Shutdown or Error");
            }
            set_state(&mut next, S::RequestReady);
            clear_reservation(&mut next);
        }
        E::SdkAllocate => {
            if terminal {
                return Transition::Ignored("no state change leaves Unhealthy, Shutdown or Error");
            }
            set_state(&mut next, S::Allocated);
            clear_reservation(&mut next);
            stamp_last_allocated(&mut next, now);
        }
        E::SdkReserve { seconds } => {
            if terminal {
                return Transition::Ignored("no state change leaves Unhealthy, Shutdown or Error");
            }
            // Allowed from Allocated too, as in Agones: a game that backfills reserves its
            // server so that scale-down leaves it alone while the matchmaker finds players.
            let until = match reservation_end(*seconds, now) {
                Ok(until) => until,
                Err(why) => return Transition::Ignored(why),
            };
            set_state(&mut next, S::Reserved);
            next.status.get_or_insert_with(GameServerStatus::default).reserved_until = until.map(Time);
        }
        E::SdkShutdown => match state {
            Some(S::Shutdown) => return Transition::Unchanged,
            _ if terminal => return Transition::Ignored("no state change leaves Unhealthy or Error"),
            _ => {
                set_state(&mut next, S::Shutdown);
                clear_reservation(&mut next);
            }
        },
        E::SdkSetLabel { key, value } => {
            next.metadata.labels.get_or_insert_default().insert(format!("{}{key}", labels::SDK_PREFIX), value.clone());
        }
        E::SdkSetAnnotation { key, value } => {
            next.metadata
                .annotations
                .get_or_insert_default()
                .insert(format!("{}{key}", labels::SDK_PREFIX), value.clone());
        }
        E::HealthCheckFailed | E::PodFailed { .. } | E::ProcessExited { .. } => match state {
            // The game exiting after it asked to shut down is the normal end of a server.
            Some(S::Shutdown) => return Transition::Unchanged,
            _ if terminal => return Transition::Ignored("server is already terminal"),
            _ => {
                // reservedUntil only means something while Reserved; Agones clears it on every
                // state change other than Reserve.
                set_state(&mut next, S::Unhealthy);
                clear_reservation(&mut next);
            }
        },
    }
    if next == *gs { Transition::Unchanged } else { Transition::Changed(Box::new(next)) }
}

/// What a runtime must do for a GameServer, beyond writing [`GameServerPlan::update`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GameServerAction {
    /// Nothing until a new fact arrives (or `requeue_at`).
    Wait,
    /// Pick host ports with the [`super::ports::PortAllocator`] and apply
    /// [`GameServerEvent::PortsAllocated`].
    AllocatePorts,
    /// Create the pod / spawn the process (env from [`super::env::game_process_env`]), then
    /// apply [`GameServerEvent::PodCreated`] (or `PodCreationFailed`).
    CreatePod,
    /// The server is Shutdown: delete the GameServer object (its deletion triggers `Teardown`).
    Delete,
    /// The object is being deleted: stop the process / delete the pod, release its host ports,
    /// then write [`without_finalizer`] so the store can remove it.
    Teardown,
}

/// The result of [`reconcile`].
#[derive(Clone, Debug, PartialEq)]
pub struct GameServerPlan {
    /// The object to write first (defaults applied, RequestReady → Ready, Reserved expiry,
    /// Allocated → Shutdown when the allocation TTL lapsed).
    pub update: Option<GameServer>,
    /// What to do after writing it.
    pub action: GameServerAction,
    /// Reconcile again at this time even if nothing changes (a reservation expires, an
    /// allocation TTL lapses).
    pub requeue_at: Option<Timestamp>,
    /// Set when `update` shuts the server down because its allocation TTL lapsed: the deadline
    /// that passed (runtimes log it and record an `AllocationExpired` Event).
    pub allocation_lapsed: Option<Timestamp>,
}

/// Runtime-wide settings a GameServer reconcile applies unless the server's own annotations say
/// otherwise (`stadion up --allocation-ttl`, `stadion controller --allocation-ttl`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GameServerDefaults {
    /// TTL of servers without a [`labels::ALLOCATION_TTL`] annotation (default: off).
    pub allocation_ttl: AllocationTtl,
}

/// Decides the next step for one GameServer as observed at `now`.
pub fn reconcile(gs: &GameServer, now: Timestamp, defaults: GameServerDefaults) -> GameServerPlan {
    use GameServerState as S;

    if gs.metadata.deletion_timestamp.is_some() {
        return GameServerPlan {
            update: None,
            action: GameServerAction::Teardown,
            requeue_at: None,
            allocation_lapsed: None,
        };
    }
    let mut next = gs.clone();
    if next.state().is_none() {
        next.apply_defaults();
    }
    let mut requeue_at = None;
    let mut allocation_lapsed = None;
    let action = match next.state() {
        Some(S::PortAllocation) => GameServerAction::AllocatePorts,
        Some(S::Creating) => GameServerAction::CreatePod,
        Some(S::RequestReady) => {
            // Ready needs an address to hand out: a server that called Ready before the runtime
            // reported its node waits for the Scheduled fact.
            if next.status.as_ref().is_some_and(|s| !s.node_name.is_empty()) {
                set_state(&mut next, S::Ready);
            }
            GameServerAction::Wait
        }
        Some(S::Reserved) => {
            // The one place a reservation ends on its own: the sidecar only writes the
            // deadline, so an expired reservation returns to the pool even if the sidecar died.
            match next.status.as_ref().and_then(|s| s.reserved_until.as_ref()).map(|t| t.0) {
                Some(until) if until <= now => {
                    // What Agones' expiry does (an SDK Ready), taken one step further when the
                    // server already has an address: a server reserved before it was scheduled
                    // waits in RequestReady like any other.
                    let scheduled = next.status.as_ref().is_some_and(|s| !s.node_name.is_empty());
                    set_state(&mut next, if scheduled { S::Ready } else { S::RequestReady });
                    clear_reservation(&mut next);
                }
                Some(until) => requeue_at = Some(until),
                None => {}
            }
            GameServerAction::Wait
        }
        Some(S::Allocated) => {
            let ttl = effective_allocation_ttl(&next, defaults.allocation_ttl);
            match allocation_expiry(&next, ttl, now) {
                AllocationExpiry::Pending(deadline) => requeue_at = Some(deadline),
                AllocationExpiry::Lapsed(deadline) => {
                    // The same transition as SDK Shutdown: the owning set replaces the server.
                    if let Transition::Changed(shut) = apply_event(&next, &GameServerEvent::SdkShutdown, now) {
                        next = *shut;
                        allocation_lapsed = Some(deadline);
                    }
                }
                // A change to the player count or the stamp re-runs this reconcile.
                AllocationExpiry::HeldByPlayers(_) | AllocationExpiry::NotApplicable => {}
            }
            GameServerAction::Wait
        }
        Some(S::Shutdown) => GameServerAction::Delete,
        // Unhealthy and Error stay for inspection; the owning set deletes and replaces them.
        Some(S::Starting | S::Scheduled | S::Ready | S::Error | S::Unhealthy) | None => GameServerAction::Wait,
    };
    let update = (next != *gs).then_some(next);
    GameServerPlan { update, action, requeue_at, allocation_lapsed }
}

/// A copy without the `agones.dev/controller` finalizer: write it once the pod/process is gone.
pub fn without_finalizer(gs: &GameServer) -> GameServer {
    let mut next = gs.clone();
    if let Some(finalizers) = &mut next.metadata.finalizers {
        finalizers.retain(|f| f != labels::FINALIZER);
    }
    next
}

/// Status ports from spec ports: `None` reports the container port, every other policy the host
/// port; TCPUDP becomes `<name>-tcp` and `<name>-udp` with the same number. Ports whose number is
/// not known yet (before allocation) are left out.
pub fn status_ports(spec: &GameServerSpec) -> Vec<GameServerStatusPort> {
    let mut out = Vec::with_capacity(spec.ports.len());
    for port in &spec.ports {
        let number = match port.policy() {
            PortPolicy::None => port.container_port,
            PortPolicy::Dynamic | PortPolicy::Static | PortPolicy::Passthrough => port.host_port,
        };
        let Some(number) = number else { continue };
        match port.protocol() {
            Protocol::TcpUdp => {
                out.push(GameServerStatusPort { name: format!("{}-tcp", port.name), port: number });
                out.push(GameServerStatusPort { name: format!("{}-udp", port.name), port: number });
            }
            Protocol::Tcp | Protocol::Udp => out.push(GameServerStatusPort { name: port.name.clone(), port: number }),
        }
    }
    out
}

/// Address types in the order players can best reach them.
const ADDRESS_PREFERENCE: [&str; 4] = ["ExternalDNS", "ExternalIP", "InternalDNS", "InternalIP"];

/// The address to publish: ExternalDNS > ExternalIP > InternalDNS > InternalIP, else the first
/// address of any type (e.g. Hostname), else none.
pub fn primary_address(addresses: &[NodeAddress]) -> Option<&str> {
    ADDRESS_PREFERENCE
        .iter()
        .find_map(|kind| addresses.iter().find(|a| a.type_ == *kind))
        .or_else(|| addresses.first())
        .map(|a| a.address.as_str())
}

/// Labels every game-server pod carries: `agones.dev/role=gameserver`,
/// `agones.dev/gameserver=<name>`, plus the GameServer's own labels.
pub fn pod_labels(gs: &GameServer) -> std::collections::BTreeMap<String, String> {
    let mut out = gs.metadata.labels.clone().unwrap_or_default();
    out.insert(labels::ROLE.to_owned(), labels::ROLE_GAMESERVER.to_owned());
    out.insert(labels::GAMESERVER.to_owned(), gs.name().to_owned());
    out
}

/// When `gs` entered Error: its `agones.dev/errored-at` stamp, else (a server that went to
/// Error before stamps existed, or was written Error by hand) its creation time.
pub fn errored_at(gs: &GameServer) -> Option<Timestamp> {
    let stamped = gs.metadata.annotations.as_ref().and_then(|a| a.get(labels::ERRORED_AT)).and_then(|t| t.parse().ok());
    stamped.or_else(|| gs.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Sets `agones.dev/last-allocated` to `now` in RFC 3339 (what Agones and SDK Allocate write).
pub fn stamp_last_allocated(gs: &mut GameServer, now: Timestamp) {
    gs.metadata.annotations.get_or_insert_default().insert(labels::LAST_ALLOCATED.to_owned(), now.to_string());
}

/// When an Allocated server's allocation lapses under an opt-in TTL: the time in
/// `agones.dev/last-allocated` plus `ttl`. A re-allocation (allocator or SDK Allocate)
/// restamps the annotation and so extends it. `None` for servers that are not Allocated, carry
/// no parseable stamp, or whose deadline would fall beyond the representable times.
pub fn allocation_deadline(gs: &GameServer, ttl: SignedDuration) -> Option<Timestamp> {
    if gs.state() != Some(GameServerState::Allocated) {
        return None;
    }
    let stamp = gs.metadata.annotations.as_ref()?.get(labels::LAST_ALLOCATED)?;
    stamp.parse::<Timestamp>().ok()?.checked_add(ttl).ok()
}

/// The allocation TTL that applies to `gs`: its [`labels::ALLOCATION_TTL`] annotation, else the
/// runtime's `default`. An unparseable annotation (validation refuses one, so it was written
/// behind its back, e.g. `kubectl annotate`) also falls back to `default`.
pub fn effective_allocation_ttl(gs: &GameServer, default: AllocationTtl) -> AllocationTtl {
    gs.allocation_ttl().and_then(Result::ok).unwrap_or(default)
}

/// Where a server stands under the allocation TTL rule, from [`allocation_expiry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocationExpiry {
    /// The rule does not apply: the TTL is off, the server is not Allocated, or it carries no
    /// parseable `agones.dev/last-allocated` stamp (so there is no time to count from).
    NotApplicable,
    /// Lapses at this time unless it is re-allocated (or players connect) before then.
    Pending(Timestamp),
    /// Past this deadline, but players are connected: it stays Allocated while any are, and
    /// lapses as soon as the last one leaves.
    HeldByPlayers(Timestamp),
    /// Past this deadline with no players connected: shut it down.
    Lapsed(Timestamp),
}

/// The allocation TTL rule: an Allocated server lapses when `now` ≥ `last-allocated` + `ttl`
/// and it has no connected players (`status.players.count` is 0, or player tracking is off). A
/// game that outlives the TTL without player tracking keeps its server by calling SDK
/// Allocate, which restamps `agones.dev/last-allocated`.
pub fn allocation_expiry(gs: &GameServer, ttl: AllocationTtl, now: Timestamp) -> AllocationExpiry {
    let Some(deadline) = ttl.duration().and_then(|ttl| allocation_deadline(gs, ttl)) else {
        return AllocationExpiry::NotApplicable;
    };
    let players = gs.status.as_ref().and_then(|s| s.players.as_ref()).map_or(0, |p| p.count);
    if now < deadline {
        AllocationExpiry::Pending(deadline)
    } else if players > 0 {
        AllocationExpiry::HeldByPlayers(deadline)
    } else {
        AllocationExpiry::Lapsed(deadline)
    }
}

/// When a reservation of `seconds` made at `now` ends: `None` for 0 or less (no expiry, as in
/// Agones); an error when the end is past the last representable time.
pub fn reservation_end(seconds: i64, now: Timestamp) -> Result<Option<Timestamp>, &'static str> {
    if seconds <= 0 {
        return Ok(None);
    }
    let end = now
        .checked_add(SignedDuration::from_secs(seconds))
        .map_err(|_| "the reservation would end past the last representable time")?;
    // `status.reservedUntil` is a Kubernetes time, stored to the second: rounded up, so a
    // reservation read back from the API server never lapses before the seconds asked for.
    let whole = Timestamp::from_second(end.as_second()).map_err(|_| "the reservation end is out of range")?;
    if whole == end {
        Ok(Some(end))
    } else {
        whole.checked_add(SignedDuration::from_secs(1)).map(Some).map_err(|_| "the reservation end is out of range")
    }
}

/// Records `container_id` as the game container that became Ready (the
/// [`READY_CONTAINER_ID`] annotation), unless one is recorded already: like Agones, the first
/// Ready instance is the one whose death counts as a crash.
pub fn stamp_ready_container(gs: &mut GameServer, container_id: &str) {
    if container_id.is_empty() {
        return;
    }
    gs.metadata
        .annotations
        .get_or_insert_default()
        .entry(READY_CONTAINER_ID.to_owned())
        .or_insert_with(|| container_id.to_owned());
}

/// The game container recorded as Ready, if any (see [`stamp_ready_container`]).
pub fn ready_container(gs: &GameServer) -> Option<&str> {
    gs.metadata.annotations.as_ref()?.get(READY_CONTAINER_ID).map(String::as_str).filter(|id| !id.is_empty())
}

pub(crate) fn set_state(gs: &mut GameServer, state: GameServerState) {
    gs.status.get_or_insert_with(GameServerStatus::default).state = Some(state);
}

fn clear_reservation(gs: &mut GameServer) {
    if let Some(status) = &mut gs.status {
        status.reserved_until = None;
    }
}

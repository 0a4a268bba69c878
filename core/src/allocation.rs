//! Allocation choice: which GameServer a GameServerAllocation gets, and the changes allocation
//! makes to it.
//!
//! A runtime calls [`candidates`] on its view of the servers, then for each candidate in order
//! clones the server, calls [`apply_allocation`] and writes it guarded by its resourceVersion.
//! The first write that succeeds is the allocation; a conflict means someone else changed the
//! server, so the runtime moves on to the next candidate (it never retries the same one from a
//! stale copy). No candidate at all is the UnAllocated answer ([`unallocated_status`]).

use std::borrow::Borrow;
use std::cmp::Ordering;

use jiff::Timestamp;
use stadion_crds::allocation::{
    CounterActionKind, CounterSelector, GameServerAllocationSpec, GameServerAllocationState,
    GameServerAllocationStatus, GameServerSelector, ListSelector, PlayerSelector,
};
use stadion_crds::common::{MAX_LIST_CAPACITY, MetaPatch, SchedulingStrategy};
use stadion_crds::gameserver::GameServerStatus;
use stadion_crds::labels;
use stadion_crds::{GameServer, GameServerAllocation, GameServerState};

use super::gameserver::{set_state, stamp_last_allocated};
use super::labelselector::Selector;
use super::names::{mix64, stable_hash};
use super::nodes::NodeLoad;
use super::{Result, priority};

/// The `source` Stadion reports: allocations are always served by this cluster.
pub const LOCAL_SOURCE: &str = "local";

/// One server that matches the allocation, and which selector it matched.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AllocationCandidate<'a> {
    /// The server, as observed.
    pub gameserver: &'a GameServer,
    /// Index of the first selector (of [`GameServerAllocation::effective_selectors`]) it matched.
    pub selector_index: usize,
}

impl AllocationCandidate<'_> {
    /// The server as it must be written to allocate it, and the answer to return once written.
    pub fn allocate(&self, spec: &GameServerAllocationSpec, now: Timestamp) -> AllocationAttempt {
        let mut gameserver = self.gameserver.clone();
        let (status, warnings) = apply_allocation(&mut gameserver, spec, now);
        AllocationAttempt { gameserver, status, warnings }
    }
}

/// A candidate with the allocation applied: write `gameserver` (compare-and-swap), then return
/// `status`.
#[derive(Clone, Debug, PartialEq)]
pub struct AllocationAttempt {
    /// The server to write.
    pub gameserver: GameServer,
    /// The answer for the caller.
    pub status: GameServerAllocationStatus,
    /// Counter or list actions that could not be applied (out of range, missing), for logs.
    pub warnings: Vec<String>,
}

/// Every matching server, best first: selectors in order (servers matching an earlier selector
/// come first and appear once), then within a selector by the scheduling strategy:
/// - Packed: nodes with the most Allocated servers, then the most servers, first (one node fills
///   before the next), then priorities, then name.
/// - Distributed: nodes with the fewest Allocated servers first, then priorities, then a
///   shuffle seeded by `seed` (the same seed gives the same order).
///
/// Fails only for an invalid label selector.
///
/// `servers` may be owned objects or shared handles (`Arc<GameServer>` from a cache or store):
/// nothing is copied, which matters when a thousand servers are scanned per allocation.
pub fn candidates<'a, S: Borrow<GameServer>>(
    gsa: &GameServerAllocation,
    servers: &'a [S],
    nodes: &NodeLoad,
    seed: u64,
) -> Result<Vec<AllocationCandidate<'a>>> {
    let selectors = gsa.effective_selectors();
    let compiled: Vec<Selector> =
        selectors.iter().map(|s| Selector::compile(&s.label_selector)).collect::<Result<_>>()?;
    let strategy = gsa.spec.scheduling.unwrap_or_default();
    let mut taken = vec![false; servers.len()];
    let mut out = Vec::new();
    for (selector_index, selector) in selectors.iter().enumerate() {
        let mut matched = Vec::new();
        for (i, gs) in servers.iter().map(Borrow::borrow).enumerate() {
            if !taken[i] && matches_compiled(selector, &compiled[selector_index], gs) {
                taken[i] = true;
                matched.push(gs);
            }
        }
        matched.sort_by(|a, b| compare(a, b, strategy, gsa, nodes, seed));
        out.extend(matched.into_iter().map(|gameserver| AllocationCandidate { gameserver, selector_index }));
    }
    Ok(out)
}

fn compare(
    a: &GameServer,
    b: &GameServer,
    strategy: SchedulingStrategy,
    gsa: &GameServerAllocation,
    nodes: &NodeLoad,
    seed: u64,
) -> Ordering {
    let (na, nb) = (node_of(a), node_of(b));
    let by_priority = || priority::compare(a, b, &gsa.spec.priorities);
    match strategy {
        SchedulingStrategy::Packed => nodes
            .allocated_on(nb)
            .cmp(&nodes.allocated_on(na))
            .then_with(|| nodes.servers_on(nb).cmp(&nodes.servers_on(na)))
            .then_with(|| na.cmp(nb))
            .then_with(by_priority)
            .then_with(|| a.name().cmp(b.name())),
        SchedulingStrategy::Distributed => nodes
            .allocated_on(na)
            .cmp(&nodes.allocated_on(nb))
            .then_with(by_priority)
            .then_with(|| shuffle_key(a, seed).cmp(&shuffle_key(b, seed)))
            .then_with(|| a.name().cmp(b.name())),
    }
}

fn shuffle_key(gs: &GameServer, seed: u64) -> u64 {
    mix64(seed ^ stable_hash(gs.name().as_bytes()))
}

fn node_of(gs: &GameServer) -> &str {
    gs.status.as_ref().map(|s| s.node_name.as_str()).unwrap_or_default()
}

/// Whether `gs` satisfies one selector: state (Ready unless said otherwise), labels, players,
/// counters and lists. Servers being deleted never match.
pub fn selector_matches(selector: &GameServerSelector, gs: &GameServer) -> Result<bool> {
    Ok(matches_compiled(selector, &Selector::compile(&selector.label_selector)?, gs))
}

/// [`selector_matches`] with the label selector compiled once, for scans over a whole fleet.
fn matches_compiled(selector: &GameServerSelector, labels: &Selector, gs: &GameServer) -> bool {
    let wanted = selector.game_server_state.unwrap_or(GameServerState::Ready);
    if gs.metadata.deletion_timestamp.is_some() || gs.state() != Some(wanted) {
        return false;
    }
    if !labels.matches(gs.metadata.labels.as_ref()) {
        return false;
    }
    let Some(status) = &gs.status else { return false };
    players_match(selector.players.as_ref(), status)
        && selector.counters.iter().all(|(name, s)| counter_matches(s, status, name))
        && selector.lists.iter().all(|(name, s)| list_matches(s, status, name))
}

/// `min ≤ value` and, unless `max` is 0 (no limit), `value ≤ max`.
fn within(value: i64, min: i64, max: i64) -> bool {
    value >= min && (max == 0 || value <= max)
}

fn players_match(selector: Option<&PlayerSelector>, status: &GameServerStatus) -> bool {
    let Some(selector) = selector else { return true };
    let Some(players) = &status.players else { return false };
    within(players.capacity - players.count, selector.min_available, selector.max_available)
}

fn counter_matches(selector: &CounterSelector, status: &GameServerStatus, name: &str) -> bool {
    let Some(counter) = status.counters.get(name) else { return false };
    within(counter.count, selector.min_count, selector.max_count)
        && within(counter.capacity - counter.count, selector.min_available, selector.max_available)
}

fn list_matches(selector: &ListSelector, status: &GameServerStatus, name: &str) -> bool {
    let Some(list) = status.lists.get(name) else { return false };
    (selector.contains_value.is_empty() || list.values.contains(&selector.contains_value))
        && within(list.capacity - list.values.len() as i64, selector.min_available, selector.max_available)
}

/// Allocates `gs` in place: state Allocated (a pending reservation is dropped), the request's
/// labels and annotations, `agones.dev/last-allocated` = `now` (RFC 3339), the allocation's
/// identity in `stadion.dev/allocation-id` (see [`allocation_id`]), counter and list
/// actions. Returns the answer for the caller and the actions that could not be applied (an
/// out-of-range count, a full list, a missing counter) — as in Agones, those do not fail the
/// allocation.
pub fn apply_allocation(
    gs: &mut GameServer,
    spec: &GameServerAllocationSpec,
    now: Timestamp,
) -> (GameServerAllocationStatus, Vec<String>) {
    let was_allocated = gs.state() == Some(GameServerState::Allocated);
    let id = allocation_id(gs, now);
    set_state(gs, GameServerState::Allocated);
    if let Some(patch) = &spec.metadata {
        gs.metadata.labels.get_or_insert_default().extend(patch.labels.clone());
        gs.metadata.annotations.get_or_insert_default().extend(patch.annotations.clone());
    }
    stamp_last_allocated(gs, now);
    let annotations = gs.metadata.annotations.get_or_insert_default();
    if was_allocated {
        // A re-allocated server is shared by every match on it: no single one may release it.
        annotations.remove(labels::ALLOCATION_ID);
    } else {
        annotations.insert(labels::ALLOCATION_ID.to_owned(), id);
    }
    let status = gs.status.get_or_insert_with(GameServerStatus::default);
    status.reserved_until = None;
    let mut warnings = Vec::new();

    for (name, action) in &spec.counters {
        let Some(counter) = status.counters.get_mut(name) else {
            warnings.push(format!("counter {name:?} does not exist on the server"));
            continue;
        };
        if let Some(capacity) = action.capacity {
            if capacity < 0 {
                warnings.push(format!("counter {name:?}: capacity {capacity} is negative"));
            } else {
                counter.capacity = capacity;
            }
        }
        let Some(kind) = action.action else { continue };
        let amount = action.amount.unwrap_or(0);
        if amount <= 0 {
            warnings.push(format!("counter {name:?}: amount must be positive, got {amount}"));
            continue;
        }
        let next = match kind {
            CounterActionKind::Increment => counter.count + amount,
            CounterActionKind::Decrement => counter.count - amount,
        };
        if (0..=counter.capacity).contains(&next) {
            counter.count = next;
        } else {
            warnings.push(format!("counter {name:?}: {kind:?} by {amount} leaves [0, {}]", counter.capacity));
        }
    }

    for (name, action) in &spec.lists {
        let Some(list) = status.lists.get_mut(name) else {
            warnings.push(format!("list {name:?} does not exist on the server"));
            continue;
        };
        if let Some(capacity) = action.capacity {
            if (0..=MAX_LIST_CAPACITY).contains(&capacity) {
                list.capacity = capacity;
                list.values.truncate(usize::try_from(capacity).unwrap_or(0));
            } else {
                warnings.push(format!("list {name:?}: capacity {capacity} outside [0, {MAX_LIST_CAPACITY}]"));
            }
        }
        list.values.retain(|v| !action.delete_values.contains(v));
        for value in &action.add_values {
            if list.values.contains(value) {
                continue;
            }
            if list.values.len() as i64 >= list.capacity {
                warnings.push(format!("list {name:?} is full: {value:?} not added"));
                continue;
            }
            list.values.push(value.clone());
        }
    }

    (allocated_status(gs), warnings)
}

/// The answer for an allocated server: its name, ports, addresses, node, labels and
/// annotations, counters and lists, source `local`.
pub fn allocated_status(gs: &GameServer) -> GameServerAllocationStatus {
    let status = gs.status.clone().unwrap_or_default();
    GameServerAllocationStatus {
        state: GameServerAllocationState::Allocated,
        game_server_name: gs.name().to_owned(),
        ports: status.ports,
        address: status.address,
        addresses: status.addresses,
        node_name: status.node_name,
        source: LOCAL_SOURCE.to_owned(),
        metadata: Some(MetaPatch {
            labels: gs.metadata.labels.clone().unwrap_or_default(),
            annotations: gs.metadata.annotations.clone().unwrap_or_default(),
        }),
        counters: status.counters,
        lists: status.lists,
    }
}

/// The answer when no server matched.
pub fn unallocated_status() -> GameServerAllocationStatus {
    GameServerAllocationStatus {
        state: GameServerAllocationState::UnAllocated,
        ..GameServerAllocationStatus::default()
    }
}

/// The identity an allocation of `gs` at `now` records on it: the resourceVersion it replaces
/// (a compare-and-swap succeeds once per version, so no two allocations of one server share
/// it) and the time. Pure, so both runtimes compute it the same way.
pub fn allocation_id(gs: &GameServer, now: Timestamp) -> String {
    let version = gs.metadata.resource_version.as_deref().unwrap_or_default();
    format!("{version}-{}", now.as_nanosecond())
}

/// The allocation that holds `gs` exclusively, if any (see [`labels::ALLOCATION_ID`]).
pub fn holding_allocation(gs: &GameServer) -> Option<&str> {
    gs.metadata.annotations.as_ref()?.get(labels::ALLOCATION_ID).map(String::as_str)
}

/// The allocation identity in an allocation's answer (its server's annotations), if it holds
/// the server alone; `None` for a server shared with earlier allocations.
pub fn status_allocation_id(status: &GameServerAllocationStatus) -> Option<&str> {
    status.metadata.as_ref()?.annotations.get(labels::ALLOCATION_ID).map(String::as_str)
}

/// Takes back the allocation `allocation_id`, whose match dissolved before anyone was told
/// where to connect (a ticket cancelled or timed out while the allocation was in flight). Call
/// it inside the compare-and-swap: it changes `gs` only while that allocation still holds it
/// (Allocated, and `stadion.dev/allocation-id` names it), never a server that was since
/// re-allocated, returned to Ready and allocated again, or shared. The server goes to Shutdown
/// rather than back to Ready: the allocation may have stamped match labels, counters and lists
/// on it, and a replacement from its set starts clean. Returns whether `gs` changed.
pub fn release_allocation(gs: &mut GameServer, allocation_id: &str) -> bool {
    if gs.state() != Some(GameServerState::Allocated) || holding_allocation(gs) != Some(allocation_id) {
        return false;
    }
    set_state(gs, GameServerState::Shutdown);
    true
}

#[cfg(test)]
mod release_tests {
    use super::{apply_allocation, holding_allocation, release_allocation, status_allocation_id};
    use crate::testing::GameServerBuilder;
    use jiff::Timestamp;
    use stadion_crds::GameServerState;
    use stadion_crds::allocation::GameServerAllocationSpec;
    use stadion_crds::labels::ALLOCATION_ID;

    fn held_by(state: GameServerState, id: &str) -> stadion_crds::GameServer {
        let mut gs = GameServerBuilder::new("gs-1").state(state).build();
        gs.metadata.annotations.get_or_insert_default().insert(ALLOCATION_ID.to_owned(), id.to_owned());
        gs
    }

    #[test]
    fn only_the_holding_allocation_releases_an_allocated_server_and_it_shuts_down() {
        let mut allocated = held_by(GameServerState::Allocated, "a");
        assert!(!release_allocation(&mut allocated, "b"), "another allocation's release");
        assert_eq!(allocated.state(), Some(GameServerState::Allocated));
        assert!(release_allocation(&mut allocated, "a"));
        assert_eq!(allocated.state(), Some(GameServerState::Shutdown));

        let mut shared = GameServerBuilder::new("gs-3").state(GameServerState::Allocated).build();
        assert!(!release_allocation(&mut shared, "a"), "a server no allocation holds alone");

        for state in [GameServerState::Ready, GameServerState::Reserved, GameServerState::Unhealthy] {
            let mut other = held_by(state, "a");
            assert!(!release_allocation(&mut other, "a"), "{state} is not released");
            assert_eq!(other.state(), Some(state));
        }
    }

    #[test]
    fn allocating_records_the_holder_and_re_allocating_makes_the_server_shared() {
        let spec = GameServerAllocationSpec::default();
        let mut gs = GameServerBuilder::new("gs-1").state(GameServerState::Ready).build();
        gs.metadata.resource_version = Some("7".to_owned());
        let (status, _) = apply_allocation(&mut gs, &spec, Timestamp::from_second(100).unwrap());
        let first = status_allocation_id(&status).expect("an exclusive allocation names itself").to_owned();
        assert_eq!(holding_allocation(&gs), Some(first.as_str()));

        gs.metadata.resource_version = Some("8".to_owned());
        let (again, _) = apply_allocation(&mut gs, &spec, Timestamp::from_second(101).unwrap());
        assert_eq!(status_allocation_id(&again), None, "a re-allocated server is shared");
        assert!(!release_allocation(&mut gs, &first), "the first match no longer holds it alone");
        assert_eq!(gs.state(), Some(GameServerState::Allocated));
    }
}

//! Fleet rollouts: one active GameServerSet (its template equals the fleet's) and older sets
//! being drained, under RollingUpdate (maxSurge / maxUnavailable) or Recreate.
//!
//! Decisions use the sets' statuses, as Agones does. Two deliberate differences from Agones keep
//! rollouts from stalling on Allocated servers (facts §4):
//! - totals count each old set by `max(spec.replicas, status.replicas)`, so Allocated servers
//!   that outlive their set's spec still count toward the surge limit exactly once;
//! - an old set left with only Allocated/Reserved servers is scaled to 0, not to its allocated
//!   count: its set scaler never shuts those down, and when one ends, no old-template
//!   replacement is created. The set is deleted once it has no servers.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stadion_crds::fleet::{FleetStatus, FleetStrategyType};
use stadion_crds::gameserverset::{GameServerSetSpec, GameServerSetStatus, GameServerTemplateSpec};
use stadion_crds::{Fleet, GameServerSet, labels};

use super::gameserverset::controller_reference;
use super::names::{NameGenerator, stable_hash, unique_name};

/// Percent used when maxSurge / maxUnavailable cannot be parsed (Agones' default).
const FALLBACK_PERCENT: i32 = 25;

/// What a runtime must do for one Fleet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetPlan {
    /// A new active set to create (the fleet has none for its current template).
    pub create_set: Option<GameServerSet>,
    /// Existing sets to write back with a changed spec (replicas; on the active set also
    /// scheduling, priorities and allocationOverflow from the fleet).
    pub update_sets: Vec<GameServerSet>,
    /// Names of old sets to delete: they have no servers left.
    pub delete_sets: Vec<String>,
    /// The fleet status to write: sums of the sets' statuses; `allocations` is carried over
    /// (the allocator bumps it, see [`record_allocation`]).
    pub status: FleetStatus,
}

/// The hash identifying a template, stored on sets as `stadion.dev/template-hash`: FNV-1a over
/// the JSON of the template with GameServer defaults applied (maps serialize sorted, so equal
/// templates hash equal, and defaulting a fleet never looks like a template change), in hex.
pub fn template_hash(template: &GameServerTemplateSpec) -> String {
    let mut defaulted = template.clone();
    defaulted.spec.apply_defaults();
    let json = serde_json::to_vec(&defaulted).unwrap_or_default();
    format!("{:016x}", stable_hash(&json))
}

/// maxSurge (rounded up) and maxUnavailable (rounded down) of `fleet` for `replicas`, as
/// Kubernetes resolves them; when both come out 0, maxUnavailable is 1 so a rollout can move.
pub fn rolling_limits(fleet: &Fleet, replicas: i32) -> (i32, i32) {
    let (surge, unavailable) = fleet.rolling_limits();
    let surge = resolve(&surge, replicas, true);
    let unavailable = resolve(&unavailable, replicas, false);
    if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

/// An int, or `N%` of `total` rounded up or down. Unparseable values count as 25%.
pub fn resolve(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    let percent = match value {
        IntOrString::Int(n) => return (*n).max(0),
        IntOrString::String(s) => {
            let s = s.trim();
            match s.strip_suffix('%').and_then(|p| p.trim().parse::<i32>().ok()) {
                Some(p) => p,
                None => match s.parse::<i32>() {
                    Ok(n) => return n.max(0),
                    Err(_) => FALLBACK_PERCENT,
                },
            }
        }
    };
    let scaled = i64::from(total.max(0)) * i64::from(percent.max(0));
    let value = if round_up { (scaled + 99) / 100 } else { scaled / 100 };
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Adds one allocation to the fleet's running `allocations` count.
pub fn record_allocation(status: &mut FleetStatus) {
    *status.allocations.get_or_insert(0) += 1;
}

/// Plans one reconcile of `fleet` (defaults applied) given the sets it owns.
pub fn plan(fleet: &Fleet, sets: &[GameServerSet], names: &mut dyn NameGenerator) -> FleetPlan {
    let mut plan = FleetPlan { status: aggregate_status(fleet, sets), ..FleetPlan::default() };
    let hash = template_hash(&fleet.spec.template);
    let live: Vec<&GameServerSet> = sets.iter().filter(|s| s.metadata.deletion_timestamp.is_none()).collect();
    let active = live
        .iter()
        .copied()
        .filter(|s| is_current(s, fleet, &hash))
        .max_by(|a, b| status_of(a).replicas.cmp(&status_of(b).replicas).then_with(|| b.name().cmp(a.name())));
    let mut old: Vec<&GameServerSet> =
        live.iter().copied().filter(|s| active.is_none_or(|a| a.name() != s.name())).collect();
    old.sort_by(|a, b| created(a).cmp(&created(b)).then_with(|| a.name().cmp(b.name())));

    let replicas = fleet.spec.replicas.max(0);
    let allocated_in_old: i32 = old.iter().map(|s| status_of(s).allocated_replicas).sum();
    let active_target = (replicas - allocated_in_old).max(0);
    let active_spec = active.map_or(0, |s| s.spec.replicas);

    let mut old_specs: Vec<i32> = old.iter().map(|s| s.spec.replicas).collect();
    let new_active_spec = if old.is_empty() {
        // Nothing to roll from: a replicas change applies at once.
        active_target
    } else {
        match fleet.strategy_type() {
            FleetStrategyType::Recreate => {
                old_specs.iter_mut().for_each(|s| *s = 0);
                let draining = old.iter().any(|s| status_of(s).replicas > protected(s));
                if draining { active_spec.min(active_target) } else { active_target }
            }
            FleetStrategyType::RollingUpdate => {
                let (surge, unavailable) = rolling_limits(fleet, replicas);
                let footprint: i32 =
                    active_spec + old.iter().map(|s| s.spec.replicas.max(status_of(s).replicas)).sum::<i32>();
                let grown = if active_spec >= active_target {
                    active_target
                } else {
                    let room = (replicas + surge - footprint).max(0);
                    (active_spec + room).min(active_target)
                };
                drain_old_sets(&old, &mut old_specs, sets, replicas, unavailable);
                grown
            }
        }
    };

    match active {
        Some(set) => {
            let mut next = set.clone();
            next.spec.replicas = new_active_spec;
            // An undefaulted fleet (no scheduling) must not fight the set's defaulted value.
            if fleet.spec.scheduling.is_some() {
                next.spec.scheduling = fleet.spec.scheduling;
            }
            next.spec.priorities.clone_from(&fleet.spec.priorities);
            next.spec.allocation_overflow.clone_from(&fleet.spec.allocation_overflow);
            if next != *set {
                plan.update_sets.push(next);
            }
        }
        // A fleet being deleted gets no new set; its sets go with it through owner references.
        None if fleet.metadata.deletion_timestamp.is_some() => {}
        None => {
            let mut taken: BTreeSet<String> = sets.iter().map(|s| s.name().to_owned()).collect();
            let name = unique_name(fleet.name(), names, &mut taken);
            plan.create_set = Some(new_set(fleet, name, hash, new_active_spec));
        }
    }
    for (set, spec) in old.iter().zip(old_specs) {
        if status_of(set).replicas == 0 && set.status.is_some() && spec == 0 {
            plan.delete_sets.push(set.name().to_owned());
        } else if spec != set.spec.replicas {
            let mut next = (*set).clone();
            next.spec.replicas = spec;
            plan.update_sets.push(next);
        }
    }
    plan
}

/// Shrinks old sets (oldest first): servers that are not Ready go at once; Ready ones only while
/// the fleet keeps at least (replicas − allocated − reserved) − maxUnavailable Ready servers.
/// A set left with only Allocated/Reserved servers gets spec 0 (see the module docs).
fn drain_old_sets(old: &[&GameServerSet], specs: &mut [i32], all: &[GameServerSet], replicas: i32, unavailable: i32) {
    let ready_total: i32 = all.iter().map(|s| status_of(s).ready_replicas).sum();
    let busy_total: i32 = all.iter().map(protected).sum();
    let min_ready = ((replicas - busy_total).max(0) - unavailable).max(0);
    let mut budget = (ready_total - min_ready).max(0);
    for (set, spec) in old.iter().zip(specs.iter_mut()) {
        let status = status_of(set);
        let take = status.ready_replicas.min(budget);
        budget -= take;
        let ready_kept = status.ready_replicas - take;
        let keep = if ready_kept == 0 { 0 } else { protected(set) + ready_kept };
        *spec = (*spec).min(keep);
    }
}

/// Allocated and Reserved servers: a set can never shut them down.
fn protected(set: &GameServerSet) -> i32 {
    let status = status_of(set);
    status.allocated_replicas + status.reserved_replicas
}

fn is_current(set: &GameServerSet, fleet: &Fleet, hash: &str) -> bool {
    match set.metadata.annotations.as_ref().and_then(|a| a.get(labels::TEMPLATE_HASH)) {
        Some(h) => h == hash,
        // Sets made by other tools (or Agones) carry no hash: compare templates directly.
        None => set.spec.template == fleet.spec.template,
    }
}

fn status_of(set: &GameServerSet) -> GameServerSetStatus {
    set.status.clone().unwrap_or_default()
}

fn created(set: &GameServerSet) -> Option<jiff::Timestamp> {
    set.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// The fleet's active set: its template, scheduling, priorities and overflow, label
/// `agones.dev/fleet`, the template hash annotation and a controller owner reference.
fn new_set(fleet: &Fleet, name: String, hash: String, replicas: i32) -> GameServerSet {
    let mut set = GameServerSet::new(
        name,
        GameServerSetSpec {
            replicas,
            allocation_overflow: fleet.spec.allocation_overflow.clone(),
            scheduling: fleet.spec.scheduling,
            priorities: fleet.spec.priorities.clone(),
            template: fleet.spec.template.clone(),
        },
    );
    set.metadata = ObjectMeta {
        name: set.metadata.name.take(),
        namespace: Some(fleet.namespace().to_owned()),
        labels: Some([(labels::FLEET.to_owned(), fleet.name().to_owned())].into()),
        annotations: Some([(labels::TEMPLATE_HASH.to_owned(), hash)].into()),
        owner_references: Some(vec![controller_reference(
            Fleet::API_VERSION,
            Fleet::KIND,
            fleet.name(),
            fleet.metadata.uid.as_deref(),
        )]),
        ..ObjectMeta::default()
    };
    set
}

/// Sums of the sets' statuses (sets being deleted included: their servers still exist).
pub fn aggregate_status(fleet: &Fleet, sets: &[GameServerSet]) -> FleetStatus {
    // The allocator's running count and the conditions are not derived from the sets: they stay.
    let mut status = FleetStatus {
        allocations: fleet.status.as_ref().and_then(|s| s.allocations),
        conditions: fleet.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default(),
        ..FleetStatus::default()
    };
    for set in sets {
        let Some(s) = &set.status else { continue };
        status.replicas += s.replicas;
        status.ready_replicas += s.ready_replicas;
        status.reserved_replicas += s.reserved_replicas;
        status.allocated_replicas += s.allocated_replicas;
        if let Some(p) = &s.players {
            let total = status.players.get_or_insert_default();
            total.count += p.count;
            total.capacity += p.capacity;
        }
        for (into, from) in [(&mut status.counters, &s.counters), (&mut status.lists, &s.lists)] {
            for (name, c) in from {
                let total = into.entry(name.clone()).or_default();
                total.count += c.count;
                total.capacity += c.capacity;
                total.allocated_count += c.allocated_count;
                total.allocated_capacity += c.allocated_capacity;
            }
        }
    }
    status
}

//! A set's status from its servers: counts by state and player/counter/list totals.

use stadion_crds::common::{AggregatedCounterStatus, AggregatedPlayerStatus};
use stadion_crds::gameserverset::GameServerSetStatus;
use stadion_crds::{GameServer, GameServerState};

/// Counts and totals over `servers`. `replicas` counts servers that are neither terminal nor
/// being deleted (what the set converges to `spec.replicas`); `shutdownReplicas` counts Shutdown
/// and deleting ones. Players, counters and lists sum over the counted servers; the `allocated*`
/// parts only over Allocated ones.
pub fn aggregate_status<'a>(servers: impl IntoIterator<Item = &'a GameServer>) -> GameServerSetStatus {
    let mut status = GameServerSetStatus::default();
    let mut players: Option<AggregatedPlayerStatus> = None;
    for gs in servers {
        let state = gs.state();
        if gs.metadata.deletion_timestamp.is_some() || state == Some(GameServerState::Shutdown) {
            status.shutdown_replicas += 1;
            continue;
        }
        // An Error server is held (and counted toward replicas, as in Agones) until its set
        // deletes it; Unhealthy ones are replaced at once and never counted.
        if state.is_some_and(GameServerState::is_terminal) && state != Some(GameServerState::Error) {
            continue;
        }
        status.replicas += 1;
        match state {
            Some(GameServerState::Ready) => status.ready_replicas += 1,
            Some(GameServerState::Reserved) => status.reserved_replicas += 1,
            Some(GameServerState::Allocated) => status.allocated_replicas += 1,
            _ => {}
        }
        let allocated = state == Some(GameServerState::Allocated);
        let Some(gs_status) = &gs.status else { continue };
        if let Some(p) = &gs_status.players {
            let total = players.get_or_insert_with(AggregatedPlayerStatus::default);
            total.count += p.count;
            total.capacity += p.capacity;
        }
        for (name, counter) in &gs_status.counters {
            add(status.counters.entry(name.clone()).or_default(), counter.count, counter.capacity, allocated);
        }
        for (name, list) in &gs_status.lists {
            add(status.lists.entry(name.clone()).or_default(), list.values.len() as i64, list.capacity, allocated);
        }
    }
    status.players = players;
    status
}

fn add(total: &mut AggregatedCounterStatus, count: i64, capacity: i64, allocated: bool) {
    total.count += count;
    total.capacity += capacity;
    if allocated {
        total.allocated_count += count;
        total.allocated_capacity += capacity;
    }
}

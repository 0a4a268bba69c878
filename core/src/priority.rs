//! Ordering servers by counter and list priorities (`spec.priorities` of sets, fleets and
//! allocations).
//!
//! Each priority compares the *available capacity* of a counter (capacity − count) or list
//! (capacity − number of values). `Ascending` puts the server with the least available capacity
//! first, `Descending` the most; "first" means first chosen, for allocation and scale-down alike.
//! A server without the counter or list sorts after those that have it.

use std::cmp::Ordering;

use stadion_crds::GameServer;
use stadion_crds::common::{Priority, PriorityOrder, PriorityType};

/// Available capacity of the priority's counter or list on `gs`, if it has one.
pub fn available_capacity(gs: &GameServer, priority: &Priority) -> Option<i64> {
    let status = gs.status.as_ref()?;
    match priority.type_ {
        PriorityType::Counter => status.counters.get(&priority.key).map(|c| c.capacity - c.count),
        PriorityType::List => status.lists.get(&priority.key).map(|l| l.capacity - l.values.len() as i64),
    }
}

/// Compares two servers by `priorities` in order; `Equal` when every priority ties.
pub fn compare(a: &GameServer, b: &GameServer, priorities: &[Priority]) -> Ordering {
    for priority in priorities {
        let ordering = match (available_capacity(a, priority), available_capacity(b, priority)) {
            (Some(x), Some(y)) => match priority.order {
                PriorityOrder::Ascending => x.cmp(&y),
                PriorityOrder::Descending => y.cmp(&x),
            },
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

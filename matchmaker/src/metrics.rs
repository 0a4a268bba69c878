//! Prometheus metrics (prometheus-client), served at `/metrics` in the OpenMetrics text format,
//! and the short recent history a dashboard draws ([`Metrics::recent`]): Prometheus keeps
//! histograms, not the last few minutes of waits or which ticket went to which server.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::ticket::TicketState;

/// Labels of the per-queue, per-state ticket gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueStateLabels {
    /// Queue name.
    pub queue: String,
    /// Ticket state (`searching`, `matched`, …).
    pub state: String,
}

/// Labels carrying just the queue.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// Queue name.
    pub queue: String,
}

/// Labels of allocation counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AllocationLabels {
    /// `match` (from the engine), `direct` (`POST /v1/allocations`) or `agones` (Agones'
    /// allocation API, gRPC and REST).
    pub source: String,
}

/// Labels of allocation failure counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// `match`, `direct` or `agones`.
    pub source: String,
    /// `unavailable`, `invalid`, `backend` or (`agones` only) `contention`.
    pub reason: String,
}

/// Every metric the matchmaker exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    tickets: Family<QueueStateLabels, Gauge>,
    matches: Family<QueueLabels, Counter>,
    time_to_match: Family<QueueLabels, Histogram>,
    time_to_assign: Family<QueueLabels, Histogram>,
    allocations: Family<AllocationLabels, Counter>,
    allocation_failures: Family<FailureLabels, Counter>,
    recent: Mutex<Recent>,
}

/// Waits and matches kept for the dashboard: enough for a few minutes of a busy queue.
pub const RECENT_SAMPLES: usize = 4096;
/// Assignments kept for the dashboard's "recent assignments" list.
pub const RECENT_ASSIGNMENTS: usize = 50;

/// One ticket's wait from creation to its server assignment.
#[derive(Clone, Debug, PartialEq)]
pub struct WaitSample {
    /// Queue.
    pub queue: String,
    /// When it was assigned (Unix milliseconds).
    pub at_ms: i64,
    /// How long it waited, in seconds.
    pub seconds: f64,
}

/// One match handed its server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignmentRecord {
    /// When (Unix milliseconds).
    pub at_ms: i64,
    /// Queue.
    pub queue: String,
    /// The match's ticket ids.
    pub tickets: Vec<String>,
    /// The GameServer they were given.
    pub gameserver: String,
}

/// What happened lately, newest last; each ring bounded ([`RECENT_SAMPLES`],
/// [`RECENT_ASSIGNMENTS`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecentActivity {
    /// Waits of assigned tickets.
    pub waits: Vec<WaitSample>,
    /// Matches formed: queue and Unix milliseconds.
    pub matches: Vec<(String, i64)>,
    /// Assignments.
    pub assignments: Vec<AssignmentRecord>,
}

#[derive(Debug, Default)]
struct Recent {
    waits: VecDeque<WaitSample>,
    matches: VecDeque<(String, i64)>,
    assignments: VecDeque<AssignmentRecord>,
    /// Allocations by source and outcome (`allocated` or a failure reason).
    outcomes: BTreeMap<(String, String), u64>,
}

fn push_bounded<T>(ring: &mut VecDeque<T>, item: T, bound: usize) {
    if ring.len() == bound {
        ring.pop_front();
    }
    ring.push_back(item);
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

fn wait_histogram() -> Histogram {
    // 10 ms to ~20 min: matches can form in one tick or after long widening.
    Histogram::new(exponential_buckets(0.01, 2.0, 18))
}

impl Metrics {
    /// Registers every metric under `stadion_matchmaker_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("stadion_matchmaker");
        let tickets = Family::<QueueStateLabels, Gauge>::default();
        let matches = Family::<QueueLabels, Counter>::default();
        let time_to_match = Family::<QueueLabels, Histogram>::new_with_constructor(wait_histogram as fn() -> Histogram);
        let time_to_assign =
            Family::<QueueLabels, Histogram>::new_with_constructor(wait_histogram as fn() -> Histogram);
        let allocations = Family::<AllocationLabels, Counter>::default();
        let allocation_failures = Family::<FailureLabels, Counter>::default();
        registry.register("tickets", "Tickets currently held, by queue and state", tickets.clone());
        registry.register("matches", "Matches formed", matches.clone());
        registry.register("time_to_match_seconds", "Wait from ticket creation to its match", time_to_match.clone());
        registry.register(
            "time_to_assign_seconds",
            "Wait from ticket creation to its server assignment",
            time_to_assign.clone(),
        );
        registry.register("allocations", "Game servers allocated", allocations.clone());
        registry.register("allocation_failures", "Allocation attempts that failed", allocation_failures.clone());
        let recent = Mutex::default();
        Self { registry, tickets, matches, time_to_match, time_to_assign, allocations, allocation_failures, recent }
    }

    fn recent_mut(&self) -> std::sync::MutexGuard<'_, Recent> {
        // Every critical section is one push: a panic elsewhere cannot leave a ring half written.
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A ticket entered `to` (from `from`, or newly created).
    pub fn ticket_state(&self, queue: &str, from: Option<TicketState>, to: Option<TicketState>) {
        if let Some(from) = from {
            self.tickets.get_or_create(&labels(queue, from)).dec();
        }
        if let Some(to) = to {
            self.tickets.get_or_create(&labels(queue, to)).inc();
        }
    }

    /// A match formed; each ticket waited `waits` seconds.
    pub fn matched(&self, queue: &str, waits: impl IntoIterator<Item = f64>) {
        let queue_labels = QueueLabels { queue: queue.to_owned() };
        self.matches.get_or_create(&queue_labels).inc();
        let histogram = self.time_to_match.get_or_create(&queue_labels);
        for wait in waits {
            histogram.observe(wait);
        }
        push_bounded(&mut self.recent_mut().matches, (queue.to_owned(), unix_ms()), RECENT_SAMPLES);
    }

    /// A match was assigned `gameserver`; each of its `tickets` waited `waits` seconds in total.
    pub fn assigned<'a>(
        &self,
        queue: &str,
        waits: impl IntoIterator<Item = f64>,
        tickets: impl IntoIterator<Item = &'a str>,
        gameserver: &str,
    ) {
        let histogram = self.time_to_assign.get_or_create(&QueueLabels { queue: queue.to_owned() });
        let at_ms = unix_ms();
        let mut recent = self.recent_mut();
        for wait in waits {
            histogram.observe(wait);
            push_bounded(
                &mut recent.waits,
                WaitSample { queue: queue.to_owned(), at_ms, seconds: wait },
                RECENT_SAMPLES,
            );
        }
        let record = AssignmentRecord {
            at_ms,
            queue: queue.to_owned(),
            tickets: tickets.into_iter().map(str::to_owned).collect(),
            gameserver: gameserver.to_owned(),
        };
        push_bounded(&mut recent.assignments, record, RECENT_ASSIGNMENTS);
    }

    /// A server was allocated.
    pub fn allocation(&self, source: &str) {
        self.allocations.get_or_create(&AllocationLabels { source: source.to_owned() }).inc();
        *self.recent_mut().outcomes.entry((source.to_owned(), "allocated".to_owned())).or_default() += 1;
    }

    /// An allocation attempt failed.
    pub fn allocation_failure(&self, source: &str, reason: &str) {
        let labels = FailureLabels { source: source.to_owned(), reason: reason.to_owned() };
        self.allocation_failures.get_or_create(&labels).inc();
        *self.recent_mut().outcomes.entry((source.to_owned(), reason.to_owned())).or_default() += 1;
    }

    /// Tickets of `queue` in `state` now (the `tickets` gauge).
    pub fn tickets(&self, queue: &str, state: TicketState) -> i64 {
        self.tickets.get_or_create(&labels(queue, state)).get()
    }

    /// Allocations so far by source and outcome (`allocated`, or the failure reason), sorted.
    pub fn allocation_outcomes(&self) -> Vec<(String, String, u64)> {
        self.recent_mut().outcomes.iter().map(|((source, outcome), n)| (source.clone(), outcome.clone(), *n)).collect()
    }

    /// A copy of the recent waits, matches and assignments.
    pub fn recent(&self) -> RecentActivity {
        let recent = self.recent_mut();
        RecentActivity {
            waits: recent.waits.iter().cloned().collect(),
            matches: recent.matches.iter().cloned().collect(),
            assignments: recent.assignments.iter().cloned().collect(),
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn labels(queue: &str, state: TicketState) -> QueueStateLabels {
    QueueStateLabels { queue: queue.to_owned(), state: state.as_str().to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_activity_keeps_assignments_waits_and_outcomes() {
        let metrics = Metrics::new();
        metrics.matched("duel", [0.5, 0.7]);
        metrics.assigned("duel", [0.6, 0.8], ["t-1", "t-2"], "gs-1");
        metrics.allocation("match");
        metrics.allocation_failure("match", "unavailable");
        metrics.ticket_state("duel", None, Some(TicketState::Searching));
        let recent = metrics.recent();
        assert_eq!(recent.matches.len(), 1);
        assert_eq!(recent.waits.iter().map(|w| w.seconds).collect::<Vec<_>>(), [0.6, 0.8]);
        assert_eq!(recent.assignments[0].tickets, ["t-1", "t-2"]);
        assert_eq!(recent.assignments[0].gameserver, "gs-1");
        assert_eq!(
            metrics.allocation_outcomes(),
            [("match".into(), "allocated".into(), 1), ("match".into(), "unavailable".into(), 1)]
        );
        assert_eq!(metrics.tickets("duel", TicketState::Searching), 1);
        assert_eq!(metrics.tickets("duel", TicketState::Assigned), 0);
    }

    #[test]
    fn the_assignment_ring_is_bounded() {
        let metrics = Metrics::new();
        for n in 0..RECENT_ASSIGNMENTS + 5 {
            metrics.assigned("duel", [1.0], [format!("t-{n}").as_str()], "gs");
        }
        let recent = metrics.recent();
        assert_eq!(recent.assignments.len(), RECENT_ASSIGNMENTS);
        assert_eq!(recent.assignments[0].tickets, ["t-5"]);
    }
}

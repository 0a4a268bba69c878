//! Prometheus metrics (prometheus-client), served at `/metrics` in the OpenMetrics text format.

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
        Self { registry, tickets, matches, time_to_match, time_to_assign, allocations, allocation_failures }
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
    }

    /// A match was assigned; each ticket waited `waits` seconds in total.
    pub fn assigned(&self, queue: &str, waits: impl IntoIterator<Item = f64>) {
        let histogram = self.time_to_assign.get_or_create(&QueueLabels { queue: queue.to_owned() });
        for wait in waits {
            histogram.observe(wait);
        }
    }

    /// A server was allocated.
    pub fn allocation(&self, source: &str) {
        self.allocations.get_or_create(&AllocationLabels { source: source.to_owned() }).inc();
    }

    /// An allocation attempt failed.
    pub fn allocation_failure(&self, source: &str, reason: &str) {
        let labels = FailureLabels { source: source.to_owned(), reason: reason.to_owned() };
        self.allocation_failures.get_or_create(&labels).inc();
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

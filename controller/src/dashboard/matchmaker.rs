//! The matchmaker's panel. The controller does not depend on the matchmaker crate: whoever
//! runs both (the `stadion` binary) implements [`MatchmakerFeed`] over it, and the panel is
//! computed here from the raw [`MatchmakerSummary`] by pure functions.

use serde::Serialize;

/// How far back the wait percentiles and the wait chart look.
pub const WAIT_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Width of one bar of the wait chart.
pub const CHART_BIN_MS: i64 = 10 * 1000;
/// Window of the matches-per-second rate.
pub const RATE_WINDOW_MS: i64 = 10 * 1000;

/// A read-only view of a running matchmaker.
pub trait MatchmakerFeed: Send + Sync {
    /// What it holds and did lately.
    fn summary(&self) -> MatchmakerSummary;
}

/// The raw material of the panel: counts now and recent history, times in Unix milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatchmakerSummary {
    /// Tickets per queue, in the configuration's order.
    pub queues: Vec<QueueTickets>,
    /// Recent waits from ticket creation to assignment.
    pub waits: Vec<Wait>,
    /// Recent matches: queue and time.
    pub matches: Vec<(String, i64)>,
    /// Allocations so far by source and outcome.
    pub allocations: Vec<AllocationCount>,
    /// Recent assignments, newest last.
    pub assignments: Vec<Assignment>,
}

/// Tickets of one queue by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueTickets {
    /// Queue name.
    pub name: String,
    /// Waiting for a match.
    pub searching: i64,
    /// Matched, waiting for a server.
    pub matched: i64,
    /// Holding a server.
    pub assigned: i64,
}

/// One ticket's wait.
#[derive(Clone, Debug, PartialEq)]
pub struct Wait {
    /// Queue.
    pub queue: String,
    /// When it ended (Unix ms).
    pub at_ms: i64,
    /// Seconds waited.
    pub seconds: f64,
}

/// Allocations of one source with one outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AllocationCount {
    /// `match`, `direct` or `agones`.
    pub source: String,
    /// `allocated` or the failure reason.
    pub outcome: String,
    /// How many.
    pub count: u64,
}

/// A match handed its server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// When (Unix ms).
    pub at_ms: i64,
    /// Queue.
    pub queue: String,
    /// Ticket ids.
    pub tickets: Vec<String>,
    /// GameServer name.
    pub gameserver: String,
}

/// The panel as the page draws it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchmakerView {
    /// One row per queue.
    pub queues: Vec<QueueView>,
    /// Wait chart bars over the last [`WAIT_WINDOW_MS`], oldest first, only bins with waits.
    pub chart: Vec<ChartBin>,
    /// Allocation outcomes.
    pub allocations: Vec<AllocationCount>,
    /// Recent assignments, newest first.
    pub assignments: Vec<AssignmentView>,
}

/// One queue's row.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    /// Tickets by state.
    #[serde(flatten)]
    pub tickets: QueueTickets,
    /// Median wait over the window, seconds.
    pub wait_p50: Option<f64>,
    /// 90th percentile wait.
    pub wait_p90: Option<f64>,
    /// 99th percentile wait.
    pub wait_p99: Option<f64>,
    /// Matches formed per second over the last [`RATE_WINDOW_MS`].
    pub matches_per_second: f64,
}

/// One bar of the wait chart.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartBin {
    /// Start of the bin (Unix ms, a multiple of [`CHART_BIN_MS`]).
    pub start_ms: i64,
    /// Median wait in the bin, seconds.
    pub p50: f64,
    /// Longest wait in the bin.
    pub max: f64,
    /// Waits in the bin.
    pub count: usize,
}

/// One recent assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentView {
    /// When (Unix ms).
    pub at_ms: i64,
    /// Queue.
    pub queue: String,
    /// Ticket ids.
    pub tickets: Vec<String>,
    /// GameServer name.
    pub gameserver: String,
}

/// The `q` quantile (0..=1) of `sorted` by nearest rank; `None` when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn rounded(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// The panel of `summary` at `now_ms`. Rates count whole bins only, so a frame changes when a
/// match or an assignment happens or leaves the window, not at every tick.
pub fn view(summary: &MatchmakerSummary, now_ms: i64) -> MatchmakerView {
    let since = now_ms - WAIT_WINDOW_MS;
    let queues = summary
        .queues
        .iter()
        .map(|queue| {
            let mut waits: Vec<f64> =
                summary.waits.iter().filter(|w| w.queue == queue.name && w.at_ms >= since).map(|w| w.seconds).collect();
            waits.sort_by(f64::total_cmp);
            let rate_since = now_ms - RATE_WINDOW_MS;
            let matches = summary.matches.iter().filter(|(q, at)| *q == queue.name && *at >= rate_since).count();
            QueueView {
                tickets: queue.clone(),
                wait_p50: quantile(&waits, 0.5).map(rounded),
                wait_p90: quantile(&waits, 0.9).map(rounded),
                wait_p99: quantile(&waits, 0.99).map(rounded),
                matches_per_second: rounded(matches as f64 * 1000.0 / RATE_WINDOW_MS as f64),
            }
        })
        .collect();
    let mut bins: std::collections::BTreeMap<i64, Vec<f64>> = std::collections::BTreeMap::new();
    for wait in summary.waits.iter().filter(|w| w.at_ms >= since) {
        bins.entry(wait.at_ms.div_euclid(CHART_BIN_MS) * CHART_BIN_MS).or_default().push(wait.seconds);
    }
    let chart = bins
        .into_iter()
        .map(|(start_ms, mut waits)| {
            waits.sort_by(f64::total_cmp);
            ChartBin {
                start_ms,
                p50: quantile(&waits, 0.5).map(rounded).unwrap_or_default(),
                max: rounded(waits.last().copied().unwrap_or_default()),
                count: waits.len(),
            }
        })
        .collect();
    let assignments = summary
        .assignments
        .iter()
        .rev()
        .map(|a| AssignmentView {
            at_ms: a.at_ms,
            queue: a.queue.clone(),
            tickets: a.tickets.clone(),
            gameserver: a.gameserver.clone(),
        })
        .collect();
    MatchmakerView { queues, chart, allocations: summary.allocations.clone(), assignments }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(queue: &str, at_ms: i64, seconds: f64) -> Wait {
        Wait { queue: queue.into(), at_ms, seconds }
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&sorted, 0.5), Some(50.0));
        assert_eq!(quantile(&sorted, 0.9), Some(90.0));
        assert_eq!(quantile(&sorted, 0.99), Some(99.0));
        assert_eq!(quantile(&[3.0], 0.99), Some(3.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn the_view_keeps_the_window_bins_the_chart_and_lists_assignments_newest_first() {
        let now = 1_000_000_000;
        let summary = MatchmakerSummary {
            queues: vec![QueueTickets { name: "duel".into(), searching: 2, matched: 1, assigned: 4 }],
            waits: vec![
                wait("duel", now - WAIT_WINDOW_MS - 1, 99.0),
                wait("duel", now - 25_000, 1.0),
                wait("duel", now - 24_000, 3.0),
                wait("duel", now - 1_000, 2.0),
                wait("other", now - 1_000, 50.0),
            ],
            matches: vec![("duel".into(), now - 2_000), ("duel".into(), now - 60_000)],
            allocations: vec![AllocationCount { source: "match".into(), outcome: "allocated".into(), count: 3 }],
            assignments: vec![
                Assignment {
                    at_ms: now - 2,
                    queue: "duel".into(),
                    tickets: vec!["t-1".into()],
                    gameserver: "gs-1".into(),
                },
                Assignment {
                    at_ms: now - 1,
                    queue: "duel".into(),
                    tickets: vec!["t-2".into()],
                    gameserver: "gs-2".into(),
                },
            ],
        };
        let view = view(&summary, now);
        let duel = &view.queues[0];
        assert_eq!((duel.tickets.searching, duel.tickets.matched, duel.tickets.assigned), (2, 1, 4));
        assert_eq!((duel.wait_p50, duel.wait_p99), (Some(2.0), Some(3.0)), "the old 99 s wait left the window");
        assert_eq!(duel.matches_per_second, 0.1);
        let bins: Vec<usize> = view.chart.iter().map(|b| b.count).collect();
        assert_eq!(bins.iter().sum::<usize>(), 4, "every queue's waits in the window: {:?}", view.chart);
        assert!(view.chart.windows(2).all(|w| w[0].start_ms < w[1].start_ms));
        assert_eq!(view.assignments[0].tickets, ["t-2"]);
    }
}

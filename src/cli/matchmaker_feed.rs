//! The dashboard's matchmaker panel over the matchmaker `stadion up` runs: the controller crate
//! cannot see the matchmaker, so this binary, which wires both, implements its feed.

use stadion_controller::dashboard::matchmaker::{AllocationCount, Assignment, QueueTickets, Wait};
use stadion_controller::dashboard::{MatchmakerFeed, MatchmakerSummary};
use stadion_matchmaker::Matchmaker;
use stadion_matchmaker::ticket::TicketState;

/// [`MatchmakerFeed`] reading a [`Matchmaker`]'s gauges and recent history.
#[derive(Clone, Debug)]
pub struct Feed(pub Matchmaker);

impl MatchmakerFeed for Feed {
    fn summary(&self) -> MatchmakerSummary {
        let metrics = self.0.metrics();
        let queues = self
            .0
            .config()
            .queues
            .iter()
            .map(|queue| QueueTickets {
                name: queue.name.clone(),
                searching: metrics.tickets(&queue.name, TicketState::Searching),
                matched: metrics.tickets(&queue.name, TicketState::Matched),
                assigned: metrics.tickets(&queue.name, TicketState::Assigned),
            })
            .collect();
        let recent = metrics.recent();
        MatchmakerSummary {
            queues,
            waits: recent
                .waits
                .into_iter()
                .map(|w| Wait { queue: w.queue, at_ms: w.at_ms, seconds: w.seconds })
                .collect(),
            matches: recent.matches,
            allocations: metrics
                .allocation_outcomes()
                .into_iter()
                .map(|(source, outcome, count)| AllocationCount { source, outcome, count })
                .collect(),
            assignments: recent
                .assignments
                .into_iter()
                .map(|a| Assignment { at_ms: a.at_ms, queue: a.queue, tickets: a.tickets, gameserver: a.gameserver })
                .collect(),
        }
    }
}

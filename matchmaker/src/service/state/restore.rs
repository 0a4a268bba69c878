//! Resuming from what the store kept: tickets keep their state, wait, timeout, retention and
//! idempotency key; searching ones go back into their queue's pool; a match that waited for a
//! server waits again and first looks for the server it may already have been given.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;
use uuid::Uuid;

use super::{MatchJob, PendingMatch, Record, State, allocation_request};
use crate::engine::{Millis, TicketKey};
use crate::service::submit;
use crate::store::{Change, Stored, StoredMatch, StoredTicket};
use crate::ticket::TicketState;

/// A match resumed after a restart gets at least this long to adopt or allocate its server
/// before its tickets' timeout can dissolve it (a dissolved match could not give back a server
/// allocated to it just before the crash).
pub const ADOPT_GRACE: Millis = 10_000;

impl State {
    /// Loads `stored` into this (empty) state at `now` and returns the matches to allocate
    /// again. Searching tickets of a queue that is gone or whose rules they no longer fit fail,
    /// as on a reload; a matched ticket whose match cannot resume searches again.
    pub fn restore(&mut self, stored: Stored, now: Millis) -> Vec<MatchJob> {
        let mut keys: HashMap<Uuid, TicketKey> = HashMap::new();
        for ticket in stored.tickets {
            if let Some((id, key)) = self.restore_ticket(ticket, now) {
                keys.insert(id, key);
            }
        }
        if !self.matching {
            // A follower keeps the tickets as they are; the replica that matches resumes them.
            tracing::info!(tickets = self.tickets.len(), "matchmaker state loaded (following)");
            return Vec::new();
        }
        let jobs: Vec<MatchJob> =
            stored.matches.into_iter().filter_map(|m| self.restore_match(m, &keys, now)).collect();
        let orphans: Vec<TicketKey> = self
            .tickets
            .iter()
            .filter(|(_, r)| r.view.state == TicketState::Matched)
            .filter(|(_, r)| r.match_id.is_none_or(|id| !self.matches.contains_key(&id)))
            .map(|(key, _)| *key)
            .collect();
        for key in orphans {
            let Some(record) = self.tickets.get_mut(&key) else { continue };
            record.match_id = None;
            let queue = record.view.queue.clone();
            if self.requeue(key, &queue) {
                self.transition(key, TicketState::Searching, now, |t| t.match_info = None);
            } else {
                let reason = format!("queue `{queue}` no longer takes this ticket after a restart");
                self.transition(key, TicketState::Failed, now, |t| t.reason = Some(reason));
            }
        }
        tracing::info!(tickets = self.tickets.len(), matches = jobs.len(), "matchmaker state restored");
        jobs
    }

    pub(super) fn restore_ticket(&mut self, stored: StoredTicket, now: Millis) -> Option<(Uuid, TicketKey)> {
        let id = Uuid::parse_str(&stored.ticket.id).ok()?;
        if self.by_id.contains_key(&id) {
            return None;
        }
        let key = self.next_key;
        self.next_key += 1;
        let view = stored.ticket;
        let (state, queue) = (view.state, view.queue.clone());
        let terminal = state.is_terminal();
        self.metrics.ticket_state(&queue, None, Some(state));
        if !terminal && self.matching {
            self.deadlines.insert((stored.deadline, key));
        }
        let fingerprint = submit::fingerprint(&view.queue, &view.players);
        self.admission.restore(&view, id, fingerprint);
        self.by_id.insert(id, key);
        let forget_at = terminal.then(|| stored.forget_at.unwrap_or(now + self.retention));
        if let Some(at) = forget_at {
            self.forget.insert((at, key));
        }
        let record = Record {
            events: None,
            view,
            enqueued_at: stored.enqueued_at,
            deadline: stored.deadline,
            match_id: stored.match_id.filter(|_| state == TicketState::Matched),
            forget_at,
        };
        self.tickets.insert(key, record);
        if self.matching && state == TicketState::Searching && !self.requeue(key, &queue) {
            let reason = format!("no longer fits queue `{queue}` after a restart");
            self.transition(key, TicketState::Failed, now, |t| t.reason = Some(reason));
        }
        Some((id, key))
    }

    /// Resumes a match whose tickets all still wait in it; otherwise forgets it (its tickets
    /// search again, see [`State::restore`]).
    fn restore_match(&mut self, m: StoredMatch, keys: &HashMap<Uuid, TicketKey>, now: Millis) -> Option<MatchJob> {
        let members: Option<Vec<TicketKey>> = m.tickets.iter().map(|id| keys.get(id).copied()).collect();
        let config = self.queues.get(&m.queue).map(|q| q.config.clone());
        let intact = members.as_ref().is_some_and(|members| {
            members.iter().all(|k| {
                self.tickets.get(k).is_some_and(|r| r.view.state == TicketState::Matched && r.match_id == Some(m.id))
            })
        });
        let (Some(members), Some(config), true) = (members, config, intact) else {
            tracing::info!(r#match = %m.id, queue = %m.queue, "stored match not resumed; its tickets search again");
            self.store.record(Change::MatchDone(m.id));
            return None;
        };
        for key in &members {
            let Some(record) = self.tickets.get_mut(key) else { continue };
            if record.deadline < now + ADOPT_GRACE {
                self.deadlines.remove(&(record.deadline, *key));
                record.deadline = now + ADOPT_GRACE;
                self.deadlines.insert((record.deadline, *key));
            }
        }
        tracing::info!(r#match = %m.id, queue = %m.queue, tickets = members.len(), "match resumed; allocating its server again");
        let request = allocation_request(&config, &m.info, true);
        let wake = Arc::new(Notify::new());
        self.matches.insert(
            m.id,
            PendingMatch { queue: m.queue.clone(), tickets: members, info: m.info, wake: wake.clone(), window: None },
        );
        Some(MatchJob { id: m.id, queue: m.queue, request, wake })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use uuid::Uuid;

    use super::*;
    use crate::config::MatchmakerConfig;
    use crate::metrics::Metrics;
    use crate::store::MemoryStore;
    use crate::ticket::{AttributeValue, MatchInfo, Player, Ticket};

    fn state() -> State {
        let config = MatchmakerConfig::from_yaml_str(
            "queues:\n  - name: duel\n    players: {min: 2, max: 2}\n    skill: {attribute: mmr, initialSpread: 0, widenPerSecond: 0, maxSpread: 0}\n",
        )
        .unwrap();
        State::new(&config.queues, 1000, Arc::new(Metrics::new()), Arc::new(MemoryStore))
    }

    fn stored(player: &str, queue: &str, state: TicketState, mmr: f64) -> StoredTicket {
        let players = vec![Player {
            id: player.to_owned(),
            attributes: [("mmr".to_owned(), AttributeValue::Number(mmr))].into(),
            latencies: Default::default(),
        }];
        let ticket = Ticket {
            id: Uuid::new_v4().to_string(),
            queue: queue.to_owned(),
            state,
            players,
            idempotency_key: None,
            created_at: String::new(),
            updated_at: String::new(),
            match_info: None,
            assignment: None,
            reason: None,
        };
        StoredTicket { ticket, enqueued_at: 100, deadline: 1_000_000, forget_at: None, match_id: None }
    }

    fn id(t: &StoredTicket) -> Uuid {
        Uuid::parse_str(&t.ticket.id).unwrap()
    }

    fn info() -> MatchInfo {
        MatchInfo { id: Uuid::new_v4().to_string(), teams: vec![], region: None, formed_at: String::new() }
    }

    #[test]
    fn a_match_missing_a_ticket_is_not_resumed_and_its_tickets_search_again() {
        let mut state = state();
        let (mut a, mut b, mut lone) = (
            stored("a", "duel", TicketState::Matched, 1.0),
            stored("b", "duel", TicketState::Matched, 2.0),
            stored("lone", "duel", TicketState::Matched, 3.0),
        );
        let whole =
            StoredMatch { id: Uuid::new_v4(), queue: "duel".to_owned(), tickets: vec![id(&a), id(&b)], info: info() };
        let broken = StoredMatch {
            id: Uuid::new_v4(),
            queue: "duel".to_owned(),
            tickets: vec![id(&lone), Uuid::new_v4()],
            info: info(),
        };
        (a.match_id, b.match_id, lone.match_id) = (Some(whole.id), Some(whole.id), Some(broken.id));
        // Without its match stored at all.
        let mut stray = stored("stray", "duel", TicketState::Matched, 4.0);
        stray.match_id = Some(Uuid::new_v4());
        let stored =
            Stored { tickets: vec![a.clone(), b, lone.clone(), stray.clone()], matches: vec![whole.clone(), broken] };
        let jobs = state.restore(stored, 5_000);
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![whole.id]);
        assert!(state.is_pending(whole.id));
        for t in [&lone, &stray] {
            assert_eq!(state.ticket(&t.ticket.id).unwrap().state, TicketState::Searching, "{}", t.ticket.id);
        }
        assert_eq!(state.queues["duel"].pool.len(), 2);
        // A resumed match's tickets keep at least the adoption grace.
        let key = state.by_id[&id(&a)];
        assert!(state.tickets[&key].deadline >= 5_000 + ADOPT_GRACE);
    }

    #[test]
    fn tickets_of_a_removed_queue_fail_and_final_ones_keep_their_retention() {
        let mut state = state();
        let gone = stored("g", "gone", TicketState::Searching, 1.0);
        let mut done = stored("d", "duel", TicketState::Assigned, 1.0);
        done.forget_at = Some(4_000);
        state.restore(Stored { tickets: vec![gone.clone(), done.clone()], matches: vec![] }, 3_000);
        let failed = state.ticket(&gone.ticket.id).unwrap();
        assert_eq!(failed.state, TicketState::Failed);
        assert!(failed.reason.unwrap().contains("after a restart"));
        assert_eq!(state.ticket(&done.ticket.id).unwrap().state, TicketState::Assigned);
        state.tick(3_999);
        assert!(state.ticket(&done.ticket.id).is_ok(), "kept until its retention ends");
        state.tick(4_000);
        assert!(state.ticket(&done.ticket.id).is_err(), "forgotten at its stored time");
    }
}

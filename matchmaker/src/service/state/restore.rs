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

    fn restore_ticket(&mut self, stored: StoredTicket, now: Millis) -> Option<(Uuid, TicketKey)> {
        let id = Uuid::parse_str(&stored.ticket.id).ok()?;
        let key = self.next_key;
        self.next_key += 1;
        let view = stored.ticket;
        let (state, queue) = (view.state, view.queue.clone());
        let terminal = state.is_terminal();
        self.metrics.ticket_state(&queue, None, Some(state));
        if !terminal {
            for player in &view.players {
                self.live_players.insert(player.id.clone(), key);
            }
            self.deadlines.insert((stored.deadline, key));
        }
        if let Some(idempotency) = &view.idempotency_key {
            self.idempotency.insert(idempotency.clone(), key);
        }
        self.by_id.insert(id, key);
        let forget_at = terminal.then(|| stored.forget_at.unwrap_or(now + self.retention));
        if let Some(at) = forget_at {
            self.forget.insert((at, key));
        }
        let record = Record {
            fingerprint: submit::fingerprint(&view.queue, &view.players),
            events: None,
            view,
            enqueued_at: stored.enqueued_at,
            deadline: stored.deadline,
            match_id: stored.match_id.filter(|_| state == TicketState::Matched),
            forget_at,
        };
        self.tickets.insert(key, record);
        if state == TicketState::Searching && !self.requeue(key, &queue) {
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
        self.matches
            .insert(m.id, PendingMatch { queue: m.queue.clone(), tickets: members, info: m.info, wake: wake.clone() });
        Some(MatchJob { id: m.id, queue: m.queue, request, wake })
    }
}
